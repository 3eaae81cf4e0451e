"""The shared look of our PDFs: A4 page, DejaVu paragraph styles, the QR flowable, the footer."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import segno
from PIL import Image
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
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


_DARK_TO_BLACK = bytes([255, 0]) + bytes(254)  # module 0 (light) -> white, 1 (dark) -> black


class QrFlowable(Flowable):  # type: ignore[misc]
    """A QR symbol `size` points wide including its 4-module quiet zone.

    Drawn as a 1-bit image at one pixel per module: ~1,500 vector squares cost ~25 ms in
    reportlab's pure-Python number formatting, the image well under 1 ms, and a 1-bit image
    scaled up stays sharp.
    """

    def __init__(self, code: segno.QRCode, size: float) -> None:
        super().__init__()
        self.code = code
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        """Draw the symbol at the flowable's origin."""
        border = 4
        side = len(self.code.matrix) + 2 * border
        quiet_row, quiet_side = b"\xff" * side, b"\xff" * border
        rows = [quiet_side + bytes(row).translate(_DARK_TO_BLACK) + quiet_side
                for row in self.code.matrix]  # fmt: skip
        pixels = quiet_row * border + b"".join(rows) + quiet_row * border
        image = Image.frombytes("L", (side, side), pixels)
        self.canv.drawImage(ImageReader(image.convert("1")), 0, 0, self.size, self.size)


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
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.setFillGray(0.35)
        canvas.drawString(MARGIN, MARGIN, text)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN, f"Страница {doc.page}")
        canvas.restoreState()

    return draw
