"""EAN-13 numbers and symbols: check digits, the 95-module pattern, SVG and PNG images, the zip.

The pattern is computed here, after validating the check digit (python-barcode silently
replaces a wrong one). PNG bars are drawn at whole pixels per module, so every bar edge lands
on a pixel boundary and the symbol scans at any dpi.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections.abc import Sequence
from datetime import date
from functools import cache

from PIL import Image, ImageDraw, ImageFont
from stdnum import ean as stdnum_ean

from mailbot.documents import fonts

MODULE_MM = 0.33
QUIET_LEFT = 11
QUIET_RIGHT = 7
WIDTH_MODULES = QUIET_LEFT + 95 + QUIET_RIGHT  # 113 modules = 37.29 mm
HEIGHT_MODULES = 78.58  # 25.93 mm: bars, guard extension and the digits
BAR_MODULES = 69.24  # 22.85 mm
GUARD_MODULES = 74.24  # guard bars run 5 modules further down
DIGIT_MODULES = 9.0  # font size of the human-readable digits
MM_PER_INCH = 25.4

_L = ("0001101", "0011001", "0010011", "0111101", "0100011",
      "0110001", "0101111", "0111011", "0110111", "0001011")  # fmt: skip
_G = tuple(code[::-1].translate(str.maketrans("01", "10")) for code in _L)
_R = tuple(code.translate(str.maketrans("01", "10")) for code in _L)
_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
           "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")  # fmt: skip
# Guard modules (start 0-2, centre 45-49, end 92-94) extend below the other bars.
_GUARD = frozenset((0, 1, 2, 45, 46, 47, 48, 49, 92, 93, 94))
_INVERT = str.maketrans("01", "10")


def ean13_check_digit(first12: str) -> str:
    """Return the check digit for 12 digits (weights 1,3,1,3… from the left)."""
    if len(first12) != 12 or not first12.isascii() or not first12.isdigit():
        raise ValueError(f"expected 12 digits, got {first12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def ean13(first12: str) -> str:
    """Return the full 13-digit EAN for a company prefix + item reference of 12 digits."""
    code = first12 + ean13_check_digit(first12)
    return str(stdnum_ean.validate(code))


def validate_ean13(code: str) -> str:
    """Return `code` if it is 13 digits with a correct check digit, else raise ValueError."""
    if len(code) != 13 or not code.isascii() or not code.isdigit():
        raise ValueError(f"EAN-13 must be 13 digits, got {code!r}")
    if ean13_check_digit(code[:12]) != code[12]:
        raise ValueError(f"EAN-13 {code} has a wrong check digit")
    return code


def ean13_modules(code: str) -> str:
    """Return the 95 modules of the symbol as '0'/'1' (guards included, no quiet zones)."""
    validate_ean13(code)
    parity = _PARITY[int(code[0])]
    left = "".join((_L if p == "L" else _G)[int(d)] for p, d in zip(parity, code[1:7], strict=True))
    right = "".join(_R[int(d)] for d in code[7:])
    return "101" + left + "01010" + right + "101"


def _bars(modules: str) -> list[tuple[int, int, bool]]:
    """Return (start, width, is_guard) for each dark bar."""
    bars: list[tuple[int, int, bool]] = []
    start = None
    for i, bit in enumerate(modules + "0"):
        if bit == "1" and start is None:
            start = i
        elif bit == "0" and start is not None:
            bars.append((start, i - start, start in _GUARD))
            start = None
    return bars


def _digit_centres() -> list[float]:
    """Return the x centre (in modules, from the image's left edge) of each of the 13 digits."""
    first = QUIET_LEFT - 4.0
    left = [QUIET_LEFT + 3 + 7 * i + 3.5 for i in range(6)]
    right = [QUIET_LEFT + 50 + 7 * i + 3.5 for i in range(6)]
    return [first, *left, *right]


def ean13_svg(code: str) -> bytes:
    """Return the symbol as SVG at nominal size: 37.29 × 25.93 mm, user units = modules."""
    modules = ean13_modules(code)
    rects = "".join(
        f'<rect x="{QUIET_LEFT + x}" y="0" width="{w}" '
        f'height="{GUARD_MODULES if guard else BAR_MODULES}"/>'
        for x, w, guard in _bars(modules)
    )
    baseline = HEIGHT_MODULES - 0.6
    digits = "".join(
        f'<text x="{cx:g}" y="{baseline:g}">{d}</text>'
        for cx, d in zip(_digit_centres(), code, strict=True)
    )
    width_mm, height_mm = WIDTH_MODULES * MODULE_MM, HEIGHT_MODULES * MODULE_MM
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{width_mm:.2f}mm" height="{height_mm:.2f}mm" '
        f'viewBox="0 0 {WIDTH_MODULES} {HEIGHT_MODULES}">'
        f"<title>EAN-13 {code}</title>"
        f'<rect width="{WIDTH_MODULES}" height="{HEIGHT_MODULES}" fill="#fff"/>'
        f'<g fill="#000">{rects}</g>'
        f'<g fill="#000" font-family="OCR-B, \'DejaVu Sans Mono\', monospace" '
        f'font-size="{DIGIT_MODULES:g}" text-anchor="middle">{digits}</g>'
        "</svg>\n"
    )
    return svg.encode()


def px_per_module(dpi: int) -> int:
    """Return the whole pixels per module nearest to 0.33 mm at `dpi` (at least 1)."""
    return max(1, round(MODULE_MM * dpi / MM_PER_INCH))


