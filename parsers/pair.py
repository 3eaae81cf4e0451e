"""Rules that need both files: the application and its product list."""

from __future__ import annotations

from collections.abc import Sequence

from mailbot.parsers.application_docx import ApplicationForm
from mailbot.parsers.problems import Document, Location, Problem, ProblemCode
from mailbot.parsers.products_xlsx import ProductRow
from mailbot.parsers.schema import FIELDS_BY_KEY


def check_pair(
    app: ApplicationForm, products: Sequence[ProductRow], app_file: str, products_file: str
) -> list[Problem]:
    """Return problems between the two files: «Количество штрихкодов» must equal the rows."""
    if app.barcode_count is None or app.barcode_count == len(products):
        return []
    where = Location(
        file=app_file, field=FIELDS_BY_KEY["barcode_count"].label, document=Document.application
    )
    params = {"rows": str(len(products)), "products_file": products_file}
    return [Problem(ProblemCode.barcode_count_mismatch, where, str(app.barcode_count), params)]
