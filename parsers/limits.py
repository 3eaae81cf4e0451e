"""Size and container limits checked before any document library sees the bytes.

python-docx, openpyxl and calamine are unbounded on hostile files (FLOORS.md: a 1 GB docx bomb
took 8 s and 2 GB), so containers are vetted here from the zip directory alone. Declared sizes
are enough: zipfile never inflates an entry past its declared size.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from mailbot.parsers.problems import Location, Problem, ProblemCode

MB = 1024 * 1024
_RATIO_MIN_ENTRY = MB  # small entries compress well and harmlessly; judge ratio above 1 MB
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
# What zipfile raises on damaged input; RuntimeError covers NotImplementedError (unknown
# compression method or zip version) and «File is encrypted».
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    KeyError,
)


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one attached file."""

    max_file_bytes: int = 20 * MB
    max_uncompressed_bytes: int = 200 * MB
    max_zip_ratio: int = 100
    max_zip_entries: int = 2000
    max_rows: int = 10_000


class Container(StrEnum):
    """What the first bytes say a file is."""

    zip = "zip"
    cfb = "cfb"  # OLE compound file: .doc/.xls, or an encrypted .docx/.xlsx
    pdf = "pdf"
    image = "image"
    rtf = "rtf"
    empty = "empty"
    other = "other"


_MAGIC: tuple[tuple[bytes, Container], ...] = (
    (b"PK\x03\x04", Container.zip),
    (b"PK\x05\x06", Container.zip),
    (_CFB_MAGIC, Container.cfb),
    (b"%PDF", Container.pdf),
    (b"{\\rtf", Container.rtf),
    (b"\xff\xd8\xff", Container.image),
    (b"\x89PNG", Container.image),
    (b"GIF8", Container.image),
    (b"II*\x00", Container.image),
    (b"MM\x00*", Container.image),
)


def sniff(data: bytes) -> Container:
    """Return the container kind by magic bytes (HEIC/WebP count as images)."""
    if not data.strip():
        return Container.empty
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[4:8] == b"ftyp" or (data.startswith(b"RIFF") and data[8:12] == b"WEBP"):
        return Container.image
    return Container.other


def is_encrypted_office(data: bytes) -> bool:
    """True for a password-protected .docx/.xlsx (a CFB holding an EncryptionInfo stream)."""
    return data.startswith(_CFB_MAGIC) and _ENCRYPTION_INFO in data


def check_size(data: bytes, where: Location, limits: Limits) -> list[Problem]:
    """Return file_too_large / file_empty problems for the raw bytes."""
    if len(data) > limits.max_file_bytes:
        mb = str(limits.max_file_bytes // MB)
        return [Problem(ProblemCode.file_too_large, where, params={"max_mb": mb})]
    if not data.strip():
        return [Problem(ProblemCode.file_empty, where)]
    return []


def open_zip(data: bytes) -> zipfile.ZipFile | None:
    """Return the bytes opened as a zip (reads only the central directory), None if damaged."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS:
        return None


def check_zip(data: bytes, where: Location, limits: Limits) -> list[Problem]:
    """Return problems with an OOXML/ODF zip container: bomb, damage, macros. Never raises."""
    zf = open_zip(data)
    if zf is None:
        return [Problem(ProblemCode.file_damaged, where)]
    with zf:
        return check_open_zip(zf, where, limits)


def check_open_zip(zf: zipfile.ZipFile, where: Location, limits: Limits) -> list[Problem]:
    """Return zip_bomb / file_encrypted / file_macros problems of an opened zip."""
    infos = zf.infolist()
    if len(infos) > limits.max_zip_entries:
        return [Problem(ProblemCode.zip_bomb, where, params={"reason": "entries"})]
    total = sum(i.file_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        return [Problem(ProblemCode.zip_bomb, where, params={"reason": "size"})]
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_ENTRY and ratio > limits.max_zip_ratio:
            return [Problem(ProblemCode.zip_bomb, where, params={"reason": "ratio"})]
    if any(i.flag_bits & 0x1 for i in infos):
        return [Problem(ProblemCode.file_encrypted, where)]
    if any(i.filename.lower().endswith("vbaproject.bin") for i in infos):
        return [Problem(ProblemCode.file_macros, where)]
    types = read_entry(zf, "[Content_Types].xml") or b""
    if b"macroEnabled" in types:
        return [Problem(ProblemCode.file_macros, where)]
    if any(_declares_dtd(zf, i) for i in infos if i.filename.lower().endswith(_XML_PARTS)):
        return [Problem(ProblemCode.file_damaged, where)]
    return []


_XML_PARTS = (".xml", ".rels")
_DTD_MARKS = tuple(
    mark.encode(enc) for mark in ("<!DOCTYPE", "<!ENTITY") for enc in ("ascii", "utf-16-le")
)


def _declares_dtd(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """True when an XML part starts with a DTD or entity declaration (Office never writes one).

    calamine does not expand entities, but no document library gets to see a DTD at all.
    """
    try:
        with zf.open(info) as f:
            head = f.read(4096).upper()
    except ZIP_ERRORS:
        return False  # a damaged entry is reported by whoever reads it
    return any(mark.upper() in head for mark in _DTD_MARKS)


def read_entry(zf: zipfile.ZipFile, name: str) -> bytes | None:
    """Return one entry's bytes (bounded by its declared size); None if missing or damaged."""
    try:
        return zf.read(name)
    except ZIP_ERRORS:
        return None


def parse_xml(raw: bytes) -> Element | None:
    """Parse untrusted XML with defusedxml (no DTDs, no entities); None when unreadable."""
    try:
        return DefusedET.fromstring(raw, forbid_dtd=True)  # type: ignore[no-any-return]
    except (DefusedET.ParseError, DefusedXmlException, ValueError):
        return None


def read_member(data: bytes, name: str) -> bytes | None:
    """Return one entry of zip bytes (call after check_zip); None when missing or damaged."""
    zf = open_zip(data)
    if zf is None:
        return None
    with zf:
        return read_entry(zf, name)
