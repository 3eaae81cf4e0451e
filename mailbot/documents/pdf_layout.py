"""The shared look of our PDFs: A4 page, DejaVu paragraph styles, the QR flowable, the footer."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import segno
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate

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
    cell: ParagraphStyle


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
        cell=ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10),
    )


def para(text: str, style: ParagraphStyle) -> Paragraph:
    """Return a Paragraph of plain text (markup characters escaped)."""
    return Paragraph(escape(text), style)


class QrFlowable(Flowable):  # type: ignore[misc]
    """A QR symbol drawn as vector squares, `size` points wide including a 4-module border."""

    def __init__(self, code: segno.QRCode, size: float) -> None:
        super().__init__()
        self.code = code
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        """Draw the dark modules as one filled path of row runs."""
        matrix = self.code.matrix
        border = 4
        count = len(matrix) + 2 * border
        unit = self.size / count
        path = self.canv.beginPath()
        for r, row in enumerate(matrix):
            y = self.size - (r + border + 1) * unit
            c = 0
            while c < len(row):
                if row[c]:
                    start = c
                    while c < len(row) and row[c]:
                        c += 1
                    path.rect((start + border) * unit, y, (c - start) * unit, unit)
                else:
                    c += 1
        self.canv.setFillGray(0)
        self.canv.drawPath(path, stroke=0, fill=1)


def build_pdf(
    story: list[Flowable], *, title: str, author: str, footer: str, font: str
) -> bytes:
    """Return the PDF of `story` on A4 with `footer` and the page number on every page."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=title,
        author=author,
        creator="mailbot",
        invariant=1,  # no timestamps or random ids: the same data gives the same bytes
    )
    on_page = _footer(footer, font)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _footer(text: str, font: str) -> Callable[[Canvas, SimpleDocTemplate], None]:
    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.setFillGray(0.35)
        canvas.drawString(MARGIN, MARGIN, text)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN, f"Страница {doc.page}")
        canvas.restoreState()

    return draw
