"""«Счёт на оплату» PDF: what an accountant reads in it, paging, fonts, and the scannable QR."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.documents.qr import payment_qr_payload
from mailbot.documents.samples import sample_invoice
from mailbot.money import VatMode, amount_in_words, format_rub

from .conftest import PdfLines, PdfText


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
