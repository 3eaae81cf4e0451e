"""«Свидетельство о присвоении штрихкодов» as PDF: issuer, client, and the table of codes.

Names are wrapped with `simpleSplit` into plain multi-line cells rather than Paragraphs: a
certificate can list thousands of codes and Paragraph layout would dominate the run time.
"""

from __future__ import annotations

from reportlab.lib.enums import TA_CENTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.platypus import Flowable, HRFlowable, Spacer, Table, TableStyle

from mailbot.documents.barcodes import validate_ean13
from mailbot.documents.model import CertificateDoc, long_date, short_date
from mailbot.documents.pdf_layout import CONTENT_WIDTH, Styles, build_pdf, para, styles

CELL_FONT_SIZE = 8.5
CELL_PADDING = 3
NUMBER_WIDTH, EAN_WIDTH = 14 * mm, 32 * mm
LINE_HEIGHT = CELL_FONT_SIZE + 1.5  # the leading of the FONT style below
PADDING_HEIGHT = 1.5 + 2.5  # TOPPADDING + BOTTOMPADDING
CHUNK_ROWS = 300


def _intro(doc: CertificateDoc, st: Styles) -> list[Flowable]:
    """Return the issuer header, the title and the statement about the client."""
    centred = ParagraphStyle("centred", parent=st.title, alignment=TA_CENTER)
    subtitle = ParagraphStyle("subtitle", parent=st.body, alignment=TA_CENTER, fontSize=11)
    service, client = doc.service, doc.client
    return [
        para(service.name, st.bold_body),
        para(f"{service.inn_kpp}, {service.address}", st.small),
        HRFlowable(width="100%", thickness=1.2, color="black", spaceBefore=2, spaceAfter=8 * mm),
        para("СВИДЕТЕЛЬСТВО", centred),
        para("о присвоении штрихкодов", subtitle),
        Spacer(1, 2 * mm),
        para(f"№ {doc.number} от {long_date(doc.date)}", subtitle),
        Spacer(1, 8 * mm),
        para(
            f"Настоящим {service.name} подтверждает, что {client.name} "
            f"({client.inn_kpp}, адрес: {client.address}) по заявке № {doc.number} "
            f"от {short_date(doc.date)} присвоены штрихкоды EAN-13 (GTIN-13) в количестве "
            f"{len(doc.codes)} шт.:",
            st.body,
        ),
        Spacer(1, 4 * mm),
    ]


def _codes_tables(doc: CertificateDoc, st: Styles) -> list[Flowable]:
    """Return the №/EAN-13/name table in chunks; each splits across pages, header repeated.

    Chunks of CHUNK_ROWS keep page breaks linear: platypus re-measures and re-styles all
    remaining rows of a table at every split (one 10,000-row table took 17 s, chunked ~2 s).
    Row heights are given up front for the same reason.
    """
    name_width = CONTENT_WIDTH - NUMBER_WIDTH - EAN_WIDTH
    text_width = name_width - 2 * CELL_PADDING
    header = ["№", "EAN-13", "Наименование продукции"]
    style = TableStyle([
        ("FONT", (0, 0), (-1, -1), st.regular, CELL_FONT_SIZE, LINE_HEIGHT),
        ("FONT", (0, 0), (-1, 0), st.bold, CELL_FONT_SIZE, LINE_HEIGHT),
        ("ALIGN", (0, 0), (1, -1), "CENTER"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("GRID", (0, 0), (-1, -1), 0.4, "black"),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ])  # fmt: skip
    tables: list[Flowable] = []
    for start in range(0, len(doc.codes), CHUNK_ROWS):
        rows, heights = [header], [LINE_HEIGHT + PADDING_HEIGHT]
        for number, code in enumerate(doc.codes[start : start + CHUNK_ROWS], start=start + 1):
            lines = simpleSplit(code.name, st.regular, CELL_FONT_SIZE, text_width) or [""]
            rows.append([str(number), validate_ean13(code.ean), "\n".join(lines)])
            heights.append(len(lines) * LINE_HEIGHT + PADDING_HEIGHT)
        table = Table(
            rows,
            colWidths=[NUMBER_WIDTH, EAN_WIDTH, name_width],
            rowHeights=heights,
            repeatRows=1,
        )
        table.setStyle(style)
        tables.append(table)
    return tables


def _signature(st: Styles) -> Flowable:
    """Return the issuer's signature line."""
    rows = [[para("Руководитель", st.bold_body), para("_" * 18 + " / " + "_" * 18 + " /", st.body),
             para("М. П.", st.body)]]  # fmt: skip
    table = Table(rows, colWidths=[35 * mm, 100 * mm, CONTENT_WIDTH - 135 * mm])
    table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("VALIGN", (0, 0), (-1, -1), "BOTTOM")]))  # fmt: skip
    return table


def render_certificate_pdf(doc: CertificateDoc) -> bytes:
    """Return the certificate PDF for the codes of one application (A4, DejaVu embedded)."""
    if not doc.codes:
        raise ValueError(f"certificate {doc.number} lists no codes")
    st = styles()
    story: list[Flowable] = [
        *_intro(doc, st),
        *_codes_tables(doc, st),
        Spacer(1, 12 * mm),
        _signature(st),
    ]
    return build_pdf(
        story,
        title=f"Свидетельство о присвоении штрихкодов № {doc.number}",
        author=doc.service.name,
        footer=f"Свидетельство № {doc.number} от {short_date(doc.date)}, {doc.client.name}",
        font=st.regular,
    )
