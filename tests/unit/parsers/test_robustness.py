"""Parsers never raise on damaged bytes: every outcome is a ParseResult."""

from __future__ import annotations

import random

import pytest

from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import ParseResult
from mailbot.parsers.products_xlsx import ProductRow, parse_products
from mailbot.parsers.schema import ProductType
from tests.fixtures import forms_builders as fb

BASES = {
    "a.docx": fb.application_docx(),
    "p.xlsx": fb.xlsx_bytes([fb.PRODUCT_HEADER, *fb.product_rows(5)]),
    "p.ods": fb.ods_bytes([fb.PRODUCT_HEADER, *fb.product_rows(3)]),
    "p.csv": fb.csv_bytes([fb.PRODUCT_HEADER, *fb.product_rows(3)]),
}


def damaged(base: bytes, rng: random.Random) -> list[bytes]:
    flipped = bytearray(base)
    for _ in range(rng.randint(1, 20)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    return [bytes(flipped), base[: rng.randrange(len(base))]]


@pytest.mark.parametrize("name", list(BASES))
def test_damaged_files_give_problems_not_exceptions(
    name: str, product_types: tuple[ProductType, ...]
) -> None:
    rng = random.Random(name)  # noqa: S311 - reproducible damage, not secrets
    for _ in range(40):
        for data in damaged(BASES[name], rng):
            if name.endswith(".docx"):
                result: ParseResult[ApplicationForm] | ParseResult[list[ProductRow]]
                result = parse_application(data, name, limits=Limits())
            else:
                result = parse_products(data, name, limits=Limits(), product_types=product_types)
            assert result.value is not None or result.problems
