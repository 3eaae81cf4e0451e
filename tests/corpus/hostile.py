"""Generator of hostile files: each with the reason it must be refused (or read safely).

`python -m tests.corpus.hostile DIR` writes them all (for `mailbot forms check`);
`python -m tests.corpus.hostile tests/corpus/hostile --small` writes the ones committed (≤ 16 KB).
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailbot.parsers.problems import ProblemCode as C
from tests.fixtures import forms_builders as fb

COMMIT_MAX_BYTES = 16 * 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class Hostile:
    """One hostile file; `codes` is the exact problem list, empty when it must be read safely."""

    name: str  # file name, with the extension an applicant would use
    build: Callable[[], bytes]
    codes: tuple[C, ...]
    why: str


@cache
def app() -> bytes:
    return fb.application_docx()


@cache
def products() -> bytes:
    return fb.xlsx_bytes([fb.PRODUCT_HEADER, *fb.product_rows(3)])


def patch(base: bytes, part: str, change: Callable[[bytes], bytes]) -> bytes:
    """Return the zip with one entry's bytes changed."""
    return fb.rezip(base, lambda n, raw: change(raw) if n == part else raw)


def replace(base: bytes, part: str, content: bytes) -> bytes:
    return patch(base, part, lambda _: content)


def central(data: bytes, part: str, offset: int, fmt: str, value: int) -> bytes:
    """Return the zip with a field of one central-directory record overwritten."""
    out = bytearray(data)
    name = part.encode()
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        n_len = struct.unpack_from("<H", out, pos + 28)[0]
        if bytes(out[pos + 46 : pos + 46 + n_len]) == name:
            struct.pack_into(fmt, out, pos + offset, value)
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 4)
    raise KeyError(part)


def local_and_central(data: bytes, part: str, field: str, value: int) -> bytes:
    """Set the compression method (field «method») or flag bits («flags») in both headers."""
    local_off, central_off = {"flags": (6, 8), "method": (8, 10)}[field]
    out = bytearray(central(data, part, central_off, "<H", value))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        header = zf.getinfo(part).header_offset
    struct.pack_into("<H", out, header + local_off, value)
    return bytes(out)


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>"
)
W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def with_doctype(xml: bytes) -> bytes:
    """Insert a harmless DOCTYPE after the XML declaration (or at the start)."""
    if xml.startswith(b"<?xml"):
        end = xml.index(b"?>") + 2
        return xml[:end] + b"<!DOCTYPE x>" + xml[end:]
    return b"<!DOCTYPE x>" + xml


def deep_sdt(depth: int) -> bytes:
    return (
        b"<w:document "
        + W
        + b"><w:body>"
        + b"<w:sdt><w:sdtContent>" * depth
        + "<w:p><w:r><w:t>ИНН: 7707083893</w:t></w:r></w:p>".encode()
        + b"</w:sdtContent></w:sdt>" * depth
        + b"</w:body></w:document>"
    )


def deep_tables(depth: int) -> bytes:
    cell = "<w:p><w:r><w:t>ИНН</w:t></w:r></w:p>".encode()
    return (
        b"<w:document "
        + W
        + b"><w:body>"
        + b"<w:tbl><w:tr><w:tc>" * depth
        + cell
        + b"</w:tc></w:tr></w:tbl>" * depth
        + b"</w:body></w:document>"
    )


def stored_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, raw in entries.items():
            zf.writestr(name, raw)
    return out.getvalue()


_SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_SST_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def with_shared_strings(count: str, index: int, strings: int = 1) -> bytes:
    """Return the product list plus a cell pointing into a sharedStrings part."""
    base = patch(
        products(),
        "xl/worksheets/sheet1.xml",
        lambda x: x.replace(
            b"</sheetData>", b'<row r="9"><c r="B9" t="s"><v>%d</v></c></row></sheetData>' % index
        ),
    )
    base = patch(
        base,
        "[Content_Types].xml",
        lambda x: x.replace(
            b"</Types>",
            b'<Override PartName="/xl/sharedStrings.xml" ContentType="%s"/></Types>'
            % _SST_TYPE.encode(),
        ),
    )
    base = patch(
        base,
        "xl/_rels/workbook.xml.rels",
        lambda x: x.replace(
            b"</Relationships>",
            f'<Relationship Id="rIdS" Type="{_SST_REL}" Target="sharedStrings.xml"/>'
            "</Relationships>".encode(),
        ),
    )
    sst = (
        '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main" count="{count}" uniqueCount="{count}">'
        + "<si><t>Печенье из общих строк</t></si>" * strings
        + "</sst>"
    ).encode()
    return fb.add_entries(base, {"xl/sharedStrings.xml": sst})


