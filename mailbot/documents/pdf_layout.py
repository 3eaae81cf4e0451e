"""The shared look of our PDFs: A4 page and margins, DejaVu styles, the footer, the QR image.

Two ways to fill the pages: `build_pdf` lays out a platypus story (the certificate), and
`PageFlow` is a bare canvas its caller lays out: the invoice, whose platypus paragraphs and
tables took ~10 ms of a 20-line invoice against ~3 ms drawn directly, in an application's
budget of 50 ms.
"""

from __future__ import annotations

import functools
import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape

import segno
from PIL import Image
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import getFont, stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject
from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate, Paragraph

from mailbot.documents.fonts import reportlab_fonts

MARGIN = 15 * mm
PAGE_WIDTH, PAGE_HEIGHT = A4
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN


@dataclass(frozen=True)
class Styles:
    """Paragraph styles in DejaVu; `regular`/`bold` are the registered font names."""

    regular: str
    bold: str
    body: ParagraphStyle
    small: ParagraphStyle
    bold_body: ParagraphStyle
    right: ParagraphStyle
    title: ParagraphStyle


def styles() -> Styles:
    """Return the paragraph styles (registers DejaVu with reportlab on first use)."""
    regular, bold = reportlab_fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=11.5, alignment=TA_LEFT)
    return Styles(
        regular=regular,
        bold=bold,
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=7, leading=8.5),
        bold_body=ParagraphStyle("bold_body", parent=body, fontName=bold),
        right=ParagraphStyle("right", parent=body, alignment=TA_RIGHT),
        title=ParagraphStyle("title", parent=body, fontName=bold, fontSize=14, leading=18),
    )


def para(text: str, style: ParagraphStyle) -> Paragraph:
    """Return a Paragraph of plain text (markup characters escaped)."""
    return Paragraph(escape(text), style)


def build_pdf(story: list[Flowable], *, title: str, author: str, footer: str, font: str) -> bytes:
    """Return the PDF of `story` on A4 with `footer` and the page number on every page."""
    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        author=author,
        creator="mailbot",
        invariant=1,  # no timestamps or random ids: the same data gives the same bytes
    )
    bottom = MARGIN + 5 * mm  # room for the footer line
    frame = Frame(
        MARGIN, bottom, CONTENT_WIDTH, PAGE_HEIGHT - MARGIN - bottom,
        leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
    )  # fmt: skip
    doc.addPageTemplates([PageTemplate("page", [frame], onPage=_footer(footer, font))])
    doc.build(story)
    return buffer.getvalue()


def _footer(text: str, font: str) -> Callable[[Canvas, BaseDocTemplate], None]:
    def draw(canvas: Canvas, doc: BaseDocTemplate) -> None:
        draw_footer(canvas, text, font, doc.page)

    return draw


def draw_footer(canvas: Canvas, text: str, font: str, page: int) -> None:
    """Draw `text` and «Страница N» in small grey type under the page's frame."""
    canvas.saveState()
    canvas.setFont(font, 7)
    canvas.setFillGray(0.35)
    canvas.drawString(MARGIN, MARGIN, text)
    canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN, f"Страница {page}")
    canvas.restoreState()


# ---- the bare canvas: PageFlow and what it draws ------------------------------------------

Align = Literal["left", "right", "centre"]
Segment = tuple[float, float, float, float]


class FastFlate:
    """A reportlab stream filter: FlateDecode at zlib level 1, font programs deflated once.

    reportlab deflates at zlib's default level 6: ~1.3 ms for each ~40 KB DejaVu subset, two
    per invoice. Level 1 takes ~0.5 ms for 5 % more bytes (23.7 KB instead of 22.6 KB), and
    as `PageFlow` gives every document the same subsets, the same font program bytes come
    back each time: they are deflated once per process.
    """

    pdfname = "FlateDecode"

    def encode(self, data: str | bytes) -> bytes:
        """Return `data` (text as UTF-8) deflated."""
        raw = data.encode("utf8") if isinstance(data, str) else data
        if raw.startswith(_TRUETYPE):
            return _deflate_font_program(raw)
        return zlib.compress(raw, 1)

    def decode(self, encoded: bytes) -> bytes:
        """Return the inflated bytes."""
        return zlib.decompress(encoded)


