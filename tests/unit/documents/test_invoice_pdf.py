"""«Счёт на оплату» PDF: what an accountant reads in it, paging, fonts, and the scannable QR."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from reportlab.lib.units import mm

from mailbot.billing.money import VatMode, amount_in_words, format_rub
from mailbot.documents import invoice_pdf
from mailbot.documents.invoice_pdf import LINE_COLUMNS, render_invoice_pdf
from mailbot.documents.pdf_layout import CONTENT_WIDTH, MARGIN, PAGE_HEIGHT, PageFlow, Segment
from mailbot.documents.qr import payment_qr_payload
from mailbot.documents.samples import sample_invoice

from .conftest import PdfLines, PdfText, PdfWords, Word

# x of the lines table's column edges, as pdftotext measures them (points from the left)
_FIXED = sum(w for w in LINE_COLUMNS if w is not None)
COLUMN_EDGES: list[float] = [MARGIN]
for _width in LINE_COLUMNS:
    COLUMN_EDGES.append(COLUMN_EDGES[-1] + (_width or CONTENT_WIDTH - _FIXED))


def _in_column(word: Word, column: int) -> bool:
    return COLUMN_EDGES[column] <= word.x0 and word.x1 <= COLUMN_EDGES[column + 1]


def test_invoice_text_has_title_requisites_totals_words_and_terms(pdftotext: PdfText) -> None:
    doc = sample_invoice(20)
    text = pdftotext(render_invoice_pdf(doc))
    for line in doc.lines:
        assert line.name in text, line.name  # names wrap inside their cell
    total = format_rub(doc.total)
    for expected in (
        "Счёт на оплату № 2026-00123 от 25 ноября 2026 г.",
        "ПАО СБЕРБАНК г. Москва Банк получателя",
        "ИНН 7701123451 КПП 770101001",
        "БИК 044525225 Сч. № 30101810400000000225 Сч. № 40702810938000012345",
        "Поставщик (Исполнитель): ООО «Штрихкод-Сервис», ИНН 7701123451, КПП 770101001",
        "Покупатель (Заказчик): ООО «Молочная ферма „Заречье“», ИНН 5003987659, КПП 500301001",
        "Основание: Заявка № EAN-2026-000123",
        "№ Товары (работы, услуги) Кол-во Ед. Цена Сумма",
        f"Всего наименований 20, на сумму {total} руб. {amount_in_words(doc.total)}",
        "Оплатить в течение 5 дней, не позднее 30.11.2026.",
        f"«{doc.purpose}»",
        "Руководитель",
        "Бухгалтер",
    ):
        assert expected in text, expected


def test_each_line_is_a_row_with_qty_unit_price_and_amount(pdf_layout_lines: PdfLines) -> None:
    doc = sample_invoice(20)
    short = tuple(replace(line, name=f"Штрихкоды EAN-13, группа {i}") for i, line in
                  enumerate(doc.lines))  # fmt: skip
    lines = pdf_layout_lines(render_invoice_pdf(replace(doc, lines=short)))
    for number, line in enumerate(short, start=1):
        row = (
            f"{number} {line.name} {line.qty} {line.unit} "
            f"{format_rub(line.price)} {format_rub(line.amount)}"
        )
        assert row in lines, row


def test_totals_rows_show_total_vat_and_amount_due(pdf_layout_lines: PdfLines) -> None:
    doc = sample_invoice(20)
    lines = pdf_layout_lines(render_invoice_pdf(doc))
    total, vat = format_rub(doc.total), format_rub(doc.vat or Decimal(0))
    assert f"Итого: {total}" in lines
    assert f"В том числе НДС 22%: {vat}" in lines
    assert f"Всего к оплате: {total}" in lines


def test_invoice_without_vat_says_so(pdftotext: PdfText, pdf_layout_lines: PdfLines) -> None:
    pdf = render_invoice_pdf(sample_invoice(3, vat_mode=VatMode.NONE))
    text = pdftotext(pdf)
    assert "Без налога (НДС): —" in pdf_layout_lines(pdf)
    assert "за регистрацию штрихкодов. Без налога (НДС)»" in text
    assert "НДС 22%" not in text


def test_a_300_line_invoice_pages_with_the_table_header_on_every_page(
    pdf_pages: Callable[[bytes], list[str]],
) -> None:
    doc = sample_invoice(300)
    pages = pdf_pages(render_invoice_pdf(doc))
    assert len(pages) >= 5
    for page_number, page in enumerate(pages, start=1):
        assert "Товары (работы, услуги)" in page, page_number
        assert f"Страница {page_number}" in page
    flat = " ".join(" ".join(pages).split())
    assert f"Всего наименований 300, на сумму {format_rub(doc.total)} руб." in flat
    assert "Всего к оплате" in pages[-1]
    assert all(f"{n} Присвоение" in flat for n in (3, 150, 300))


def test_a_long_invoice_breaks_between_rows_with_the_header_on_top_of_every_page(
    pdf_words: PdfWords,
) -> None:
    doc = sample_invoice(60)
    words = pdf_words(render_invoice_pdf(doc))
    pages = sorted({w.page for w in words})
    assert len(pages) >= 3
    page_bottom = PAGE_HEIGHT - (MARGIN + 5 * mm)  # the frame's bottom, from the page's top
    numbers_in_order = []
    for page in pages:
        on_page = [w for w in words if w.page == page]
        footer = [w for w in on_page if w.top > page_bottom]
        assert " ".join(w.text for w in footer).endswith(f"Страница {page}")
        assert all(w.bottom - w.top < 8 for w in footer)  # 7 pt: no row ran down into it
        numbers = [w for w in on_page if _in_column(w, 0) and w.text.isdigit()]
        header = next(w for w in on_page if w.text == "Товары")
        assert numbers, page
        assert header.bottom < min(w.top for w in numbers), page
        amounts = [w for w in on_page if _in_column(w, 5) and "," in w.text]
        for number in numbers:  # the row's amount sits level with its number: rows are whole
            line = doc.lines[int(number.text) - 1]
            level = [w.text for w in amounts if abs(w.middle - number.middle) < 0.5]
            assert level == [format_rub(line.amount).split()[-1]], number
        numbers_in_order += [int(w.text) for w in sorted(numbers, key=lambda w: w.top)]
    assert numbers_in_order == list(range(1, 61))


@pytest.mark.parametrize("line_count", [60, 300])
def test_no_rule_or_cell_border_reaches_below_the_frame_into_the_footer(
    line_count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[int, Segment]] = []

    class RecordingFlow(PageFlow):
        def rules(self, segments: Sequence[Segment], width: float) -> None:
            drawn.extend((self.page, segment) for segment in segments)
            super().rules(segments, width)

    monkeypatch.setattr(invoice_pdf, "PageFlow", RecordingFlow)
    render_invoice_pdf(sample_invoice(line_count))
    pages = {page for page, _ in drawn}
    assert len(pages) > line_count // 30
    for page in pages:
        lowest = min(min(y1, y2) for p, (_, y1, _, y2) in drawn if p == page)
        assert lowest >= PageFlow.bottom - 1e-6, page
        assert lowest < PageFlow.bottom + 30 or page == max(pages), page  # the page was filled


def test_totals_words_terms_and_signatures_move_to_a_new_page_together_only_when_short_of_room(
    pdf_words: PdfWords,
) -> None:
    page_bottom = PAGE_HEIGHT - (MARGIN + 5 * mm)  # the frame's bottom, from the page's top
    kept, moved = [], []
    for line_count in range(8, 18):  # rows are 26 pt tall: the room left goes 219 → 11 pt
        words = pdf_words(render_invoice_pdf(sample_invoice(line_count)))
        last_page = max(w.page for w in words)
        for text in ("Итого:", "оплате:", "наименований", "Оплатить", "Руководитель", "Бухгалтер"):
            assert {w.page for w in words if w.text == text} == {last_page}, (line_count, text)
        last_row = max((w for w in words if _in_column(w, 0) and w.text.isdigit()),
                       key=lambda w: int(w.text))  # fmt: skip
        assert int(last_row.text) == line_count
        totals = next(w for w in words if w.text == "Итого:")
        signed = next(w for w in words if w.text == "Бухгалтер")
        if totals.page == last_row.page:
            kept.append((totals.top - last_row.bottom, signed.bottom - totals.top))
        else:
            assert totals.page == last_row.page + 1
            moved.append((page_bottom - last_row.bottom, signed.bottom - totals.top))
    assert kept
    assert moved
    needed = max(gap + height for gap, height in kept)
    assert all(room < needed for room, _ in moved)


def test_long_names_wrap_inside_their_column_and_a_word_too_long_is_cut(
    pdf_words: PdfWords, pdftotext: PdfText
) -> None:
    doc = sample_invoice(3)
    long_name = "Сыр полутвёрдый «Российский» 50%, весовой, в вакуумной упаковке " * 3 + "конец"
    token = "GTIN" + "4601234000001" * 7
    lines = (replace(doc.lines[0], name=long_name),
             replace(doc.lines[1], name=f"Набор {token} шт."), doc.lines[2])  # fmt: skip
    pdf = render_invoice_pdf(replace(doc, lines=lines))
    words = pdf_words(pdf)
    table_top = next(w.bottom for w in words if w.text == "Товары")
    table_bottom = next(w.top for w in words if w.text == "Итого:")
    words = [w for w in words if table_top < w.top < table_bottom]
    name_right = COLUMN_EDGES[2]
    assert not [w for w in words if w.x0 < name_right < w.x1]  # nothing runs over the edge
    name_words = [w for w in words if _in_column(w, 1)]
    assert len({w.top for w in name_words if w.text in long_name.split()}) >= 3  # 3+ lines
    text = pdftotext(pdf)
    assert " ".join(long_name.split()) in text
    pieces = [w.text for w in sorted(name_words, key=lambda w: w.top) if w.text[:1].isalnum()]
    assert token in "".join(pieces)
    assert all(w.x1 - w.x0 <= name_right - COLUMN_EDGES[1] for w in name_words)


def test_every_stream_is_deflated() -> None:
    pdf = render_invoice_pdf(sample_invoice(20))
    dictionaries = re.findall(rb"<<([^<>]*)>>\s*stream\r?\n", pdf)
    assert len(dictionaries) >= 5  # 2 font programs, 2 ToUnicode maps, 2 pages
    assert all(b"/Filter [ /FlateDecode ]" in d for d in dictionaries), dictionaries


def test_dejavu_is_embedded(tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(render_invoice_pdf(sample_invoice()))
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True).stdout
    rows = {row[0].partition("+")[2] or row[0]: row for row in
            (line.split() for line in fonts.decode().splitlines()[2:])}  # fmt: skip
    # reportlab declares Helvetica (not embedded) as every page's initial font; no text uses it.
    assert set(rows) <= {"DejaVuSans", "DejaVuSans-Bold", "Helvetica"}
    for name in ("DejaVuSans", "DejaVuSans-Bold"):
        assert rows[name][-5:-2] == ["yes", "yes", "yes"], rows[name]  # emb, sub, uni


def test_payment_qr_on_the_page_scans_to_the_payload(
    pdf_to_png: Callable[[bytes, int], list[Path]], zbar_raw: Callable[[Path], str]
) -> None:
    doc = sample_invoice(20)
    first_page = pdf_to_png(render_invoice_pdf(doc), 300)[0]
    assert zbar_raw(first_page) == payment_qr_payload(doc)


def test_same_invoice_gives_the_same_bytes() -> None:
    assert render_invoice_pdf(sample_invoice()) == render_invoice_pdf(sample_invoice())


def test_invoice_without_lines_is_refused() -> None:
    with pytest.raises(ValueError, match="no lines"):
        render_invoice_pdf(replace(sample_invoice(), lines=()))


def test_a_balance_taken_first_shows_as_prepaid_and_the_qr_asks_only_for_the_rest(
    pdf_layout_lines: PdfLines,
) -> None:
    doc = sample_invoice(3)
    prepaid = Decimal("300.00")
    doc = replace(doc, prepaid=prepaid)
    lines = pdf_layout_lines(render_invoice_pdf(doc))
    assert any("Зачтён аванс:" in ln and format_rub(prepaid) in ln for ln in lines)
    assert any("Всего к оплате:" in ln and format_rub(doc.total - prepaid) in ln for ln in lines)
    assert f"|Sum={int((doc.total - prepaid) * 100)}|" in payment_qr_payload(doc)


def _font_programs(pdf: bytes) -> list[bytes]:
    return re.findall(rb"/Length1 \d+\s*>>\s*stream\r?\n(.*?)endstream", pdf, re.DOTALL)


def test_invoices_for_different_buyers_embed_the_same_font_programs(pdftotext: PdfText) -> None:
    first = sample_invoice(3)
    other_buyer = replace(first.buyer, name="ИП Щукин Эдуард Юрьевич", address="г. Йошкар-Ола")
    second = replace(sample_invoice(40, number="2026-00999"), buyer=other_buyer)
    programs = _font_programs(render_invoice_pdf(first))
    assert len(programs) == 2  # DejaVu regular and bold, one subset each
    assert _font_programs(render_invoice_pdf(second)) == programs
    rare = replace(first, buyer=replace(first.buyer, name="ООО «Café Ωmega ½»"))
    rare_pdf = render_invoice_pdf(rare)
    assert "Café Ωmega ½" in pdftotext(rare_pdf)
    assert _font_programs(rare_pdf) != programs  # the rarer letters join the subsets
