"""The bare-canvas helpers: text wrapping, the level-1 stream filter, page flow."""

from __future__ import annotations

import itertools
import zlib

from reportlab.pdfbase.pdfmetrics import stringWidth

from mailbot.documents.fonts import reportlab_fonts
from mailbot.documents.pdf_layout import FAST_FLATE, PageFlow, wrap

from .conftest import PdfText

NAME = "Молоко питьевое ультрапастеризованное 3,2% в упаковке Тетра Пак, 950 мл, Заречье"


def test_wrap_keeps_every_word_in_order_and_each_line_within_the_width() -> None:
    regular, _ = reportlab_fonts()
    lines = wrap(NAME, regular, 8.5, 120)
    assert len(lines) >= 3
    assert " ".join(lines) == NAME
    assert all(stringWidth(line, regular, 8.5) <= 120 for line in lines)
    # greedy: the next line's first word would not have fitted on the line before
    for line, after in itertools.pairwise(lines):
        assert stringWidth(f"{line} {after.split()[0]}", regular, 8.5) > 120


def test_wrap_cuts_a_word_wider_than_the_width_between_letters() -> None:
    regular, bold = reportlab_fonts()
    token = "4601234000001" * 6
    lines = wrap(f"Набор {token} шт.", bold, 9, 100)
    assert "".join(lines).replace(" ", "") == f"Набор{token}шт."
    assert all(stringWidth(line, bold, 9) <= 100 for line in lines)
    assert len(lines) >= 5
    assert wrap("Ж", regular, 9, 1) == ["Ж"]  # a letter wider than the width stands alone


def test_wrap_of_blank_text_is_one_empty_line() -> None:
    regular, _ = reportlab_fonts()
    assert wrap("", regular, 9, 100) == [""]
    assert wrap(" \n ", regular, 9, 100) == [""]


def test_fast_flate_output_inflates_back() -> None:
    data = NAME.encode() * 50
    assert zlib.decompress(FAST_FLATE.encode(data)) == data
    assert FAST_FLATE.decode(FAST_FLATE.encode(NAME)) == NAME.encode()
    assert FAST_FLATE.pdfname == "FlateDecode"


def test_page_flow_numbers_its_pages_in_the_footer(pdftotext: PdfText) -> None:
    regular, _ = reportlab_fonts()
    flow = PageFlow(title="Проба", author="mailbot", footer="Проба страниц", fonts=[regular])
    assert flow.fits(flow.top - flow.bottom)
    assert not flow.fits(flow.top - flow.bottom + 1)
    flow.text(flow.left, flow.y - 10, "первая", regular, 9)
    flow.new_page()
    assert (flow.page, flow.y) == (2, flow.top)
    flow.lines(flow.left, flow.y - 10, ["вторая", "строка"], regular, 9, 11)
    text = pdftotext(flow.finish())
    assert text == "первая Проба страниц Страница 1 вторая строка Проба страниц Страница 2"
