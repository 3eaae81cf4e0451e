"""The document seam: frozen data the renderers take, with the invoice's computed totals.

`InvoiceLine` lives in `mailbot.billing.money` (tariff pricing builds it) and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from mailbot.billing.money import (
    InvoiceLine,
    VatMode,
    format_rub,
    to_money,
    vat_included,
    vat_label,
)

__all__ = [
    "CertificateDoc",
    "InvoiceDoc",
    "InvoiceLine",
    "IssuedCode",
    "Party",
    "long_date",
    "short_date",
]

_MONTHS_GENITIVE = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip


def long_date(day: date) -> str:
    """Return «25 ноября 2026 г.»."""
    return f"{day.day} {_MONTHS_GENITIVE[day.month - 1]} {day.year} г."


def short_date(day: date) -> str:
    """Return «25.11.2026»."""
    return day.strftime("%d.%m.%Y")


@dataclass(frozen=True)
class Party:
    """A company or sole trader with its requisites (bank fields needed for the supplier)."""

    name: str
    inn: str
    kpp: str | None
    address: str
    bank: str | None = None
    bik: str | None = None
    account: str | None = None
    corr_account: str | None = None
    phone: str | None = None

    @property
    def inn_kpp(self) -> str:
        """Return «ИНН 7707083893, КПП 773601001» (no КПП for a sole trader)."""
        return f"ИНН {self.inn}" + (f", КПП {self.kpp}" if self.kpp else "")

    @property
    def requisites(self) -> str:
        """Return the one-line requisites used after «Поставщик:» / «Покупатель:»."""
        parts = [self.name, self.inn_kpp, self.address]
        if self.phone:
            parts.append(f"тел.: {self.phone}")
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class InvoiceDoc:
    """«Счёт на оплату»: prices include VAT; totals are computed, never stored."""

    number: str
    date: date
    supplier: Party
    buyer: Party
    lines: tuple[InvoiceLine, ...]
    vat_mode: VatMode
    application_number: str
    due_days: int
    prepaid: Decimal = Decimal("0.00")  # taken from the client's balance («Зачтён аванс»)

    @property
    def total(self) -> Decimal:
        """Return the sum of the line amounts."""
        return to_money(sum((line.amount for line in self.lines), Decimal(0)))

    @property
    def due(self) -> Decimal:
        """Return what is left to pay: the total less the prepaid balance."""
        return to_money(self.total - self.prepaid)

    @property
    def vat(self) -> Decimal | None:
        """Return the VAT included in the total, None without VAT."""
        return vat_included(self.total, self.vat_mode)

    @property
    def vat_text(self) -> str:
        """Return «В том числе НДС 22% — 1 234,56 руб.» or «Без налога (НДС)»."""
        vat = self.vat
        label = vat_label(self.vat_mode)
        return label if vat is None else f"{label} — {format_rub(vat)} руб."

    @property
    def purpose(self) -> str:
        """Return the payment purpose the client is asked to write."""
        return (
            f"Оплата по счёту № {self.number} от {short_date(self.date)} "
            f"за регистрацию штрихкодов. {self.vat_text}"
        )


@dataclass(frozen=True)
class IssuedCode:
    """One assigned EAN-13 and the product it was assigned to."""

    ean: str
    name: str
    product_type: str
    brand: str | None
    net_quantity: str | None


@dataclass(frozen=True)
class CertificateDoc:
    """«Свидетельство о присвоении штрихкодов»; `number` is the application number."""

    number: str
    date: date
    client: Party
    codes: tuple[IssuedCode, ...]
    service: Party
