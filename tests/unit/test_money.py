"""Money: kopeck rounding, VAT modes, amounts in words, tariffs."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from mailbot.billing.money import (
    BARCODES_LINE,
    REGISTRATION_LINE,
    InvoiceLine,
    Tariffs,
    Tier,
    VatMode,
    amount_in_words,
    format_rub,
    price_lines,
    tier_price,
    to_kopecks,
    to_money,
    validate_tariffs,
    vat_included,
    vat_label,
)

D = Decimal
TARIFFS = Tariffs(
    registration_fee=D("4500.00"),
    tiers=(
        Tier(1, 9, D("350.00")),
        Tier(10, 99, D("290.00")),
        Tier(100, 999, D("215.50")),
        Tier(1000, None, D("149.90")),
    ),
)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (VatMode.VAT_22, D("180.33")),  # 180.327…
        (VatMode.VAT_10, D("90.91")),  # 90.909…
        (VatMode.VAT_5, D("47.62")),  # 47.619…
        (VatMode.VAT_7, D("65.42")),  # 65.420…
        (VatMode.VAT_0, D("0.00")),
        (VatMode.NONE, None),
    ],
)
def test_vat_included_in_1000_rub_for_each_mode(mode: VatMode, expected: Decimal | None) -> None:
    assert vat_included(D("1000.00"), mode) == expected


def test_vat_modes_parse_from_config_strings() -> None:
    assert [VatMode(v) for v in ("22", "10", "5", "7", "0", "none")] == list(VatMode)


@pytest.mark.parametrize("mode", [VatMode.VAT_22, VatMode.VAT_10, VatMode.VAT_5, VatMode.VAT_7])
def test_vat_matches_exact_half_up_rounding_for_every_kopeck_total_up_to_50_rub(
    mode: VatMode,
) -> None:
    rate = int(mode.value)
    for kopecks in range(1, 5001):
        exact = Fraction(kopecks, 100) * rate / (100 + rate) * 100  # VAT in kopecks
        whole, rest = divmod(exact, 1)
        expected = whole + (1 if rest >= Fraction(1, 2) else 0)
        assert vat_included(D(kopecks) / 100, mode) == D(int(expected)) / 100, kopecks


def test_vat_of_a_large_total_keeps_kopecks_exact() -> None:
    assert vat_included(D("12345678.91"), VatMode.VAT_22) == D("2226269.97")  # 2226269.9672…


def test_to_money_rounds_half_up_not_half_even() -> None:
    assert to_money(D("0.005")) == D("0.01")
    assert to_money(D("0.015")) == D("0.02")
    assert to_money(D("0.025")) == D("0.03")
    assert to_money(D("2.675")) == D("2.68")
    assert to_money(D("-0.005")) == D("-0.01")


def test_to_money_refuses_float() -> None:
    with pytest.raises(TypeError):
        to_money(1.5)  # type: ignore[arg-type]


def test_to_kopecks() -> None:
    assert to_kopecks(D("12345.67")) == 1234567
    assert to_kopecks(D("0.01")) == 1


def test_vat_label() -> None:
    assert vat_label(VatMode.VAT_22) == "В том числе НДС 22%"
    assert vat_label(VatMode.VAT_0) == "В том числе НДС 0%"
    assert vat_label(VatMode.NONE) == "Без налога (НДС)"


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("0.01", "Ноль рублей, одна копейка"),
        ("1", "Один рубль, ноль копеек"),
        ("2", "Два рубля, ноль копеек"),
        ("5", "Пять рублей, ноль копеек"),
        ("21", "Двадцать один рубль, ноль копеек"),
        ("1000000.00", "Один миллион рублей, ноль копеек"),
        ("12345.67", "Двенадцать тысяч триста сорок пять рублей, шестьдесят семь копеек"),
    ],
)
def test_amount_in_words(amount: str, words: str) -> None:
    assert amount_in_words(D(amount)) == words


def test_amount_in_words_reads_an_int_as_roubles_not_kopecks() -> None:
    assert amount_in_words(1000000) == "Один миллион рублей, ноль копеек"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("12345.67", "12 345,67"),
        ("0", "0,00"),
        ("999.5", "999,50"),
        ("1234567.891", "1 234 567,89"),
        ("1000000", "1 000 000,00"),
    ],
)
def test_format_rub(amount: str, text: str) -> None:
    assert format_rub(D(amount)) == text


def test_invoice_line_amount_is_qty_times_price() -> None:
    assert InvoiceLine("x", 12, "шт.", D("290.00")).amount == D("3480.00")


def test_default_like_tariffs_are_valid() -> None:
    assert validate_tariffs(TARIFFS) == []


def _with_tiers(*tiers: Tier) -> Tariffs:
    return Tariffs(D("4500"), tiers)


def test_validation_names_a_negative_price_by_its_key() -> None:
    tariffs = _with_tiers(Tier(1, 9, D(350)), Tier(10, 99, D(290)), Tier(100, None, D("-1")))
    assert validate_tariffs(tariffs) == ["tariffs.tiers[2].price: must not be negative (got -1)"]


def test_validation_reports_a_gap_between_tiers() -> None:
    problems = validate_tariffs(_with_tiers(Tier(1, 9, D(350)), Tier(12, None, D(290))))
    assert problems == ["tariffs.tiers[1].min_qty: gap, quantities 10..11 have no price"]


def test_validation_reports_an_overlap_between_tiers() -> None:
    problems = validate_tariffs(_with_tiers(Tier(1, 9, D(350)), Tier(5, None, D(290))))
    assert problems == ["tariffs.tiers[1].min_qty: overlap, 5 is already priced (expected 10)"]


def test_validation_requires_the_first_tier_to_start_at_one() -> None:
    problems = validate_tariffs(_with_tiers(Tier(2, None, D(350))))
    assert problems == ["tariffs.tiers[0].min_qty: gap, quantities 1..1 have no price"]


def test_validation_requires_an_open_last_tier() -> None:
    problems = validate_tariffs(_with_tiers(Tier(1, 9, D(350)), Tier(10, 99, D(290))))
    assert problems == [
        "tariffs.tiers[1].max_qty: quantities from 100 have no price (leave the last max_qty empty)"
    ]


def test_validation_reports_every_problem_at_once() -> None:
    tariffs = Tariffs(
        D("-10"),
        (
            Tier(1, 9, D("350.001")),
            Tier(9, 5, D(290)),
            Tier(20, None, D(100)),
            Tier(30, None, D(1)),
        ),
    )
    problems = validate_tariffs(tariffs, key="prices")
    assert problems == [
        "prices.registration_fee: must not be negative (got -10)",
        "prices.tiers[0].price: more than two decimal places (got 350.001)",
        "prices.tiers[1].max_qty: 5 is below min_qty 9",
        "prices.tiers[1].min_qty: overlap, 9 is already priced (expected 10)",
        "prices.tiers[2].min_qty: gap, quantities 10..19 have no price",
        "prices.tiers[3].min_qty: the previous tier has no upper bound",
    ]


def test_validation_requires_at_least_one_tier() -> None:
    assert validate_tariffs(Tariffs(D(0), ())) == ["tariffs.tiers: at least one tier is required"]


def test_new_client_pays_registration_and_codes_at_the_tier_price() -> None:
    assert price_lines(TARIFFS, 12, new_client=True) == [
        InvoiceLine(REGISTRATION_LINE, 1, "усл.", D("4500.00")),
        InvoiceLine(BARCODES_LINE, 12, "шт.", D("290.00")),
    ]


def test_known_client_order_has_no_registration_line() -> None:
    assert price_lines(TARIFFS, 1000, new_client=False) == [
        InvoiceLine(BARCODES_LINE, 1000, "шт.", D("149.90")),
    ]


@pytest.mark.parametrize(
    ("count", "price"),
    [(1, "350.00"), (9, "350.00"), (10, "290.00"), (99, "290.00"), (100, "215.50"),
     (999, "215.50"), (1000, "149.90"), (10**6, "149.90")],
)  # fmt: skip
def test_tier_boundaries(count: int, price: str) -> None:
    assert tier_price(TARIFFS, count) == D(price)


def test_price_lines_refuses_zero_codes() -> None:
    with pytest.raises(ValueError, match="positive"):
        price_lines(TARIFFS, 0, new_client=True)