_TRUETYPE = b"\x00\x01\x00\x00"  # sfnt version 1.0, how every TrueType font program starts
FAST_FLATE = FastFlate()


@functools.lru_cache(maxsize=16)
def _deflate_font_program(program: bytes) -> bytes:
    return zlib.compress(program, 1)


# The characters besides ASCII (which has fixed codes) that our documents are likely to hold,
# in a fixed order: see PageFlow.
COMMON_CHARACTERS = (
    "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"  # upper case, then lower case and punctuation
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя«»„“”‘’№—–…"
)


class PageFlow:
    """A4 pages drawn top-down on a bare canvas inside our margins, the footer on every page.

    The caller measures its blocks, asks `fits`, draws at `y` and moves `y` down; `new_page`
    starts the next page. All strings of a page go into one text object: `drawString` builds
    one per string (13 µs a string against 8 µs here).
    """

    left: float = MARGIN
    right: float = PAGE_WIDTH - MARGIN
    top: float = PAGE_HEIGHT - MARGIN
    bottom: float = MARGIN + 5 * mm  # room for the footer line, as in `build_pdf`

    def __init__(self, *, title: str, author: str, footer: str, fonts: Sequence[str]) -> None:
        """Start page 1; `fonts` are the TrueType fonts drawn with, the footer's first."""
        self._buffer = io.BytesIO()
        # invariant: no timestamps or random ids, so the same data gives the same bytes
        self.canvas = Canvas(self._buffer, pagesize=A4, invariant=1, pageCompression=0)
        # With compression off reportlab puts no filter on any stream, so each one takes the
        # document's default filters: every stream is deflated at level 1 (see FastFlate).
        self.canvas._doc.defaultStreamFilters = [FAST_FLATE]
        for font in fonts:
            # reportlab numbers a font's glyphs per document in order of first use; numbering
            # the common characters first makes the same subset, so the same font program,
            # in every document (rarer characters go after them)
            getFont(font).splitString(COMMON_CHARACTERS, self.canvas._doc)
        self.canvas.setTitle(title)
        self.canvas.setAuthor(author)
        self.canvas.setCreator("mailbot")
        self._footer = footer
        self._footer_font = fonts[0]
        self.page = 0
        self.y: float = self.top
        self._text: PDFTextObject = self.canvas.beginText()
        self._font: tuple[str, float, float] | None = None
        self._start_page()

    def fits(self, height: float) -> bool:
        """Return whether `height` points fit between `y` and the bottom of the page."""
        return self.y - height >= self.bottom - 1e-6

    def new_page(self) -> None:
        """Finish this page and start the next one, `y` at its top."""
        self._end_page()
        self._start_page()

    def text(  # noqa: PLR0913 - a drawing primitive: position, text, font, size
        self, x: float, y: float, value: str, font: str, size: float, align: Align = "left"
    ) -> None:
        """Draw one line with its baseline at `y`; `x` is where its left, right or centre is."""
        if align != "left":
            width = stringWidth(value, font, size)
            x -= width if align == "right" else width / 2
        current = self._font
        if current is None or current[0] != font or current[1] != size:
            self._set_font(font, size, size * 1.2)
        self._text.setTextOrigin(x, y)
        self._text.textLine(value)  # not textOut: that measures the string again

    def lines(  # noqa: PLR0913 - a drawing primitive: position, lines, font, size
        self, x: float, y: float, lines: Sequence[str], font: str, size: float, leading: float
    ) -> None:
        """Draw `lines` left-aligned at `x`, the first baseline at `y`, `leading` apart."""
        if self._font != (font, size, leading):
            self._set_font(font, size, leading)
        self._text.setTextOrigin(x, y)
        for line in lines:
            self._text.textLine(line)  # each moves down by the font's leading (T*)

    def rules(self, segments: Sequence[Segment], width: float) -> None:
        """Stroke the straight lines (x1, y1, x2, y2), `width` points thick, round caps."""
        self.canvas.setLineWidth(width)
        self.canvas.lines(segments)

    def finish(self) -> bytes:
        """Return the PDF; the flow is unusable afterwards."""
        self._end_page()
        self.canvas.save()
        return self._buffer.getvalue()

    def _set_font(self, font: str, size: float, leading: float) -> None:
        self._text.setFont(font, size, leading)
        self._font = (font, size, leading)

    def _start_page(self) -> None:
        self.page += 1
        self.y = self.top
        self.canvas.setLineCap(1)  # round, as platypus draws table grids and rules
        draw_footer(self.canvas, self._footer, self._footer_font, self.page)
        self._text = self.canvas.beginText()
        self._font = None

    def _end_page(self) -> None:
        self.canvas.drawText(self._text)
        self.canvas.showPage()


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Return `text` broken at spaces into lines at most `width` wide (at least one line).

    Like reportlab's `simpleSplit`, but a word wider than `width` (an e-mail, a long number)
    is cut between letters, as Paragraph does, instead of running out of its cell; at a
    fraction of a Paragraph's cost (~20 µs for a two-line product name against ~1 ms).
    """
    space = stringWidth(" ", font, size)
    lines: list[str] = []
    words: list[str] = []
    used = -space
    for word in text.split():
        word_width = stringWidth(word, font, size)
        if used + space + word_width <= width:
            words.append(word)
            used += space + word_width
            continue
        if words:
            lines.append(" ".join(words))
        while word_width > width and len(word) > 1:  # one letter stands even if wider
            cut = _longest_prefix(word, font, size, width)
            lines.append(word[:cut])
            word = word[cut:]
            word_width = stringWidth(word, font, size)
        words, used = [word], word_width
    if words:
        lines.append(" ".join(words))
    return lines or [""]


def _longest_prefix(word: str, font: str, size: float, width: float) -> int:
    """Return how many leading characters of `word` fit in `width` (at least one)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(word[:middle], font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return low


_DARK_TO_BLACK = bytes([255, 0]) + bytes(254)  # module 0 (light) -> white, 1 (dark) -> black


def draw_qr(canvas: Canvas, code: segno.QRCode, x: float, y: float, size: float) -> None:
    """Draw `code` in a `size`-point square at x, y (lower left) that includes its quiet zone.

    A 1-bit image, one pixel per module, scaled up sharp (no /Interpolate); the quiet zone
    is the white page around it. ~1,500 vector squares take ~3.5 ms to format alone;
    `drawImage` stores 1 bit as 8-bit RGB or grey (0.5-0.9 ms, mostly zlib's default level on
    long runs of equal bytes) and `drawInlineImage` breaks with ASCII85 off (fonts.py), so
    the inline image (ISO 32000-1, 8.9.7) is written here, hex-encoded: ~0.1 ms.
    """
    border = 4
    modules = len(code.matrix)
    pixels = b"".join(bytes(row).translate(_DARK_TO_BLACK) for row in code.matrix)
    image = Image.frombytes("L", (modules, modules), pixels)
    bits = image.convert("1", dither=Image.Dither.NONE).tobytes()  # 1 = white; rows padded
    module = size / (modules + 2 * border)
    side = module * modules
    canvas.saveState()
    canvas.transform(side, 0, 0, side, x + border * module, y + border * module)
    canvas.addLiteral(f"BI /W {modules} /H {modules} /BPC 1 /CS /G /F /AHx ID\n{bits.hex()}>\nEI")
    canvas.restoreState()
