"""The document seam: dates in Russian, invoice totals and the payment purpose."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from mailbot.billing.money import VatMode
from mailbot.documents.model import long_date, short_date
from mailbot.documents.samples import BUYER, SOLE_TRADER, sample_invoice


def test_long_date_uses_the_genitive_month() -> None:
    assert long_date(date(2026, 11, 25)) == "25 ноября 2026 г."
    assert long_date(date(2026, 3, 1)) == "1 марта 2026 г."
    assert short_date(date(2026, 3, 1)) == "01.03.2026"


def test_invoice_total_and_vat_come_from_the_lines() -> None:
    doc = sample_invoice()
    assert doc.total == Decimal("7980.00")
    assert doc.vat == Decimal("1439.02")


def test_purpose_with_vat() -> None:
    assert sample_invoice().purpose == (
        "Оплата по счёту № 2026-00123 от 25.11.2026 за регистрацию штрихкодов. "
        "В том числе НДС 22% — 1 439,02 руб."
    )


def test_purpose_without_vat() -> None:
    doc = replace(sample_invoice(), vat_mode=VatMode.NONE)
    assert doc.vat is None
    assert doc.purpose.endswith("за регистрацию штрихкодов. Без налога (НДС)")


def test_requisites_line_leaves_out_kpp_for_a_sole_trader() -> None:
    assert SOLE_TRADER.requisites == (
        "ИП Иванова Мария Петровна, ИНН 770412345664, 109012, г. Москва, ул. Ильинка, д. 4"
    )
    assert "КПП 500301001" in BUYER.requisites
