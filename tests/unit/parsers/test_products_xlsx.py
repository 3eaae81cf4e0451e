"""«Перечень продукции»: header found by meaning, any column order, every bad cell reported."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import ParseResult, Problem, ProblemCode
from mailbot.parsers.products_xlsx import ProductRow, parse_products
from mailbot.parsers.schema import ProductType
from tests.fixtures import forms_builders as fb

H = fb.PRODUCT_HEADER


Parse = Callable[..., ParseResult[list[ProductRow]]]


def rows_of(result: ParseResult[list[ProductRow]]) -> list[ProductRow]:
    """The rows read (the test fails when the file could not be read at all)."""
    assert result.value is not None, result.problems
    return result.value


@pytest.fixture
def parse(product_types: tuple[ProductType, ...]) -> Parse:
    def run(
        data: bytes, name: str = "perechen.xlsx", limits: Limits | None = None
    ) -> ParseResult[list[ProductRow]]:
        return parse_products(data, name, limits=limits or Limits(), product_types=product_types)

    return run


def only(problems: list[Problem]) -> list[tuple[ProblemCode, int | None, str | None]]:
    return [(p.code, p.location.row, p.location.column) for p in problems]


def test_valid_list_gives_one_row_per_product_with_spreadsheet_row_numbers(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([H, *fb.product_rows(5)]))
    assert result.problems == []
    rows = rows_of(result)
    assert [r.row for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0].product_type_code == "01" and rows[0].product_type_name == "Продукты питания"
    assert rows[0].net_quantity == Decimal(250) and rows[0].unit == "г"
    assert (rows[0].okpd2, rows[0].tnved) == ("10.72.12.000", "1905311100")


def test_product_type_is_found_by_code_name_or_both(parse: Parse) -> None:
    rows = [
        [1, "A", "06"],
        [2, "B", "косметика и парфюмерия"],
        [3, "C", "6"],
        [4, "D", "06 Косметика и парфюмерия"],
        [5, "E", 6],
    ]
    result = parse(fb.xlsx_bytes([H[:3], *rows]))
    assert {r.product_type_code for r in rows_of(result)} == {"06"}
    assert result.problems == []


def test_header_below_title_rows_and_moved_columns_are_found(parse: Parse) -> None:
    order = [2, 8, 1, 5, 4, 0, 3, 7, 6]
    header = [H[i] for i in order]
    rows = [[r[i] for i in order] for r in fb.product_rows(3)]
    data = fb.xlsx_bytes(
        [["Перечень продукции ООО «Ромашка»"], [], ["к заявлению от 25.11.2026"], header, *rows],
        merges=["A1:I1"],
    )
    result = parse(data)
    assert result.problems == []
    assert [r.row for r in rows_of(result)] == [5, 6, 7]
    assert rows_of(result)[2].name == "Печенье «Ромашка» вариант 3"


def test_empty_rows_and_rows_with_only_a_number_are_skipped(parse: Parse) -> None:
    rows = fb.product_rows(2)
    data = fb.xlsx_bytes([H, rows[0], [], [None] * 9, [3], [4, "", "", ""], rows[1]])
    result = parse(data)
    assert [r.row for r in rows_of(result)] == [2, 7]


def test_notes_in_margin_columns_are_ignored(parse: Parse) -> None:
    rows = [[*r, None, "позвонить Ивану"] for r in fb.product_rows(2)]
    rows.append([None] * 10 + ["итого 2 позиции"])
    result = parse(fb.xlsx_bytes([H, *rows]))
    assert result.problems == [] and len(rows_of(result)) == 2


def test_vertically_merged_product_type_applies_to_every_merged_row(parse: Parse) -> None:
    rows = fb.product_rows(3)
    rows[1][2] = rows[2][2] = None
    result = parse(fb.xlsx_bytes([H, *rows], merges=["C2:C4"]))
    assert result.problems == []
    assert [r.product_type_code for r in rows_of(result)] == ["01"] * 3


def test_formula_with_cached_value_is_read(parse: Parse) -> None:
    rows = fb.product_rows(2)
    rows[1][4] = "=E2*2"
    result = parse(fb.xlsx_bytes([H, *rows], cached={"E3": "500"}))
    assert result.problems == []
    assert rows_of(result)[1].net_quantity == Decimal(500)


def test_formula_without_cached_value_is_reported_at_its_cell(parse: Parse) -> None:
    rows = fb.product_rows(2)
    rows[1][2] = '=CONCATENATE("0","1")'
    result = parse(fb.xlsx_bytes([H, *rows]))
    assert only(result.problems) == [(ProblemCode.formula_without_value, 3, "Вид продукции")]


def test_misspelt_product_type_gets_a_suggestion(parse: Parse) -> None:
    rows = fb.product_rows(3)
    rows[2][2] = "Продукты питанья"
    problem = parse(fb.xlsx_bytes([H, *rows])).problems[0]
    assert (problem.code, problem.location.row, problem.location.column, problem.value) == (
        ProblemCode.unknown_product_type,
        4,
        "Вид продукции",
        "Продукты питанья",
    )
    assert problem.params["suggestion"] == "01 Продукты питания"


def test_unrelated_product_type_gets_no_suggestion(parse: Parse) -> None:
    rows = fb.product_rows(1)
    rows[0][2] = "Космические корабли"
    assert dict(parse(fb.xlsx_bytes([H, *rows])).problems[0].params) == {}


def test_code_with_a_foreign_name_is_not_guessed(parse: Parse) -> None:
    rows = fb.product_rows(1)
    rows[0][2] = "01 Напитки безалкогольные"
    assert only(parse(fb.xlsx_bytes([H, *rows])).problems) == [
        (ProblemCode.unknown_product_type, 2, "Вид продукции")
    ]


def test_duplicate_names_ignore_case_and_spaces_and_point_to_the_first(parse: Parse) -> None:
    rows = fb.product_rows(3)
    rows[2][1] = "  ПЕЧЕНЬЕ  «Ромашка» вариант 1 "
    problem = parse(fb.xlsx_bytes([H, *rows])).problems[0]
    assert (problem.code, problem.location.row, problem.params["first_row"]) == (
        ProblemCode.duplicate_name,
        4,
        "2",
    )


def test_every_bad_cell_is_reported_with_row_and_column_title_as_written(parse: Parse) -> None:
    header = [
        "№",
        "Наименование товара",
        "Вид продукции",
        "Бренд",
        "Вес",
        "Ед. изм.",
        "Код ОКПД2",
        "ТН ВЭД",
        "Примечание",
    ]
    rows = [
        [1, "", "01", "", "0,5", "", "10.7x", "12", ""],
        [2, "B" * 256, "", "", "много", "кгг", "", "", ""],
        [3, "C", "01", "", "", "", "", "", ""],
    ]
    assert only(parse(fb.xlsx_bytes([header, *rows])).problems) == [
        (ProblemCode.missing_field, 2, "Наименование товара"),
        (ProblemCode.unit_missing, 2, "Ед. изм."),
        (ProblemCode.okpd2_format, 2, "Код ОКПД2"),
        (ProblemCode.tnved_format, 2, "ТН ВЭД"),
        (ProblemCode.name_too_long, 3, "Наименование товара"),
        (ProblemCode.missing_field, 3, "Вид продукции"),
        (ProblemCode.quantity_invalid, 3, "Вес"),
        (ProblemCode.unit_unknown, 3, "Ед. изм."),
    ]


def test_quantity_with_unit_in_one_cell_is_split(parse: Parse) -> None:
    rows = [[1, "Молоко", "01", "", "0,5 л", "", "", "", ""]]
    row = rows_of(parse(fb.xlsx_bytes([H, *rows])))[0]
    assert (row.net_quantity, row.unit) == (Decimal("0.5"), "л")


def test_unit_spellings_are_normalised(parse: Parse) -> None:
    rows = [
        [i, f"T{i}", "01", "", 1, u, "", "", ""]
        for i, u in enumerate(["гр.", "Кг", "литр", "шт.", "ML"], start=1)
    ]
    units = [r.unit for r in rows_of(parse(fb.xlsx_bytes([H, *rows])))]
    assert units == ["г", "кг", "л", "шт", "мл"]


def test_tnved_typed_as_a_number_gets_its_leading_zero_back(parse: Parse) -> None:
    rows = [[1, "Мёд", "01", "", "", "", "", 409000000, ""]]
    assert rows_of(parse(fb.xlsx_bytes([H, *rows])))[0].tnved == "0409000000"


def test_numbers_typed_as_text_are_accepted(parse: Parse) -> None:
    rows = [["1", "Сок", "02", "", "1,0", "л", "11.07", "2009", ""]]
    result = parse(fb.xlsx_bytes([H, *rows]))
    assert result.problems == []
    assert rows_of(result)[0].net_quantity == Decimal("1.0")


def test_first_sheet_that_is_empty_is_passed_over(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([H, *fb.product_rows(2)], empty_first_sheet=True, title="Товары"))
    assert result.problems == [] and len(rows_of(result)) == 2


def test_sheet_without_a_recognisable_header_is_reported(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([["Товар", "Тип"], ["Печенье", "еда"]]))
    assert [p.code for p in result.problems] == [ProblemCode.header_not_found]
    assert result.value is None


def test_header_without_required_column_names_the_column(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([["№", "Наименование продукции", "Бренд"], [1, "A", "B"]]))
    assert [(p.code, p.params["column"]) for p in result.problems] == [
        (ProblemCode.column_missing, "Вид продукции")
    ]


def test_header_without_rows_is_no_products(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([H, [1], [2], [3]]))
    assert [p.code for p in result.problems] == [ProblemCode.no_products]


def test_more_rows_than_the_limit_is_refused(parse: Parse) -> None:
    result = parse(fb.xlsx_bytes([H, *fb.product_rows(30)]), limits=Limits(max_rows=20))
    assert [(p.code, p.params["max"]) for p in result.problems] == [
        (ProblemCode.too_many_rows, "20")
    ]
    assert result.value is None


def test_exactly_the_row_limit_is_accepted(parse: Parse) -> None:
    rows = fb.product_rows(20)
    for i, r in enumerate(rows):
        r[1] = f"Товар {i}"
    assert parse(fb.xlsx_bytes([H, *rows]), limits=Limits(max_rows=20)).ok


def test_ods_is_read(parse: Parse) -> None:
    result = parse(fb.ods_bytes([["Перечень"], H, *fb.product_rows(3)]), "perechen.ods")
    assert result.problems == []
    assert [r.row for r in rows_of(result)] == [3, 4, 5]


def test_cp1251_csv_with_semicolons_is_read(parse: Parse) -> None:
    result = parse(fb.csv_bytes([H, *fb.product_rows(3)]), "perechen.csv")
    assert result.problems == []
    assert rows_of(result)[0].name == "Печенье «Ромашка» вариант 1"
    assert rows_of(result)[0].product_type_code == "01"


def test_utf8_csv_with_bom_and_commas_is_read(parse: Parse) -> None:
    rows = [[1, "Мука, 1 кг", "01", "", "1", "кг", "", "", ""]]
    data = fb.csv_bytes([H, *rows], delimiter=",", encoding="utf-8", bom=True)
    result = parse(data, "perechen.csv")
    assert result.problems == []
    assert rows_of(result)[0].name == "Мука, 1 кг"


def test_utf8_csv_without_bom_is_read(parse: Parse) -> None:
    data = fb.csv_bytes([H, *fb.product_rows(1)], encoding="utf-8")
    assert rows_of(parse(data, "perechen.csv"))[0].unit == "г"


def test_product_problems_carry_the_sheet_name(parse: Parse) -> None:
    rows = fb.product_rows(1)
    rows[0][2] = "Неизвестно что"
    problem = parse(fb.xlsx_bytes([H, *rows], title="Товары")).problems[0]
    assert problem.location.sheet == "Товары"
