"""Rules across both files."""

from __future__ import annotations

from mailbot.parsers.application_docx import ApplicationForm
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import Document, ProblemCode
from mailbot.parsers.products_xlsx import ProductRow


def rows(n: int) -> list[ProductRow]:
    return [
        ProductRow(
            row=i + 2, name=f"T{i}", product_type_code="01", product_type_name="Продукты питания"
        )
        for i in range(n)
    ]


def test_barcode_count_equal_to_rows_is_fine() -> None:
    assert check_pair(ApplicationForm(barcode_count=3), rows(3), "z.docx", "p.xlsx") == []


def test_barcode_count_not_given_is_fine() -> None:
    assert check_pair(ApplicationForm(), rows(3), "z.docx", "p.xlsx") == []


def test_barcode_count_other_than_rows_is_reported_on_the_application() -> None:
    [problem] = check_pair(ApplicationForm(barcode_count=5), rows(3), "z.docx", "p.xlsx")
    assert problem.code == ProblemCode.barcode_count_mismatch
    assert (problem.location.file, problem.location.field) == ("z.docx", "Количество штрихкодов")
    assert problem.location.document is Document.application
    assert (problem.value, dict(problem.params)) == ("5", {"rows": "3", "products_file": "p.xlsx"})
