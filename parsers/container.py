"""What kind of file an attachment really is, and whether it is safe to open.

Decided from the bytes (magic numbers, zip entries), the file name only breaks ties.
"""

from __future__ import annotations

import zipfile
from enum import StrEnum

from mailbot.parsers.limits import (
    Container,
    Limits,
    check_open_zip,
    check_size,
    is_encrypted_office,
    open_zip,
    read_entry,
    sniff,
)
from mailbot.parsers.problems import Location, Problem, ProblemCode


class Kind(StrEnum):
    """A file kind we can read."""

    docx = "docx"
    xlsx = "xlsx"
    xls = "xls"
    ods = "ods"
    csv = "csv"


_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
_XLS_STREAMS = ("Workbook".encode("utf-16-le"), "Book".encode("utf-16-le"))  # BIFF8, BIFF5


def _zip_kind(zf: zipfile.ZipFile) -> Kind | None:
    names = set(zf.namelist())
    if "word/document.xml" in names:
        return Kind.docx
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        return Kind.xlsx
    if "mimetype" in names and (read_entry(zf, "mimetype") or b"").strip() == _ODS_MIME:
        return Kind.ods
    return None


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _wrong(where: Location, expected: str) -> list[Problem]:
    return [Problem(ProblemCode.file_wrong_format, where, params={"expected": expected})]


def vet(
    data: bytes, where: Location, limits: Limits, *, accept: frozenset[Kind]
) -> tuple[Kind | None, list[Problem]]:
    """Return the kind of the file if it is one we accept and safe to open, else problems."""
    expected = "docx" if Kind.docx in accept else "xlsx"
    problems = check_size(data, where, limits)
    if problems:
        return None, problems
    container = sniff(data)
    ext = _extension(where.file)
    if container is Container.cfb:
        if is_encrypted_office(data) or ext in {"docx", "xlsx", "docm", "xlsm"}:
            return None, [Problem(ProblemCode.file_encrypted, where)]
        is_xls = any(name in data for name in _XLS_STREAMS)
        return (Kind.xls, []) if is_xls and Kind.xls in accept else (None, _wrong(where, expected))
    if container is Container.zip:
        zf = open_zip(data)
        if zf is None:
            return None, [Problem(ProblemCode.file_damaged, where)]
        with zf:
            problems = check_open_zip(zf, where, limits)
            kind = _zip_kind(zf)
        if problems:
            return None, problems
        if kind is not None and kind in accept:
            return kind, []
        return None, _wrong(where, expected)
    if container is Container.other and Kind.csv in accept and _looks_like_text(data):
        return Kind.csv, []
    return None, _wrong(where, expected)


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    return b"\x00" not in head and not head.lstrip().startswith((b"<", b"\xef\xbb\xbf<"))
