"""Hostile files are refused with the right reason, inside the guard's time and memory caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.guard import Budget, guarded
from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Document, Location, ParseResult
from mailbot.parsers.products_xlsx import ProductRow, parse_products
from mailbot.parsers.schema import ProductType
from tests.corpus.hostile import CASES, COMMIT_MAX_BYTES, Hostile, products

HOSTILE_DIR = Path(__file__).resolve().parents[2] / "corpus" / "hostile"
BUDGET = Budget(seconds=10, memory_mb=384)
APPLICATION_EXTS = {"docx", "docm", "doc"}


def parse_guarded(
    data: bytes, name: str, types: tuple[ProductType, ...]
) -> ParseResult[ApplicationForm] | ParseResult[list[ProductRow]]:
    if name.rsplit(".", 1)[-1] in APPLICATION_EXTS:
        where = Location(file=name, document=Document.application)
        return guarded(lambda: parse_application(data, name, limits=Limits()), where, BUDGET)
    where = Location(file=name, document=Document.products)
    return guarded(
        lambda: parse_products(data, name, limits=Limits(), product_types=types), where, BUDGET
    )


def test_there_are_at_least_forty_hostile_files_refused() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    assert sum(1 for c in CASES if c.codes) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file_is_refused_with_its_reason(
    case: Hostile, product_types: tuple[ProductType, ...]
) -> None:
    result = parse_guarded(case.build(), case.name, product_types)
    assert tuple(p.code for p in result.problems) == case.codes
    if case.codes:
        assert result.value is None or case.codes[0].name == "form_not_recognised"
    else:
        plain = parse_products(products(), "p.xlsx", limits=Limits(), product_types=product_types)
        assert result.value == plain.value


COMMITTED = sorted(p.name for p in HOSTILE_DIR.iterdir())
BY_NAME = {c.name: c for c in CASES}


def test_every_small_hostile_file_is_committed() -> None:
    small = {c.name for c in CASES if len(c.build()) <= COMMIT_MAX_BYTES}
    assert set(COMMITTED) == small


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_hostile_file_is_refused_like_its_generator_says(
    name: str, product_types: tuple[ProductType, ...]
) -> None:
    result = parse_guarded((HOSTILE_DIR / name).read_bytes(), name, product_types)
    assert tuple(p.code for p in result.problems) == BY_NAME[name].codes
