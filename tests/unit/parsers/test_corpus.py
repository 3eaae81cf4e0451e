"""Every file of the committed corpus reads to exactly its expected result (tests/corpus/)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Problem
from mailbot.parsers.products_xlsx import ProductRow, parse_products
from mailbot.parsers.schema import ProductType

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
CASES: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text("utf-8"))["case"]


def form_view(form: ApplicationForm | None) -> dict[str, str] | None:
    if form is None:
        return None
    items = dataclasses.asdict(form).items()
    return {k: str(v) if k != "notes" else " | ".join(v) for k, v in items if v not in (None, ())}


def row_view(r: ProductRow) -> list[Any]:
    qty = "" if r.net_quantity is None else f"{r.net_quantity:f}"
    values = (r.name, r.product_type_code, r.brand, qty, r.unit, r.okpd2, r.tnved, r.note)
    return [r.row, *(v or "" for v in values)]


def problem_view(p: Problem) -> list[Any]:
    loc = p.location
    where = loc.column or loc.field or ""
    return [p.code.value, loc.sheet or "", loc.row or 0, where, p.value or "", dict(p.params)]


def test_corpus_has_sixty_variants_and_every_file_has_a_case() -> None:
    files = {p.name for p in (CORPUS / "files").iterdir()}
    assert files == set(CASES)
    assert len(files) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_file_reads_to_its_expected_result(
    name: str, product_types: tuple[ProductType, ...]
) -> None:
    case = CASES[name]
    data = (CORPUS / "files" / name).read_bytes()
    if case["kind"] == "application":
        app = parse_application(data, name, limits=Limits())
        assert form_view(app.value) == case.get("form")
        problems = app.problems
    else:
        products = parse_products(data, name, limits=Limits(), product_types=product_types)
        rows = None if products.value is None else [row_view(r) for r in products.value]
        assert rows == case.get("rows")
        problems = products.problems
    assert [problem_view(p) for p in problems] == case.get("problems", [])