def sheet_tail(extra: bytes, *, after: bool = False) -> bytes:
    """Return the product list with XML added inside (or after) sheetData."""
    mark = b"</sheetData>"
    new = mark + extra if after else extra + mark
    return patch(products(), "xl/worksheets/sheet1.xml", lambda x: x.replace(mark, new))


CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SHEET = "xl/worksheets/sheet1.xml"
_DOC = "word/document.xml"

CASES: tuple[Hostile, ...] = (
    # zip bombs
    Hostile(
        "bomb-ratio.docx",
        lambda: fb.zip_bomb(app(), megabytes=8),
        (C.zip_bomb,),
        "one entry of 8 MB zeros, ratio ~1000",
    ),
    Hostile(
        "bomb-ratio.xlsx",
        lambda: fb.add_entries(products(), {"xl/media/p.bin": bytes(8 * MB)}),
        (C.zip_bomb,),
        "xlsx with a ratio ~1000 entry",
    ),
    Hostile(
        "bomb-nested.docx",
        lambda: fb.add_entries(
            app(),
            {
                "word/embeddings/inner.zip": stored_zip(
                    {"layer2.zip": stored_zip({"zeros.bin": bytes(6 * MB)})}
                )
            },
        ),
        (C.zip_bomb,),
        "zip in a zip in the docx; stored inner layers make the outer ratio huge",
    ),
    Hostile(
        "bomb-sheet-rows.xlsx",
        lambda: sheet_tail(b"<row/>" * (1_500_000)),
        (C.zip_bomb,),
        "a sheet of 1.5 million empty rows (9 MB of XML)",
    ),
    Hostile(
        "bomb-entries.docx",
        lambda: fb.add_entries(app(), {f"word/x/{i}.xml": b"<a/>" for i in range(2100)}),
        (C.zip_bomb,),
        "2,100 entries",
    ),
    Hostile(
        "bomb-entries.xlsx",
        lambda: fb.add_entries(products(), {f"xl/x/{i}.xml": b"<a/>" for i in range(2100)}),
        (C.zip_bomb,),
        "2,100 entries",
    ),
    Hostile(
        "bomb-declared-size.docx",
        lambda: central(app(), _DOC, 24, "<I", 300 * MB),
        (C.zip_bomb,),
        "central directory declares 300 MB for word/document.xml",
    ),
    Hostile(
        "huge-shared-strings.xlsx",
        lambda: central(with_shared_strings("1", 0), "xl/sharedStrings.xml", 24, "<I", 400 * MB),
        (C.zip_bomb,),
        "sharedStrings.xml declared as 400 MB",
    ),
    # XML: DTDs and entities
    Hostile(
        "billion-laughs.docx",
        lambda: replace(app(), _DOC, LAUGHS),
        (C.file_damaged,),
        "entity expansion in word/document.xml",
    ),
    Hostile(
        "billion-laughs.xlsx",
        lambda: replace(products(), _SHEET, LAUGHS),
        (C.file_damaged,),
        "entity expansion in the sheet",
    ),
    Hostile(
        "billion-laughs-sst.xlsx",
        lambda: replace(with_shared_strings("1", 0), "xl/sharedStrings.xml", LAUGHS),
        (C.file_damaged,),
        "entity expansion in sharedStrings.xml",
    ),
    Hostile(
        "billion-laughs.ods",
        lambda: replace(fb.ods_bytes([fb.PRODUCT_HEADER]), "content.xml", LAUGHS),
        (C.file_damaged,),
        "entity expansion in content.xml",
    ),
    Hostile(
        "external-entity.docx",
        lambda: replace(app(), _DOC, XXE),
        (C.file_damaged,),
        "SYSTEM entity reading /etc/passwd",
    ),
    Hostile(
        "external-entity.xlsx",
        lambda: replace(products(), _SHEET, XXE),
        (C.file_damaged,),
        "SYSTEM entity in the sheet",
    ),
    Hostile(
        "doctype.docx",
        lambda: patch(app(), _DOC, with_doctype),
        (C.file_damaged,),
        "a DOCTYPE without entities",
    ),
    Hostile(
        "doctype-rels.docx",
        lambda: patch(app(), "_rels/.rels", with_doctype),
        (C.file_damaged,),
        "a DOCTYPE in the package relationships",
    ),
    Hostile(
        "doctype-utf16.docx",
        lambda: replace(
            app(),
            _DOC,
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><x/>'.encode("utf-16-le"),
        ),
        (C.file_damaged,),
        "a DOCTYPE in UTF-16",
    ),
    Hostile(
        "doctype.xlsx",
        lambda: patch(products(), "xl/workbook.xml", with_doctype),
        (C.file_damaged,),
        "a DOCTYPE in workbook.xml",
    ),
    # encrypted and macro-enabled
    Hostile(
        "encrypted.docx",
        fb.encrypted_office_bytes,
        (C.file_encrypted,),
        "password-protected OOXML: a CFB with EncryptionInfo",
    ),
    Hostile(
        "encrypted.xlsx",
        fb.encrypted_office_bytes,
        (C.file_encrypted,),
        "password-protected OOXML list",
    ),
    Hostile(
        "encrypted-entry.docx",
        lambda: local_and_central(app(), _DOC, "flags", 1),
        (C.file_encrypted,),
        "a zip entry with the encryption flag",
    ),
    Hostile("macros.docm", lambda: fb.with_macros(app()), (C.file_macros,), "vbaProject.bin"),
    Hostile(
        "macros.xlsm",
        lambda: fb.with_macros(products(), main_part="xl"),
        (C.file_macros,),
        "vbaProject.bin",
    ),
    Hostile(
        "macros-declared.docx",
        lambda: fb.with_macros(app(), vba=False),
        (C.file_macros,),
        "content type says macroEnabled, named .docx",
    ),
    Hostile(
        "macros-renamed.xlsx",
        lambda: fb.with_macros(products(), main_part="xl"),
        (C.file_macros,),
        "an .xlsm renamed to .xlsx",
    ),
    # truncated and corrupt
    Hostile(
        "truncated-half.docx",
        lambda: app()[: len(app()) // 2],
        (C.file_damaged,),
        "cut in half: no central directory",
    ),
    Hostile("truncated-head.docx", lambda: app()[:30], (C.file_damaged,), "30 bytes"),
    Hostile(
        "truncated-half.xlsx",
        lambda: products()[: len(products()) // 2],
        (C.file_damaged,),
        "cut in half",
    ),
    Hostile(
        "truncated.ods",
        lambda: fb.ods_bytes([fb.PRODUCT_HEADER])[:200],
        (C.file_damaged,),
        "cut after 200 bytes",
    ),
    Hostile(
        "truncated.xls",
        lambda: CFB + b"\x00" * 504 + "Workbook".encode("utf-16-le"),
        (C.file_damaged,),
        "a CFB header naming a Workbook stream, nothing else",
    ),
    Hostile(
        "not-xml.docx",
        lambda: replace(app(), _DOC, b"<w:document"),
        (C.file_damaged,),
        "word/document.xml is not XML",
    ),
    Hostile(
        "deflate64.docx",
        lambda: local_and_central(app(), _DOC, "method", 9),
        (C.file_damaged,),
        "an unsupported compression method",
    ),
    Hostile(
        "bad-crc.docx",
        lambda: central(app(), _DOC, 16, "<I", 0xDEADBEEF),
        (C.file_damaged,),
        "CRC of word/document.xml does not match",
    ),
    Hostile(
        "dangling-shared-string.xlsx",
        lambda: with_shared_strings("1", 99_999_999),
        (C.file_damaged,),
        "a cell pointing past the shared strings",
    ),
    Hostile(
        "missing-sheet.xlsx",
        lambda: fb.rezip(products(), lambda n, raw: b"" if n == _SHEET else raw),
        (C.file_damaged,),
        "the sheet part is empty",
    ),
    # wrong magic
    Hostile(
        "scan.pdf.docx",
        lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
        (C.file_wrong_format,),
        "a PDF named .docx",
    ),
    Hostile(
        "photo.jpg.xlsx",
        lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64),
        (C.file_wrong_format,),
        "a JPEG named .xlsx",
    ),
    Hostile(
        "image.png.docx", lambda: b"\x89PNG\r\n\x1a\n" + bytes(64), (C.file_wrong_format,), "a PNG"
    ),
    Hostile(
        "program.exe.docx",
        lambda: b"MZ\x90\x00" + bytes(60),
        (C.file_wrong_format,),
        "a Windows program",
    ),
    Hostile("old-word.doc", fb.old_binary_doc_bytes, (C.file_wrong_format,), "Word 97–2003"),
    Hostile(
        "web-page.xls",
        lambda: "<html><table><tr><td>Наименование</td></tr></table></html>".encode(),
        (C.file_wrong_format,),
        "an HTML table saved as .xls",
    ),
    Hostile(
        "xml-2003.xls",
        lambda: (
            b'<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>'
        ),
        (C.file_wrong_format,),
        "Excel 2003 XML spreadsheet",
    ),
    Hostile(
        "no-document.docx",
        lambda: stored_zip({"hello.txt": b"hi"}),
        (C.file_wrong_format,),
        "a zip without word/document.xml",
    ),
    Hostile(
        "nul-bytes.csv",
        lambda: b"a;b\x00\x00\x00;c\r\n" * 10,
        (C.file_wrong_format,),
        "binary bytes in a .csv",
    ),
    Hostile("empty.docx", lambda: b"", (C.file_empty,), "zero bytes"),
    Hostile("blank.csv", lambda: b" \r\n \r\n", (C.file_empty,), "only whitespace"),
    Hostile(
        "too-large.docx",
        lambda: b"PK\x03\x04" + bytes(21 * MB),
        (C.file_too_large,),
        "over the 20 MB attachment limit",
    ),
    Hostile(
        "huge-field.csv",
        lambda: fb.csv_bytes([fb.PRODUCT_HEADER, ["x" * 200_000]]),
        (C.file_damaged,),
        "one CSV field of 200,000 characters",
    ),
    Hostile(
        "too-many-rows.csv",
        lambda: fb.csv_bytes(
            [fb.PRODUCT_HEADER, *([i, f"Товар {i}", "01"] for i in range(10_001))]
        ),
        (C.too_many_rows,),
        "10,001 rows",
    ),
    # documents that ask for unbounded memory or depth
    Hostile(
        "shared-strings-count.xlsx",
        lambda: with_shared_strings("2147483647", 0),
        (C.file_too_complex,),
        "sharedStrings count 2^31: calamine asks for 51 GB",
    ),
    Hostile(
        "far-cell.xlsx",
        lambda: sheet_tail(
            b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
        ),
        (C.file_too_complex,),
        "a value in XFD1048576: a 17-billion-cell range",
    ),
    Hostile(
        "deep-content-controls.docx",
        lambda: replace(app(), _DOC, deep_sdt(5000)),
        (C.form_not_recognised,),
        "5,000 nested content controls",
    ),
    Hostile(
        "deep-tables.docx",
        lambda: replace(app(), _DOC, deep_tables(3000)),
        (C.form_not_recognised,),
        "3,000 nested tables",
    ),
    # hostile shapes read safely: nothing to refuse, nothing unbounded
    Hostile(
        "huge-merge.xlsx",
        lambda: sheet_tail(
            b'<mergeCells count="1"><mergeCell ref="A1:XFD1048576"/></mergeCells>', after=True
        ),
        (),
        "a merged range of the whole sheet is ignored",
    ),
    Hostile(
        "far-styled-empty-cell.xlsx",
        lambda: sheet_tail(b'<row r="1048576"><c r="XFD1048576" s="0"/></row>'),
        (),
        "an empty formatted cell in the last row and column",
    ),
)


def main(out_dir: Path, limit: int = 1 << 40) -> None:
    """Write every hostile file (up to limit bytes) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        data = case.build()
        if len(data) <= limit:
            (out_dir / case.name).write_bytes(data)


if __name__ == "__main__":
    # `--small` writes only what is committed under tests/corpus/hostile/
    main(Path(sys.argv[1]), COMMIT_MAX_BYTES if "--small" in sys.argv else 1 << 40)
