"""EAN-13 numbers and images: check digits, module pattern, SVG geometry, PNG scans, zip."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date
from pathlib import Path

import pytest
from barcode.ean import EAN13
from PIL import Image
from stdnum import ean as stdnum_ean

from mailbot.documents import barcodes
from mailbot.documents.barcodes import (
    ean13,
    ean13_check_digit,
    ean13_modules,
    ean13_png,
    ean13_svg,
    images_zip,
    validate_ean13,
)

from .conftest import Decoder

CODES = ["4601234567893", "4600000000008", "4699999999998", "4612345000018", "4620001234561"]


def _random_first12(count: int) -> list[str]:
    """Return `count` spread-out 12-digit numbers from 46…, the same every run."""
    return [f"46{(i * 7_919_113 + 12_345) % 10**10:010d}" for i in range(count)]


def test_check_digit_agrees_with_stdnum_for_many_numbers() -> None:
    for first12 in _random_first12(2000):
        assert ean13_check_digit(first12) == stdnum_ean.calc_check_digit(first12)


def test_ean13_appends_a_valid_check_digit() -> None:
    assert ean13("460123456789") == "4601234567893"
    assert all(stdnum_ean.is_valid(ean13(n)) for n in _random_first12(200))


@pytest.mark.parametrize(
    "bad", ["46012345678", "4601234567890", "46012345678x", "４６０１２３４５６７８９"]
)
def test_ean13_refuses_anything_but_12_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        ean13(bad)


def test_wrong_check_digit_is_refused_before_rendering() -> None:
    for render in (ean13_modules, ean13_svg, ean13_png):
        with pytest.raises(ValueError, match="check digit"):
            render("4601234567890")
    with pytest.raises(ValueError, match="13 digits"):
        validate_ean13("46012345678930")


def test_modules_match_python_barcode_pattern() -> None:
    for code in [*CODES, *(ean13(n) for n in _random_first12(100))]:
        modules = ean13_modules(code)
        assert len(modules) == 95
        assert modules == EAN13(code).build()[0]


def _svg_modules(svg: str) -> tuple[str, dict[int, float]]:
    """Rebuild the 95 modules from the bar rects; return them and each bar's height."""
    cells = ["0"] * barcodes.WIDTH_MODULES
    heights = {}
    for x, w, h in re.findall(r'<rect x="(\d+)" y="0" width="(\d+)" height="([\d.]+)"/>', svg):
        for i in range(int(x), int(x) + int(w)):
            cells[i] = "1"
        heights[int(x) - barcodes.QUIET_LEFT] = float(h)
    row = "".join(cells)
    assert row[: barcodes.QUIET_LEFT] == "0" * barcodes.QUIET_LEFT  # left quiet zone
    assert row[-barcodes.QUIET_RIGHT :] == "0" * barcodes.QUIET_RIGHT  # right quiet zone
    return row[barcodes.QUIET_LEFT : barcodes.QUIET_LEFT + 95], heights


@pytest.mark.parametrize("code", CODES)
def test_svg_bars_equal_the_module_pattern(code: str) -> None:
    svg = ean13_svg(code).decode()
    modules, heights = _svg_modules(svg)
    assert modules == ean13_modules(code)
    guard_starts = {0, 2, 46, 48, 92, 94}
    assert {x for x, h in heights.items() if h == barcodes.GUARD_MODULES} == guard_starts
    assert all(h == barcodes.BAR_MODULES for x, h in heights.items() if x not in guard_starts)


def test_svg_has_nominal_size_and_the_digits_in_1_6_6_groups() -> None:
    svg = ean13_svg("4601234567893").decode()
    assert 'width="37.29mm" height="25.93mm"' in svg
    digits = re.findall(r'<text x="([\d.]+)" y="[\d.]+">(\d)</text>', svg)
    assert "".join(d for _, d in digits) == "4601234567893"
    xs = [float(x) for x, _ in digits]
    assert xs[0] < barcodes.QUIET_LEFT  # first digit in the left quiet zone
    assert all(barcodes.QUIET_LEFT + 3 < x < barcodes.QUIET_LEFT + 45 for x in xs[1:7])
    assert all(barcodes.QUIET_LEFT + 50 < x < barcodes.QUIET_LEFT + 92 for x in xs[7:])


@pytest.mark.parametrize("dpi", [150, 200, 300, 600])
def test_png_decodes_back_to_its_number(dpi: int, tmp_path: Path, zbar: Decoder) -> None:
    for code in CODES:
        path = tmp_path / f"{code}.png"
        path.write_bytes(ean13_png(code, dpi=dpi))
        assert zbar(path) == [f"EAN-13:{code}"], (code, dpi)


def test_png_draws_whole_pixels_per_module_and_records_its_dpi() -> None:
    image = Image.open(io.BytesIO(ean13_png("4601234567893", dpi=300)))
    assert barcodes.px_per_module(300) == 4  # 0.339 mm
    assert image.size == (113 * 4, round(barcodes.HEIGHT_MODULES * 4))
    assert image.mode == "1"
    assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)
    row = image.convert("L").crop((0, 10, image.width, 11)).tobytes()
    starts = [(barcodes.QUIET_LEFT + i) * 4 for i in range(95)]
    assert "".join("1" if row[x] == 0 else "0" for x in starts) == ean13_modules("4601234567893")
    assert all(row[x + k] == row[x] for x in starts for k in range(4))  # no split modules


def test_images_zip_has_svg_and_png_folders_named_by_ean(tmp_path: Path, zbar: Decoder) -> None:
    data = images_zip(CODES[:3], "EAN-2026-000123", modified=date(2026, 11, 25))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(
            [f"EAN-2026-000123/svg/{c}.svg" for c in CODES[:3]]
            + [f"EAN-2026-000123/png/{c}.png" for c in CODES[:3]]
        )
        assert archive.getinfo(names[0]).date_time[:3] == (2026, 11, 25)
        png = tmp_path / "from-zip.png"
        png.write_bytes(archive.read(f"EAN-2026-000123/png/{CODES[1]}.png"))
    assert zbar(png) == [f"EAN-13:{CODES[1]}"]


def test_images_zip_is_reproducible_and_refuses_duplicates() -> None:
    assert images_zip(CODES[:2], "x") == images_zip(CODES[:2], "x")
    with pytest.raises(ValueError, match="duplicate"):
        images_zip([CODES[0], CODES[0]], "x")