@cache
def _digit_glyphs(px: int) -> tuple[tuple[Image.Image, int], ...]:
    """Return a 1-bit mask and its top offset from the baseline for each digit 0-9."""
    font = ImageFont.truetype(str(fonts.dejavu()), size=round(DIGIT_MODULES * px))
    glyphs = []
    for digit in "0123456789":
        box = font.getbbox(digit, anchor="ms")
        left, top, right, bottom = (math.floor(box[0]), math.floor(box[1]),
                                    math.ceil(box[2]), math.ceil(box[3]))  # fmt: skip
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), digit, fill=255, font=font, anchor="ms")
        glyphs.append((mask.point(lambda v: 255 if v >= 128 else 0, mode="1"), top))
    return tuple(glyphs)


def _packed_row(dark: str, px: int, width: int) -> bytes:
    """Return one 1-bit image row (1 = white) for quiet zones + `dark` modules, px per module."""
    pattern = "1" * QUIET_LEFT + dark.translate(_INVERT) + "1" * QUIET_RIGHT
    stride = (width + 7) // 8
    bits = "".join(bit * px for bit in pattern).ljust(stride * 8, "1")
    return int(bits, 2).to_bytes(stride, "big")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_1bit(rows: Sequence[bytes], width: int, dpi: int) -> bytes:
    """Encode packed 1-bit rows (1 = white) as PNG; a row equal to the one above is
    written with the Up filter as zeros, so the bars compress to almost nothing."""
    stride = (width + 7) // 8
    zeros = b"\x02" + bytes(stride)
    scanlines = []
    previous = None
    for row in rows:
        scanlines.append(zeros if row == previous else b"\x00" + row)
        previous = row
    ppm = round(dpi / MM_PER_INCH * 1000)
    header = struct.pack(">IIBBBBB", width, len(rows), 1, 0, 0, 0, 0)
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", header),
        _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
        _png_chunk(b"IDAT", zlib.compress(b"".join(scanlines), 6)),
        _png_chunk(b"IEND", b""),
    ))  # fmt: skip


def ean13_png(code: str, dpi: int = 300) -> bytes:
    """Return the symbol as a 1-bit PNG with its dpi set, bars at whole pixels per module.

    Only the band holding the digits is drawn with Pillow; the rows above it are the bar
    row repeated (half the time of drawing and encoding the whole image with Pillow).
    """
    modules = ean13_modules(code)
    px = px_per_module(dpi)
    width, height = WIDTH_MODULES * px, round(HEIGHT_MODULES * px)
    bar_h, guard_h = round(BAR_MODULES * px), round(GUARD_MODULES * px)
    baseline = round((HEIGHT_MODULES - 0.6) * px)
    glyphs = _digit_glyphs(px)
    top = min(bar_h, baseline + min(t for _, t in glyphs))
    guards = "".join(m if i in _GUARD else "0" for i, m in enumerate(modules))
    bars, guard_row = _packed_row(modules, px, width), _packed_row(guards, px, width)
    blank = _packed_row("0" * 95, px, width)
    band_rows = [
        bars if y < bar_h else guard_row if y < guard_h else blank for y in range(top, height)
    ]
    band = Image.frombytes("1", (width, height - top), b"".join(band_rows))
    for cx, digit in zip(_digit_centres(), code, strict=True):
        mask, glyph_top = glyphs[int(digit)]
        band.paste(0, (round(cx * px - mask.width / 2), baseline + glyph_top - top), mask)
    raw = band.tobytes()
    stride = (width + 7) // 8
    rows = [bars] * top + [raw[i : i + stride] for i in range(0, len(raw), stride)]
    return _png_1bit(rows, width, dpi)


def images_zip(codes: Sequence[str], folder: str, *, modified: date | None = None) -> bytes:
    """Return one zip with `folder/svg/<EAN>.svg` and `folder/png/<EAN>.png` for every code.

    Entries carry `modified` (default 1980-01-01) so the same codes give the same bytes.
    """
    [data] = images_zips(codes, folder, max_bytes=None, modified=modified)
    return data


class _ZipChunk:
    """One zip being written, with the size it will have once closed."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.archive = zipfile.ZipFile(self.buffer, "w")
        self.directory = 22  # end-of-central-directory record
        self.entries = 0

    @property
    def size(self) -> int:
        return self.buffer.tell() + self.directory

    def add(self, info: zipfile.ZipInfo, data: bytes) -> None:
        self.archive.writestr(info, data)
        self.directory += 46 + len(info.filename.encode())
        self.entries += 1

    def close(self) -> bytes:
        self.archive.close()
        return self.buffer.getvalue()


def images_zips(
    codes: Sequence[str], folder: str, *, max_bytes: int | None, modified: date | None = None
) -> list[bytes]:
    """Return the images of `codes` in as few zips as keep each under `max_bytes` (None: one).

    A code's SVG and PNG always share a zip; a zip holds at least one code.
    """
    for code in codes:
        validate_ean13(code)
    if len(set(codes)) != len(codes):
        raise ValueError("duplicate EAN codes in the image set")
    day = modified or date(1980, 1, 1)
    stamp = (day.year, day.month, day.day, 0, 0, 0)
    zips: list[bytes] = []
    chunk = _ZipChunk()
    for code in codes:
        entries = []
        for kind, data, method in (
            ("svg", ean13_svg(code), zipfile.ZIP_DEFLATED),
            ("png", ean13_png(code), zipfile.ZIP_STORED),  # PNG is compressed already
        ):
            info = zipfile.ZipInfo(f"{folder}/{kind}/{code}.{kind}", date_time=stamp)
            info.compress_type = method
            entries.append((info, data))
        worst = sum(76 + 2 * len(i.filename.encode()) + len(d) for i, d in entries)
        if max_bytes is not None and chunk.entries and chunk.size + worst > max_bytes:
            zips.append(chunk.close())
            chunk = _ZipChunk()
        for info, data in entries:
            chunk.add(info, data)
    zips.append(chunk.close())
    return zips
