"""Command-line decoders the document tests check against: zbarimg and poppler.

They are required, not optional: a missing tool fails the test (a skip is not a pass).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

Decoder = Callable[[Path], list[str]]
PdfText = Callable[[bytes], str]
PdfLines = Callable[[bytes], list[str]]


class Word(NamedTuple):
    """A word of a PDF page and its box in points, y growing down from the page's top."""

    page: int  # from 1
    text: str
    x0: float
    top: float
    x1: float
    bottom: float

    @property
    def middle(self) -> float:
        """Return the vertical centre of the word's box."""
        return (self.top + self.bottom) / 2


PdfWords = Callable[[bytes], list[Word]]
_BBOX_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: apt-get install {package}")
    return path


@pytest.fixture(scope="session")
def zbar() -> Decoder:
    """Return a function giving every symbol zbarimg finds in an image, as `TYPE:data`."""
    exe = _tool("zbarimg", "zbar-tools")

    def decode(path: Path) -> list[str]:
        result = subprocess.run([exe, "-q", str(path)], capture_output=True, check=False)
        return result.stdout.decode().splitlines()

    return decode


@pytest.fixture(scope="session")
def zbar_raw() -> Callable[[Path], str]:
    """Return a function giving zbarimg's exact `--raw` output (one trailing newline removed)."""
    exe = _tool("zbarimg", "zbar-tools")

    def decode(path: Path) -> str:
        result = subprocess.run([exe, "--raw", "-q", str(path)], capture_output=True, check=False)
        return result.stdout.decode().removesuffix("\n")

    return decode


@pytest.fixture(scope="session")
def pdftotext(tmp_path_factory: pytest.TempPathFactory) -> PdfText:
    """Return a function giving the text of a PDF, whitespace runs collapsed to one space."""
    exe = _tool("pdftotext", "poppler-utils")
    folder = tmp_path_factory.mktemp("pdftext")

    def text(pdf: bytes) -> str:
        path = folder / "doc.pdf"
        path.write_bytes(pdf)
        out = subprocess.run([exe, str(path), "-"], capture_output=True, check=True).stdout
        return " ".join(out.decode().split())

    return text


@pytest.fixture(scope="session")
def pdf_layout_lines() -> PdfLines:
    """Return a function giving the lines of `pdftotext -layout` (rows kept on one line)."""
    exe = _tool("pdftotext", "poppler-utils")

    def lines(pdf: bytes) -> list[str]:
        args = [exe, "-layout", "-", "-"]
        out = subprocess.run(args, input=pdf, capture_output=True, check=True).stdout
        return [" ".join(line.split()) for line in out.decode().splitlines() if line.strip()]

    return lines


@pytest.fixture(scope="session")
def pdf_pages() -> Callable[[bytes], list[str]]:
    """Return a function giving the text of each page of a PDF (split on form feeds)."""
    exe = _tool("pdftotext", "poppler-utils")

    def pages(pdf: bytes) -> list[str]:
        out = subprocess.run([exe, "-", "-"], input=pdf, capture_output=True, check=True).stdout
        return [page for page in out.decode().split("\f") if page.strip()]

    return pages


@pytest.fixture(scope="session")
def pdf_to_png(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bytes, int], list[Path]]:
    """Return a function rendering each PDF page to a PNG at `dpi` with pdftoppm."""
    exe = _tool("pdftoppm", "poppler-utils")
    folder = tmp_path_factory.mktemp("pdfpng")

    def render(pdf: bytes, dpi: int) -> list[Path]:
        source = folder / "doc.pdf"
        source.write_bytes(pdf)
        for old in folder.glob("page-*.png"):
            old.unlink()
        subprocess.run([exe, "-r", str(dpi), "-png", str(source), str(folder / "page")], check=True)
        return sorted(folder.glob("page-*.png"))

    return render


@pytest.fixture(scope="session")
def pdf_words() -> PdfWords:
    """Return a function giving every word of a PDF with its page and box (`pdftotext -bbox`)."""
    exe = _tool("pdftotext", "poppler-utils")

    def words(pdf: bytes) -> list[Word]:
        out = subprocess.run([exe, "-bbox", "-", "-"], input=pdf, capture_output=True, check=True)
        found, page = [], 0
        for line in out.stdout.decode().splitlines():
            if "<page " in line:
                page += 1
            match = _BBOX_WORD.search(line)
            if match:
                x0, top, x1, bottom = map(float, match.groups()[:4])
                found.append(Word(page, html.unescape(match[5]), x0, top, x1, bottom))
        return found

    return words
