"""«Свидетельство о присвоении штрихкодов» PDF: issuer, client, every code, paging."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from mailbot.documents.certificate_pdf import render_certificate_pdf
from mailbot.documents.samples import sample_certificate

from .conftest import PdfLines, PdfText


def test_certificate_names_issuer_client_application_and_every_code(
    pdftotext: PdfText, pdf_layout_lines: PdfLines
) -> None:
    doc = sample_certificate(40)
    pdf = render_certificate_pdf(doc)
    text = pdftotext(pdf)
    for expected in (
        "ООО «Штрихкод-Сервис»",
        "ИНН 7701123451, КПП 770101001",
        "СВИДЕТЕЛЬСТВО о присвоении штрихкодов",
        "№ EAN-2026-000123 от 25 ноября 2026 г.",
        "ООО «Молочная ферма „Заречье“» (ИНН 5003987659, КПП 500301001",
        "в количестве 40 шт.",
        "Руководитель",
    ):
        assert expected in text, expected
    lines = pdf_layout_lines(pdf)
    assert "№ EAN-13 Наименование продукции" in lines
    for number, code in enumerate(doc.codes, start=1):
        assert f"{number} {code.ean} {code.name}" in lines, code.ean


def test_thousands_of_codes_page_with_the_header_repeated(
    pdf_pages: Callable[[bytes], list[str]],
) -> None:
    doc = sample_certificate(2000)
    pages = pdf_pages(render_certificate_pdf(doc))
    assert len(pages) > 30
    assert all("Наименование продукции" in page for page in pages)
    text = "".join(pages)
    assert all(code.ean in text for code in doc.codes)


def test_long_names_wrap_inside_the_cell(pdftotext: PdfText) -> None:
    doc = sample_certificate(3)
    long_name = "Сыр полутвёрдый " * 12 + "конец"
    doc = replace(doc, codes=(replace(doc.codes[0], name=long_name.strip()), *doc.codes[1:]))
    text = pdftotext(render_certificate_pdf(doc))
    assert " ".join(long_name.split()) in text


def test_certificate_refuses_no_codes_and_bad_eans() -> None:
    doc = sample_certificate(2)
    with pytest.raises(ValueError, match="no codes"):
        render_certificate_pdf(replace(doc, codes=()))
    with pytest.raises(ValueError, match="check digit"):
        render_certificate_pdf(replace(doc, codes=(replace(doc.codes[0], ean="4601234000001"),)))
