"""Cells of the first non-empty sheet of an .xlsx/.xls/.ods (python-calamine) or a .csv.

calamine reads 10,000 × 9 in ~130 ms against ~750 ms for openpyxl read-only (FLOORS.md). It
returns `1.0` for whole numbers and `''` for empty cells; `cell_text` evens that out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetVisibleEnum

from mailbot.parsers.container import Kind
from mailbot.parsers.limits import Limits, open_zip, parse_xml, read_entry
from mailbot.parsers.problems import Location, Problem, ProblemCode

Raw = str | int | float | bool | dt.time | dt.date | dt.datetime | dt.timedelta | None
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_HOLE = re.compile(
    rb'<c r="([A-Z]{1,3})([0-9]{1,7})"[^>]*?(?<!/)>(?:<f[^>]*/>|<f[^>]*>[^<]*</f>)'
    rb"(?:<v\s*/>|<v></v>)?</c>"
)


@dataclass
class Grid:
    """Raw cell values; rows[0] is spreadsheet row 1, columns from A."""

    sheet: str | None
    rows: list[list[Raw]]
    formula_holes: set[tuple[int, int]] = field(default_factory=set)  # (row 1-based, col 0-based)


def cell_text(value: Raw) -> str:
    """Return a cell as text: 1.0 → «1», dates → «dd.mm.yyyy», None → «»."""
    if type(value) is str:
        text = value.strip()
        return text if text.isprintable() and "  " not in text else " ".join(text.split())
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%d.%m.%Y")
    return " ".join(str(value).replace("\xa0", " ").split())


def column_index(letters: str) -> int:
    """Return the 0-based index of a column named «A», «AB»…"""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_grid(
    data: bytes,
    kind: Kind,
    where: Location,
    limits: Limits,
    *,
    csv_score: Callable[[list[list[Raw]]], int],
) -> tuple[Grid | None, list[Problem]]:
    """Return the first non-empty sheet; csv_score picks the CSV delimiter. Never raises."""
    if kind is Kind.csv:
        try:
            return _read_csv(data, csv_score), []
        except csv.Error:
            return None, [Problem(ProblemCode.file_damaged, where)]
    try:
        grid = _read_workbook(data, kind, limits)
    except PasswordError:
        return None, [Problem(ProblemCode.file_encrypted, where)]
    except (CalamineError, ValueError, IndexError, OverflowError, OSError):
        return None, [Problem(ProblemCode.file_damaged, where)]
    if grid is not None and kind is Kind.xlsx and grid.sheet is not None:
        grid.formula_holes = _formula_holes(data, grid.sheet)
    return grid, []


def _read_workbook(data: bytes, kind: Kind, limits: Limits) -> Grid | None:
    with CalamineWorkbook.from_filelike(io.BytesIO(data)) as wb:
        visible = [m.name for m in wb.sheets_metadata if m.visible == SheetVisibleEnum.Visible]
        for name in visible or wb.sheet_names:
            sheet = wb.get_sheet_by_name(name)
            if sheet.height == 0:
                continue
            cap = 2 * limits.max_rows + 100  # enough to tell «too many rows» without reading all
            rows = cast(list[list[Raw]], sheet.to_python(skip_empty_area=False, nrows=cap))
            if not any(v != "" for r in rows for v in r):
                continue
            merged = sheet.merged_cell_ranges
            if merged is None and kind is Kind.ods:  # calamine reports merges of xlsx/xls only
                merged = ods_merges(data, name, len(rows))
            _fill_merged(rows, merged or [])
            return Grid(name, rows)
    return None


_Range = tuple[tuple[int, int], tuple[int, int]]
MAX_MERGE_CELLS = 1_000_000  # a product type merged down 10,000 rows × 100 columns still fits


def _fill_merged(rows: list[list[Raw]], ranges: Sequence[_Range]) -> None:
    """Copy a merged range's top-left value into its other cells (clipped to the data).

    A range over MAX_MERGE_CELLS cells (the whole sheet, say) is no table layout: ignored.
    """
    for (r0, c0), (r1, c1) in ranges:
        too_big = (r1 - r0 + 1) * (c1 - c0 + 1) > MAX_MERGE_CELLS
        if too_big or r0 >= len(rows) or c0 >= len(rows[r0]):
            continue
        value = rows[r0][c0]
        for r in range(r0, min(r1, len(rows) - 1) + 1):
            row = rows[r]
            for c in range(c0, min(c1, len(row) - 1) + 1):
                if row[c] == "":
                    row[c] = value


_T = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_CELLS = {f"{_T}table-cell", f"{_T}covered-table-cell"}


def _span(el: Element, attr: str) -> int:
    try:
        return max(1, int(el.get(f"{_T}{attr}", "1")))
    except ValueError:
        return 1


def ods_merges(data: bytes, sheet: str, nrows: int) -> list[_Range]:
    """Return the merged ranges of one .ods sheet (table:number-*-spanned), rows < nrows."""
    zf = open_zip(data)
    raw = read_entry(zf, "content.xml") if zf is not None else None
    if raw is None:
        return []
    found: list[_Range] = []
    active, r, c = False, 0, 0
    try:
        for event, el in DefusedET.iterparse(io.BytesIO(raw), ("start", "end"), forbid_dtd=True):
            if el.tag == f"{_T}table":
                active = event == "start" and el.get(f"{_T}name") == sheet
                if not active and found:
                    break
            elif not active or r >= nrows:
                continue
            elif el.tag == f"{_T}table-row":
                if event == "start":
                    c = 0
                else:
                    r += _span(el, "number-rows-repeated")
                    el.clear()
            elif el.tag in _CELLS and event == "start":
                rs, cs = _span(el, "number-rows-spanned"), _span(el, "number-columns-spanned")
                if rs > 1 or cs > 1:
                    found.append(((r, c), (r + rs - 1, c + cs - 1)))
                c += _span(el, "number-columns-repeated")
    except (DefusedET.ParseError, DefusedXmlException):
        return []
    return found


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace")


def _read_csv(data: bytes, score: Callable[[list[list[Raw]]], int]) -> Grid:
    text = _decode(data)
    best: list[list[Raw]] = []
    best_score = -1
    for delimiter in (";", ",", "\t"):
        rows = cast(list[list[Raw]], list(csv.reader(io.StringIO(text), delimiter=delimiter)))
        s = score(rows[:20])
        if s > best_score:
            best, best_score = rows, s
    return Grid(None, best)


def _formula_holes(data: bytes, sheet: str) -> set[tuple[int, int]]:
    """Return cells of an .xlsx sheet holding a formula without a cached value."""
    zf = open_zip(data)
    if zf is None:
        return set()
    with zf:
        book = parse_xml(read_entry(zf, "xl/workbook.xml") or b"")
        rels = parse_xml(read_entry(zf, "xl/_rels/workbook.xml.rels") or b"")
        if book is None or rels is None:
            return set()
        rel_id = next(
            (s.get(_REL) for s in book.iter(f"{_MAIN}sheet") if s.get("name") == sheet), None
        )
        target = next(
            (r.get("Target", "") for r in rels.iter(_PKG_REL) if r.get("Id") == rel_id), ""
        )
        path = target.lstrip("/") if target.startswith("/") else "xl/" + target
        xml = read_entry(zf, path) or b""
    if b"<f" not in xml:
        return set()
    return {(int(m[2]), column_index(m[1].decode())) for m in _HOLE.finditer(xml)}
