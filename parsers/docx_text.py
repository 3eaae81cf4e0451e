"""Text of a .docx read straight from word/document.xml: paragraphs and table rows in order.

Why not python-docx: the form is one small table, and zipfile + ElementTree reads it in
~0.5 ms against ~10 ms (FLOORS.md); we also need nested tables and content controls, which
python-docx hides. The XML goes through defusedxml.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC = f"{_W}p", f"{_W}tbl", f"{_W}tr", f"{_W}tc"
_WRAPPERS = {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"}
_TEXT = {
    f"{_W}t": None,
    f"{_W}tab": "\t",
    f"{_W}br": " ",
    f"{_W}cr": " ",
    f"{_W}noBreakHyphen": "-",
    f"{_W}softHyphen": "",
}


MAX_DEPTH = 24  # wrappers and nested tables deeper than this are hostile, not forms


@dataclass(frozen=True)
class Block:
    """A paragraph (one cell) or a table row (its cells' texts)."""

    cells: tuple[str, ...]
    in_table: bool


def _children(el: Element, wanted: set[str], depth: int = 0) -> Iterator[Element]:
    """Yield children with a wanted tag, looking through content controls and wrappers."""
    if depth > MAX_DEPTH:
        return
    for child in el:
        if child.tag in wanted:
            yield child
        elif child.tag in _WRAPPERS:
            yield from _children(child, wanted, depth + 1)


def paragraph_text(p: Element) -> str:
    """Return a paragraph's text with runs joined (values split across runs come out whole)."""
    parts: list[str] = []
    for el in p.iter():
        if el.tag in _TEXT:
            extra = _TEXT[el.tag]
            parts.append(el.text or "" if extra is None else extra)
    return " ".join("".join(parts).split())


def _cell(tc: Element, nested: list[Block], depth: int) -> str:
    texts: list[str] = []
    for child in _children(tc, {_P, _TBL}):
        if child.tag == _P:
            texts.append(paragraph_text(child))
        elif depth < MAX_DEPTH:
            nested.extend(_table(child, depth + 1))
    return " ".join(t for t in texts if t)


def _table(tbl: Element, depth: int = 0) -> Iterator[Block]:
    for tr in _children(tbl, {_TR}):
        nested: list[Block] = []
        cells = tuple(_cell(tc, nested, depth) for tc in _children(tr, {_TC}))
        yield Block(cells, in_table=True)
        yield from nested


def blocks(body: Element) -> Iterator[Block]:
    """Yield paragraphs and table rows (nested tables after their row) in document order."""
    for child in _children(body, {_P, _TBL}):
        if child.tag == _P:
            text = paragraph_text(child)
            if text:
                yield Block((text,), in_table=False)
        else:
            yield from _table(child)


def body_of(root: Element) -> Element | None:
    """Return w:body of a parsed word/document.xml."""
    return root.find(f"{_W}body")
