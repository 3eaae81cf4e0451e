"""Validators of requisites: each returns the normalised value or a Problem with its code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from stdnum.ru import ogrn as stdnum_ogrn

from mailbot.parsers import fields as f
from mailbot.parsers.problems import Location, Problem, ProblemCode

AT = Location("z.docx", field="ИНН")


def code(result: object) -> ProblemCode | None:
    return result.code if isinstance(result, Problem) else None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7707083893", "7707083893"),
        (" 7707 083 893 ", "7707083893"),
        ("500100732259", "500100732259"),
    ],
)
def test_inn_valid_is_returned_as_digits(raw: str, expected: str) -> None:
    assert f.check_inn(raw, AT) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("7707083895", ProblemCode.inn_checksum),
        ("500100732250", ProblemCode.inn_checksum),
        ("770708389", ProblemCode.inn_length),
        ("77070838931", ProblemCode.inn_length),
        ("77070838ЗЗ", ProblemCode.inn_length),
    ],
)
def test_inn_invalid_gives_its_problem_with_the_value_as_written(
    raw: str, problem: ProblemCode
) -> None:
    result = f.check_inn(raw, AT)
    assert code(result) == problem
    assert isinstance(result, Problem) and result.value == raw and result.location == AT


@pytest.mark.parametrize("raw", ["773601001", "7736AB001", "7736 01 001"])
def test_kpp_accepts_digits_and_capital_latin_letters_in_positions_5_6(raw: str) -> None:
    assert f.check_kpp(raw, AT) == raw.replace(" ", "")


@pytest.mark.parametrize("raw", ["77360100", "77360100A", "7736АВ001", "A73601001"])
def test_kpp_rejects_wrong_shape_and_cyrillic_letters(raw: str) -> None:
    assert code(f.check_kpp(raw, AT)) == ProblemCode.kpp_format


def test_ogrn_of_organisation_is_valid() -> None:
    assert f.check_ogrn("1027700132195", AT, inn="7707083893") == "1027700132195"


def test_ogrn_with_wrong_control_digit_is_rejected() -> None:
    assert code(f.check_ogrn("1027700132196", AT)) == ProblemCode.ogrn_checksum


def test_ogrnip_is_valid() -> None:
    assert f.check_ogrn("304500116000157", AT, inn="500100732259") == "304500116000157"


def test_ogrnip_whose_remainder_is_10_to_12_is_valid_although_stdnum_rejects_it() -> None:
    number = "398386756508891"  # first 14 digits mod 13 = 11 → control digit 1
    assert int(number[:14]) % 13 >= 10
    assert not stdnum_ogrn.is_valid(number)
    assert f.check_ogrn(number, AT) == number


@pytest.mark.parametrize(
    ("ogrn", "inn", "holder"),
    [
        ("1027700132195", "500100732259", "ip"),
        ("304500116000157", "7707083893", "org"),
    ],
)
def test_ogrn_type_must_agree_with_inn_length(ogrn: str, inn: str, holder: str) -> None:
    result = f.check_ogrn(ogrn, AT, inn=inn)
    assert isinstance(result, Problem) and result.code == ProblemCode.ogrn_type_mismatch
    assert result.params["holder"] == holder


@pytest.mark.parametrize("raw", ["102770013219", "30450011600015", "1027700l32195"])
def test_ogrn_of_wrong_length_is_a_format_problem(raw: str) -> None:
    assert code(f.check_ogrn(raw, AT)) == ProblemCode.ogrn_format


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("044525225", True),
        ("04 45 25 225", True),
        ("144525225", False),
        ("04452522", False),
    ],
)
def test_bik_is_nine_digits_starting_04(raw: str, *, ok: bool) -> None:
    result = f.check_bik(raw, AT)
    assert (result == raw.replace(" ", "")) if ok else code(result) == ProblemCode.bik_format


def test_settlement_account_key_agrees_with_bik() -> None:
    assert f.check_account("40702810938000000001", AT, bik="044525225") == "40702810938000000001"


def test_settlement_account_with_wrong_key_is_rejected_naming_the_bik() -> None:
    result = f.check_account("40702810038000000001", AT, bik="044525225")
    assert isinstance(result, Problem) and result.code == ProblemCode.account_key
    assert result.params["bik"] == "044525225"


def test_settlement_account_key_is_not_checked_without_a_valid_bik() -> None:
    assert f.check_account("40702810038000000001", AT, bik=None) == "40702810038000000001"


def test_settlement_account_must_have_20_digits() -> None:
    assert code(f.check_account("4070281093800000000", AT, bik=None)) == (
        ProblemCode.account_format
    )


def test_corr_account_key_agrees_with_bik() -> None:
    assert f.check_corr_account("30101 810 4 00000000225", AT, bik="044525225") == (
        "30101810400000000225"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("30101810500000000225", ProblemCode.corr_account_key),
        ("40101810400000000225", ProblemCode.corr_account_format),
        ("3010181040000000022", ProblemCode.corr_account_format),
    ],
)
def test_corr_account_must_start_30101_and_match_bik(raw: str, problem: ProblemCode) -> None:
    assert code(f.check_corr_account(raw, AT, bik="044525225")) == problem


@pytest.mark.parametrize(
    "raw",
    [
        "+7 (495) 123-45-67",
        "8 495 123 45 67",
        "84951234567",
        "(495) 123-45-67",
        "+7-495-123-45-67 доб. 12",
        "+7 495 123-45-67, +7 916 000-00-00",
    ],
)
def test_phone_is_normalised_to_plus7(raw: str) -> None:
    assert f.check_phone(raw, AT) == "+74951234567"


@pytest.mark.parametrize("raw", ["123-45-67", "+44 20 7946 0958", "телефон", "+7 495 123 45 6"])
def test_phone_that_is_not_russian_or_is_short_is_rejected(raw: str) -> None:
    assert code(f.check_phone(raw, AT)) == ProblemCode.phone_format


def test_email_is_normalised() -> None:
    assert f.check_email(" zakaz@Romashka.EXAMPLE ", AT) == "zakaz@romashka.example"


@pytest.mark.parametrize("raw", ["zakaz@", "zakaz romashka.ru", "zakaz@@romashka.ru", "@ya.ru"])
def test_email_with_bad_syntax_is_rejected(raw: str) -> None:
    assert code(f.check_email(raw, AT)) == ProblemCode.email_invalid


@pytest.mark.parametrize(
    "raw",
    ["25.11.2026", "25 ноября 2026 г.", "«25» ноября 2026 г.", "25 ноября 2026", "25.11.2026 г."],
)
def test_date_reads_dotted_and_worded_forms(raw: str) -> None:
    assert f.check_date(raw, AT) == dt.date(2026, 11, 25)


@pytest.mark.parametrize("raw", ["31.02.2026", "25 ноябрь 2026", "2026-11-25", "вчера"])
def test_date_that_is_impossible_or_unknown_is_rejected(raw: str) -> None:
    assert code(f.check_date(raw, AT)) == ProblemCode.date_format


@pytest.mark.parametrize(("raw", "n"), [("5", 5), ("1 000", 1000), ("12 шт.", 12), ("7,0", 7)])
def test_count_reads_whole_numbers(raw: str, n: int) -> None:
    assert f.check_count(raw, AT) == n


@pytest.mark.parametrize("raw", ["0", "пять", "2,5", "-3"])
def test_count_must_be_a_positive_whole_number(raw: str) -> None:
    assert code(f.check_count(raw, AT)) == ProblemCode.barcode_count_invalid


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0,5", Decimal("0.5")), ("1 000", Decimal(1000)), ("x", None), ("-1", None), ("NaN", None)],
)
def test_decimal_accepts_comma_and_spaces_only_for_non_negative_numbers(
    raw: str, value: Decimal | None
) -> None:
    assert f.check_decimal(raw) == value


@pytest.mark.parametrize(
    ("raw", "is_blank"),
    [
        ("", True),
        ("—", True),
        ("___", True),
        ("нет", True),
        ("-", True),
        ("0", False),
    ],
)
def test_placeholders_count_as_blank(raw: str, *, is_blank: bool) -> None:
    assert f.blank(raw) is is_blank
