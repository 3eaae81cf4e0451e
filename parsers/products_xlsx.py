"""«Перечень продукции» (.xlsx/.xls/.ods/.csv) → product rows, with every problem found."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from mailbot.parsers.container import Kind, vet
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import Document, Location, ParseResult, Problem, ProblemCode
from mailbot.parsers.product_values import (
    TypeMatcher,
    okpd2_of,
    quantity_of,
    tnved_of,
    unit_of,
)
from mailbot.parsers.schema import (
    NAME_MAX_BYTES,
    NAME_MAX_LEN,
    PRODUCT_COLUMNS,
    UNITS,
    ProductType,
    column_key,
)
from mailbot.parsers.spreadsheet import Grid, Raw, cell_text, read_grid

HEADER_SEARCH_ROWS = 20
_ACCEPT = frozenset({Kind.xlsx, Kind.xls, Kind.ods, Kind.csv})
# Unicode category Cc (C0, DEL, C1) and lone surrogates (Cs: not UTF-8 at all)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DATA_KEYS = tuple(c.key for c in PRODUCT_COLUMNS if c.key != "n")


@dataclass(frozen=True)
class ProductRow:
    """One product; a value that failed its rule is None (the problem says why)."""

    row: int  # 1-based spreadsheet row
    name: str | None
    product_type_code: str | None
    product_type_name: str | None
    brand: str | None = None
    net_quantity: Decimal | None = None
    unit: str | None = None
    okpd2: str | None = None
    tnved: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class _Header:
    row: int  # 0-based index into grid rows
    columns: dict[str, tuple[int, str]]  # key → (column index, title as written)


def find_header(rows: Sequence[Sequence[Raw]]) -> _Header | None:
    """Return the row among the first 20 that names the most known columns (at least two)."""
    best: _Header | None = None
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        columns: dict[str, tuple[int, str]] = {}
        for c, value in enumerate(row):
            text = cell_text(value)
            key = column_key(text) if text else None
            if key is not None and key not in columns:
                columns[key] = (c, text)
        if len(columns) >= 2 and (best is None or len(columns) > len(best.columns)):
            best = _Header(i, columns)
    return best


def _header_score(rows: list[list[Raw]]) -> int:
    header = find_header(rows)
    return len(header.columns) if header else 0


def parse_products(
    data: bytes, filename: str, *, limits: Limits, product_types: Sequence[ProductType]
) -> ParseResult[list[ProductRow]]:
    """Return the product rows read from the file and every problem in it. Never raises."""
    where = Location(file=filename, document=Document.products)
    kind, problems = vet(data, where, limits, accept=_ACCEPT)
    if kind is None:
        return ParseResult(None, problems)
    grid, problems = read_grid(data, kind, where, limits, csv_score=_header_score)
    if grid is None:
        return ParseResult(None, problems or [Problem(ProblemCode.no_products, where)])
    where = Location(file=filename, sheet=grid.sheet, document=Document.products)
    header = find_header(grid.rows)
    if header is None:
        return ParseResult(None, [Problem(ProblemCode.header_not_found, where)])
    missing = [c for c in PRODUCT_COLUMNS if c.required and c.key not in header.columns]
    if missing:
        return ParseResult(
            None,
            [
                Problem(ProblemCode.column_missing, where, params={"column": c.title})
                for c in missing
            ],
        )
    return _rows(grid, header, where, limits, TypeMatcher(product_types))


def _rows(
    grid: Grid, header: _Header, where: Location, limits: Limits, types: TypeMatcher
) -> ParseResult[list[ProductRow]]:
    reader = _RowReader(grid, header, where, types)
    for r in range(header.row + 1, len(grid.rows)):
        if reader.is_empty(r):
            continue
        if len(reader.products) >= limits.max_rows:
            return ParseResult(
                None,
                [Problem(ProblemCode.too_many_rows, where, params={"max": str(limits.max_rows)})],
            )
        reader.read(r)
    reader.report_holes()
    if not reader.products and not reader.problems:
        reader.problems.append(Problem(ProblemCode.no_products, where))
    return ParseResult(reader.products, reader.problems)


class _RowReader:
    """Reads data rows one by one, remembering names for the uniqueness rule."""

    def __init__(self, grid: Grid, header: _Header, where: Location, types: TypeMatcher) -> None:
        self.grid, self.header, self.where, self.types = grid, header, where, types
        self.products: list[ProductRow] = []
        self.problems: list[Problem] = []
        self._names: dict[str, int] = {}
        self._cols = [header.columns[k][0] for k in _DATA_KEYS if k in header.columns]
        self._keycols = [(k, c) for k, (c, _) in header.columns.items()]
        self._row = -1
        self._texts: dict[str, str] = {}

    def _raw(self, r: int, key: str) -> Raw:
        col = self.header.columns.get(key)
        row = self.grid.rows[r]
        return row[col[0]] if col is not None and col[0] < len(row) else ""

    def _text(self, r: int, key: str) -> str:
        if r != self._row:
            self._row = r
            row = self.grid.rows[r]
            n = len(row)
            self._texts = {k: cell_text(row[c]) if c < n else "" for k, c in self._keycols}
        return self._texts.get(key, "")

    def is_empty(self, r: int) -> bool:
        """True for a row with nothing but (maybe) a number in «№»."""
        holes = self.grid.formula_holes
        return all(self._text(r, k) == "" for k in _DATA_KEYS) and not any(
            (r + 1, c) in holes for c in self._cols
        )

    def _at(self, r: int, key: str) -> Location:
        title = self.header.columns[key][1] if key in self.header.columns else key
        w = self.where
        return Location(w.file, w.sheet, r + 1, title, document=w.document)

    def _bad(
        self, code: ProblemCode, r: int, key: str, value: str | None = None, **params: str
    ) -> None:
        self.problems.append(Problem(code, self._at(r, key), value, params))

    def _hole(self, r: int, key: str) -> bool:
        col = self.header.columns.get(key)
        return col is not None and (r + 1, col[0]) in self.grid.formula_holes

    def read(self, r: int) -> None:
        """Validate row r (0-based) and append it to products."""
        name = self._name(r)
        ptype = self._product_type(r)
        qty, unit = self._quantity(r)
        okpd2_text, tnved_text = self._text(r, "okpd2"), self._text(r, "tnved")
        okpd2 = okpd2_of(okpd2_text) if okpd2_text else None
        if okpd2_text and okpd2 is None:
            self._bad(ProblemCode.okpd2_format, r, "okpd2", okpd2_text)
        raw_tnved = self._raw(r, "tnved")
        tnved = tnved_of(tnved_text, was_number=isinstance(raw_tnved, int | float))
        if tnved_text and tnved is None:
            self._bad(ProblemCode.tnved_format, r, "tnved", tnved_text)
        self.products.append(
            ProductRow(
                row=r + 1,
                name=name,
                product_type_code=ptype.code if ptype else None,
                product_type_name=ptype.name if ptype else None,
                brand=self._free_text(r, "brand"),
                net_quantity=qty,
                unit=unit,
                okpd2=okpd2,
                tnved=tnved if tnved_text else None,
                note=self._free_text(r, "note"),
            )
        )

    def _name(self, r: int) -> str | None:
        name = self._text(r, "name")
        if not name:
            if not self._hole(r, "name"):
                self._bad(ProblemCode.missing_field, r, "name")
            return None
        if len(name) > NAME_MAX_LEN or len(name.encode("utf-8", "replace")) > NAME_MAX_BYTES:
            wide = {"wide": "1"} if len(name) <= NAME_MAX_LEN else {}
            self._bad(
                ProblemCode.name_too_long, r, "name", name[:60] + "…", max=str(NAME_MAX_LEN), **wide
            )
            return None
        if self._controls(r, "name", name):
            return None
        key = name.lower().replace("ё", "е")
        first = self._names.setdefault(key, r + 1)
        if first != r + 1:
            self._bad(ProblemCode.duplicate_name, r, "name", name, first_row=str(first))
        return name

    def _free_text(self, r: int, key: str) -> str | None:
        """A text kept as written (brand, note): None when empty or holding a control."""
        text = self._text(r, key)
        return None if not text or self._controls(r, key, text) else text

    def _controls(self, r: int, key: str, text: str) -> bool:
        """Report a control character (NUL, \\x01, ESC…: invisible, refused by the registry
        workbook and by mail) in the cell; True when there is one."""
        first = _CONTROL.search(text)
        if first is None:
            return False
        shown = _CONTROL.sub(lambda m: f"[U+{ord(m[0]):04X}]", text[:60])
        self._bad(
            ProblemCode.control_character,
            r,
            key,
            shown + ("…" if len(text) > 60 else ""),
            char=f"U+{ord(first[0]):04X}",
        )
        return True

    def _product_type(self, r: int) -> ProductType | None:
        text = self._text(r, "product_type")
        if not text:
            if not self._hole(r, "product_type"):
                self._bad(ProblemCode.missing_field, r, "product_type")
            return None
        found = self.types.match(text)
        if found is None:
            near = self.types.suggest(text)
            params = {"suggestion": near.label} if near else {}
            self._bad(ProblemCode.unknown_product_type, r, "product_type", text, **params)
        return found

    def _quantity(self, r: int) -> tuple[Decimal | None, str | None]:
        qty_text, unit_text = self._text(r, "net_quantity"), self._text(r, "unit")
        parsed = quantity_of(qty_text) if qty_text else None
        if qty_text and parsed is None:
            self._bad(ProblemCode.quantity_invalid, r, "net_quantity", qty_text)
        unit_text = unit_text or (parsed[1] if parsed else "")
        unit = unit_of(unit_text) if unit_text else None
        if unit_text and unit is None:
            key = "unit" if self._text(r, "unit") else "net_quantity"
            self._bad(ProblemCode.unit_unknown, r, key, unit_text, units=", ".join(UNITS))
        elif parsed and not unit_text:
            self._bad(
                ProblemCode.unit_missing,
                r,
                "unit" if "unit" in self.header.columns else "net_quantity",
                qty_text,
            )
        return (parsed[0] if parsed else None), unit

    def report_holes(self) -> None:
        """Report formulas without a saved value in the product columns below the header."""
        by_col = {col: key for key, (col, _) in self.header.columns.items()}
        for row, col in sorted(self.grid.formula_holes):
            if row - 1 > self.header.row and col in by_col:
                self._bad(ProblemCode.formula_without_value, row - 1, by_col[col])
