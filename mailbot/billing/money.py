"""Money arithmetic: kopeck rounding, VAT modes, amounts in words and tariff pricing.

Money is a `Decimal` with two places end to end; no float ever enters. Pure functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from num2words import num2words

KOPECK = Decimal("0.01")


class VatMode(StrEnum):
    """VAT mode from config; prices always include VAT."""

    VAT_22 = "22"
    VAT_10 = "10"
    VAT_5 = "5"
    VAT_7 = "7"
    VAT_0 = "0"
    NONE = "none"


def to_money(value: Decimal | int | str) -> Decimal:
    """Return `value` as a Decimal rounded half-up to kopecks; floats are refused."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    return Decimal(value).quantize(KOPECK, rounding=ROUND_HALF_UP)


def to_kopecks(value: Decimal) -> int:
    """Return the amount as whole kopecks."""
    return int(to_money(value) * 100)


def vat_rate(mode: VatMode) -> int | None:
    """Return the rate in percent, or None when the seller pays no VAT."""
    return None if mode is VatMode.NONE else int(mode.value)


def vat_included(total: Decimal, mode: VatMode) -> Decimal | None:
    """Return the VAT inside a VAT-inclusive `total`: total×rate/(100+rate), half-up to kopecks."""
    rate = vat_rate(mode)
    if rate is None:
        return None
    return to_money(Decimal(total) * rate / (100 + rate))


def vat_label(mode: VatMode) -> str:
    """Return «В том числе НДС 22%» or «Без налога (НДС)»."""
    rate = vat_rate(mode)
    return "Без налога (НДС)" if rate is None else f"В том числе НДС {rate}%"


def amount_in_words(amount: Decimal) -> str:
    """Return «Двенадцать тысяч … рублей, шестьдесят семь копеек» for a Decimal amount.

    num2words reads an int as kopecks, so the value always goes in as a two-place Decimal.
    """
    words: str = num2words(to_money(amount), lang="ru", to="currency", currency="RUB")
    return words[:1].upper() + words[1:]


def format_rub(amount: Decimal) -> str:
    """Return «12 345,67»: spaces between thousands, a decimal comma, always two places."""
    text = f"{to_money(amount):,.2f}"
    return text.replace(",", " ").replace(".", ",")


@dataclass(frozen=True)
class InvoiceLine:
    """One priced line of an invoice (prices include VAT)."""

    name: str
    qty: int
    unit: str
    price: Decimal

    @property
    def amount(self) -> Decimal:
        """Return qty × price in kopecks."""
        return to_money(self.price * self.qty)


@dataclass(frozen=True)
class Tier:
    """Per-barcode price for orders of `min_qty`..`max_qty` codes (None = no upper bound)."""

    min_qty: int
    max_qty: int | None
    price: Decimal


@dataclass(frozen=True)
class Tariffs:
    """Registration fee for a new client and the per-barcode tiers."""

    registration_fee: Decimal
    tiers: tuple[Tier, ...]


REGISTRATION_LINE = "Регистрация в системе штрихкодирования (разовый взнос)"
BARCODES_LINE = "Присвоение штрихкодов EAN-13"


def _price_problems(key: str, price: Decimal) -> list[str]:
    if not isinstance(price, Decimal) or not price.is_finite():
        return [f"{key}: must be a decimal amount"]
    problems = []
    if price < 0:
        problems.append(f"{key}: must not be negative (got {price})")
    if price != price.quantize(KOPECK):
        problems.append(f"{key}: more than two decimal places (got {price})")
    return problems


def validate_tariffs(tariffs: Tariffs, *, key: str = "tariffs") -> list[str]:
    """Return every problem of the tariff table, each message starting with its config key."""
    problems = _price_problems(f"{key}.registration_fee", tariffs.registration_fee)
    if not tariffs.tiers:
        return [*problems, f"{key}.tiers: at least one tier is required"]
    expected_min: int | None = 1
    for i, tier in enumerate(tariffs.tiers):
        here = f"{key}.tiers[{i}]"
        problems += _price_problems(f"{here}.price", tier.price)
        if tier.max_qty is not None and tier.max_qty < tier.min_qty:
            problems.append(f"{here}.max_qty: {tier.max_qty} is below min_qty {tier.min_qty}")
        if expected_min is None:
            problems.append(f"{here}.min_qty: the previous tier has no upper bound")
        elif tier.min_qty > expected_min:
            problems.append(
                f"{here}.min_qty: gap, quantities {expected_min}..{tier.min_qty - 1} have no price"
            )
        elif tier.min_qty < expected_min:
            problems.append(
                f"{here}.min_qty: overlap, {tier.min_qty} is already priced "
                f"(expected {expected_min})"
            )
        expected_min = None if tier.max_qty is None else max(tier.max_qty, tier.min_qty) + 1
    if expected_min is not None:
        last = len(tariffs.tiers) - 1
        problems.append(
            f"{key}.tiers[{last}].max_qty: quantities from {expected_min} have no price "
            "(leave the last max_qty empty)"
        )
    return problems


def tier_price(tariffs: Tariffs, count: int) -> Decimal:
    """Return the per-barcode price of the tier covering `count`; ValueError if none does."""
    for tier in tariffs.tiers:
        if tier.min_qty <= count and (tier.max_qty is None or count <= tier.max_qty):
            return tier.price
    raise ValueError(f"no tariff tier covers {count} barcodes")


def price_lines(tariffs: Tariffs, count: int, *, new_client: bool) -> list[InvoiceLine]:
    """Return the invoice lines: the registration fee for a new client, then `count` codes."""
    if count < 1:
        raise ValueError(f"barcode count must be positive, got {count}")
    lines = []
    if new_client:
        lines.append(InvoiceLine(REGISTRATION_LINE, 1, "усл.", to_money(tariffs.registration_fee)))
    lines.append(InvoiceLine(BARCODES_LINE, count, "шт.", to_money(tier_price(tariffs, count))))
    return lines
