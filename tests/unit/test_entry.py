"""Amounts, dates and reasons as an accountant types them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.billing.entry import MAX_AMOUNT, EntryError, parse_amount, parse_day, parse_reason

TODAY = date(2026, 12, 4)


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("2 500,00", "2500.00"),
        ("2500.00", "2500.00"),
        ("2500", "2500.00"),
        ("2\u00a0500,5", "2500.50"),
        ("1 234 567,89 руб.", "1234567.89"),
        ("0,01", "0.01"),
        (" 900 ₽ ", "900.00"),
    ],
)
def test_amounts_written_the_way_accountants_write_them_are_read(typed: str, value: str) -> None:
    assert parse_amount(typed) == Decimal(value)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("0", "zero"),
        ("0,00", "zero"),
        ("-2500", "negative"),
        ("NaN", "not a sum"),
        ("Infinity", "not a sum"),
        ("-Infinity", "negative"),
        ("1e3", "not a sum"),
        ("1e30", "not a sum"),
        ("2500,001", "more than 2 decimals"),
        ("999999999999", "larger than"),
        ("abc", "not a sum"),
        ("", "not a sum"),
        ("2,500.00", "not a sum"),
    ],
)
def test_amounts_that_are_not_money_are_refused_with_one_line(typed: str, says: str) -> None:
    with pytest.raises(EntryError) as err:
        parse_amount(typed)
    assert says in str(err.value)
    assert "\n" not in str(err.value)


@given(st.decimals(min_value=Decimal("0.01"), max_value=MAX_AMOUNT, places=2))
def test_any_amount_printed_russian_style_reads_back_the_same(value: Decimal) -> None:
    russian = f"{value:,.2f}".replace(",", "\u00a0").replace(".", ",")
    assert parse_amount(russian) == value
    assert parse_amount(f"{value:.2f}") == value


@pytest.mark.parametrize("typed", ["04.12.2026", "2026-12-04", "4.12.2026"])
def test_both_date_spellings_are_read(typed: str) -> None:
    assert parse_day(typed, today=TODAY) == TODAY


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("05.12.2026", "in the future"),
        ("2030-01-01", "in the future"),
        ("31.02.2026", "does not exist"),
        ("12/04/2026", "DD.MM.YYYY"),
        ("yesterday", "DD.MM.YYYY"),
    ],
)
def test_impossible_or_future_dates_are_refused(typed: str, says: str) -> None:
    with pytest.raises(EntryError) as err:
        parse_day(typed, today=TODAY)
    assert says in str(err.value)


def test_a_force_reason_must_say_something() -> None:
    assert parse_reason("  paid   in two parts ") == "paid in two parts"
    for blank in ("", "   ", "\t\n"):
        with pytest.raises(EntryError):
            parse_reason(blank)
