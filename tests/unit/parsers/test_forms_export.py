"""Our own forms, generated from the schema, read back through our own parsers."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import openpyxl

from mailbot.forms import (
    FILES,
    TYPES_SHEET,
    blank_application_docx,
    bundled_product_types,
    export_forms,
    invalid_sample_application_docx,
    invalid_sample_products_xlsx,
    sample_application_docx,
    sample_products_xlsx,
)
from mailbot.parsers.application_docx import parse_application
from mailbot.parsers.fields import account_key_ok, ogrn_valid
from mailbot.parsers.limits import Limits
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import ProblemCode
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import APPLICATION_FIELDS, PRODUCT_COLUMNS, ProductType


def test_export_writes_five_files(tmp_path: Path, product_types: tuple[ProductType, ...]) -> None:
    paths = export_forms(tmp_path / "forms", product_types)
    assert sorted(p.name for p in paths) == sorted(FILES.values())
    assert all(p.stat().st_size > 1000 for p in paths)


def test_sample_application_parses_clean_and_pairs_with_sample_products(
    product_types: tuple[ProductType, ...],
) -> None:
    app = parse_application(sample_application_docx(), "a.docx", limits=Limits())
    products = parse_products(
        sample_products_xlsx(product_types), "p.xlsx", limits=Limits(), product_types=product_types
    )
    assert app.problems == [] and products.problems == []
    assert app.value is not None and products.value is not None
    assert len(products.value) == 5
    assert check_pair(app.value, products.value, "a.docx", "p.xlsx") == []


def test_sample_requisites_really_pass_their_control_keys() -> None:
    assert ogrn_valid("1027700132195")
    assert account_key_ok("225", "40702810938000000001")
    assert account_key_ok("0" + "044525225"[4:6], "30101810400000000225")


def test_exported_files_parse_back(tmp_path: Path, product_types: tuple[ProductType, ...]) -> None:
    paths = {p.name: p for p in export_forms(tmp_path, product_types)}
    app = parse_application(
        paths[FILES["application_sample"]].read_bytes(), "a.docx", limits=Limits()
    )
    products = parse_products(
        paths[FILES["products_sample"]].read_bytes(),
        "p.xlsx",
        limits=Limits(),
        product_types=product_types,
    )
    assert app.ok and products.ok
    blank = parse_products(
        paths[FILES["products_blank"]].read_bytes(),
        "b.xlsx",
        limits=Limits(),
        product_types=product_types,
    )
    assert [p.code for p in blank.problems] == [ProblemCode.no_products]


def test_blank_application_has_every_schema_label_and_only_misses_required_values() -> None:
    document = docx.Document(io.BytesIO(blank_application_docx()))
    labels = [row.cells[0].text.rstrip(" *") for row in document.tables[0].rows]
    assert labels == [f.label for f in APPLICATION_FIELDS]
    assert document.paragraphs[0].text == "Заявление о регистрации"
    result = parse_application(blank_application_docx(), "b.docx", limits=Limits())
    assert {p.code for p in result.problems} == {ProblemCode.missing_field}
    required = {f.label for f in APPLICATION_FIELDS if f.required}
    assert {p.location.field for p in result.problems} == required


def test_blank_product_list_has_the_schema_header_and_a_type_drop_down(
    tmp_path: Path,
    product_types: tuple[ProductType, ...],
) -> None:
    paths = {p.name: p for p in export_forms(tmp_path, product_types)}
    wb = openpyxl.load_workbook(paths[FILES["products_blank"]])
    ws = wb.worksheets[0]
    assert [c.value for c in ws[2]] == [c.title for c in PRODUCT_COLUMNS]
    [validation] = ws.data_validations.dataValidation
    assert validation.type == "list" and TYPES_SHEET in (validation.formula1 or "")
    assert str(validation.sqref).startswith("C3:C")
    assert [r[0] for r in wb[TYPES_SHEET].iter_rows(values_only=True)] == [
        t.label for t in product_types
    ]
    assert ws.column_dimensions["B"].width == 48


def test_product_types_list_matches_the_shipped_types(
    tmp_path: Path,
    product_types: tuple[ProductType, ...],
) -> None:
    paths = {p.name: p for p in export_forms(tmp_path, product_types)}
    ws = openpyxl.load_workbook(paths[FILES["product_types"]]).worksheets[0]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert [ProductType(str(c), str(n)) for c, n in rows] == list(product_types)
    assert bundled_product_types() == product_types


def test_invalid_samples_carry_exactly_their_deliberate_problems(
    product_types: tuple[ProductType, ...],
) -> None:
    app = parse_application(invalid_sample_application_docx(), "a.docx", limits=Limits())
    assert [p.code for p in app.problems] == [ProblemCode.inn_checksum, ProblemCode.kpp_missing]
    products = parse_products(
        invalid_sample_products_xlsx(), "p.xlsx", limits=Limits(), product_types=product_types
    )
    assert [(p.code, p.value) for p in products.problems] == [
        (ProblemCode.unknown_product_type, "Продукты питанья"),
        (ProblemCode.duplicate_name, "Печенье сахарное «Ромашка» 250 г"),
    ]
    assert products.problems[0].params["suggestion"] == "01 Продукты питания"
