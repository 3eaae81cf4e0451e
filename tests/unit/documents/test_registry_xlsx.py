"""«Реестр штрихкодов» xlsx: read back with openpyxl, EANs stay text."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date, datetime, time

import pytest
from openpyxl import load_workbook

from mailbot.documents.registry_xlsx import HEADER, render_registry
from mailbot.documents.samples import sample_codes

ISSUED = date(2026, 11, 25)


def test_registry_reads_back_with_eans_as_text_cells() -> None:
    codes = sample_codes(25)
    sheet = load_workbook(io.BytesIO(render_registry("EAN-2026-000123", ISSUED, codes))).active
    assert sheet["A1"].value == "Реестр штрихкодов по заявке EAN-2026-000123 от 25.11.2026"
    assert tuple(cell.value for cell in sheet[2]) == HEADER
    assert sheet.max_row == 2 + len(codes)
    for row, code in enumerate(codes, start=3):
        ean = sheet.cell(row, 2)
        assert isinstance(ean.value, str)
        assert ean.data_type == "s"
        assert ean.number_format == "@"
        assert ean.value == code.ean
        assert [sheet.cell(row, c).value for c in (1, 3, 4, 5, 6)] == [
            row - 2, code.name, code.product_type, code.brand, code.net_quantity,
        ]  # fmt: skip
        assert sheet.cell(row, 7).value == datetime.combine(ISSUED, time())
        assert sheet.cell(row, 7).number_format == "DD.MM.YYYY"


def test_registry_has_bold_header_widths_and_frozen_panes() -> None:
    sheet = load_workbook(io.BytesIO(render_registry("EAN-1", ISSUED, sample_codes(3)))).active
    assert all(cell.font.b for cell in sheet[2])
    assert sheet["A1"].font.b
    assert sheet.freeze_panes == "C3"
    assert sheet.column_dimensions["B"].width == 16
    assert sheet.column_dimensions["C"].width == 60


def test_registry_of_10000_codes_keeps_every_ean() -> None:
    codes = sample_codes(10_000)
    sheet = load_workbook(
        io.BytesIO(render_registry("EAN-1", ISSUED, codes)), read_only=True
    ).active
    eans = [row[0] for row in sheet.iter_rows(min_row=3, min_col=2, max_col=2, values_only=True)]
    assert eans == [code.ean for code in codes]


def test_registry_refuses_a_bad_ean() -> None:
    bad = replace(sample_codes(1)[0], ean="4601234000001")
    with pytest.raises(ValueError, match="check digit"):
        render_registry("EAN-1", ISSUED, [bad])
