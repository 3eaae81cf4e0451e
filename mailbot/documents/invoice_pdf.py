"""«Счёт на оплату» as PDF, in the layout Russian accountants know from 1C.

Renderer: reportlab, drawn straight on a canvas (`PageFlow`). This module holds the 1C form's
geometry: each block is wrapped (`wrap`), measured, and drawn where the platypus layout of
earlier versions put it (same points, to a hundredth); the lines table continues on new
pages with its header row repeated, and the closing block (totals to signatures) is kept on
one page. Platypus paragraphs and tables took ~10 ms of a 20-line invoice, this ~3 ms; the
whole application has 50 ms. Of the ~10 ms left, the QR symbol takes ~4.3 ms (qr.py) and
reportlab's subsetting and writing of the file ~2.7 ms. fpdf2 parses and subsets the
TrueType file with fontTools on every document (~110 ms); weasyprint (HTML→PDF) was ruled
out at ~750 ms per invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from reportlab.lib.units import mm

from mailbot.billing.money import amount_in_words, format_rub, vat_label
from mailbot.documents.fonts import reportlab_fonts
from mailbot.documents.model import InvoiceDoc, long_date, short_date
from mailbot.documents.pdf_layout import CONTENT_WIDTH, Align, PageFlow, Segment, draw_qr, wrap
from mailbot.documents.qr import payment_qr_payload, qr_code

QR_SIZE = 32 * mm
LINE_COLUMNS = (8 * mm, None, 16 * mm, 12 * mm, 24 * mm, 26 * mm)
LINE_TITLES = ("№", "Товары (работы, услуги)", "Кол-во", "Ед.", "Цена", "Сумма")
LINE_ALIGN: tuple[Align, ...] = ("centre", "left", "right", "left", "right", "right")
TITLE_ALIGN: tuple[Align, ...] = ("centre", "centre", "centre", "centre", "centre", "centre")
GRID = 0.5
BOX = 1.2
CELL_FONT_SIZE = 8.5
CELL_LEADING = CELL_FONT_SIZE + 1.5
CELL_PADDING = 4  # left and right of a lines-table cell
CELL_VPADDING = 3  # above and below it
PAD = 6  # elsewhere: reportlab's default cell padding, as the platypus layout had it
NOTICE = (
    "Внимание! Оплата данного счёта означает согласие с условиями оказания услуг. "
    "Уведомление об оплате обязательно, в противном случае не гарантируется "
    "присвоение штрихкодов. Штрихкоды присваиваются после поступления денег "
    "на расчётный счёт Поставщика."
)
SCAN = "Для оплаты отсканируйте QR-код в приложении вашего банка."


@dataclass(frozen=True)
class Style:
    """A text style: font name, size and line spacing in points."""

    font: str
    size: float
    leading: float


@dataclass(frozen=True)
class Styles:
    """The invoice's text styles in DejaVu."""

    body: Style
    bold: Style
    small: Style
    title: Style
    cell: Style  # bank block strings
    line: Style  # lines table
    line_head: Style
    totals: Style


def _styles() -> Styles:
    regular, bold = reportlab_fonts()
    return Styles(
        body=Style(regular, 9, 11.5),
        bold=Style(bold, 9, 11.5),
        small=Style(regular, 7, 8.5),
        title=Style(bold, 14, 18),
        cell=Style(regular, 9, 9 * 1.2),
        line=Style(regular, CELL_FONT_SIZE, CELL_LEADING),
        line_head=Style(bold, CELL_FONT_SIZE, CELL_LEADING),
        totals=Style(bold, 9, 9 * 1.2),
    )


@dataclass(frozen=True)
class Para:
    """Text wrapped to a width in one style, ready to draw."""

    lines: list[str]
    style: Style

    @classmethod
    def of(cls, text: str, style: Style, width: float) -> Para:
        """Return `text` wrapped to `width` in `style`."""
        return cls(wrap(text, style.font, style.size, width), style)

    @property
    def height(self) -> float:
        """Return the height of the wrapped text."""
        return len(self.lines) * self.style.leading

    def draw(self, flow: PageFlow, x: float, top: float) -> float:
        """Draw it with its top at `top` (first baseline a font size lower); return height."""
        st = self.style
        flow.lines(x, top - st.size, self.lines, st.font, st.size, st.leading)
        return self.height


def _days(n: int) -> str:
    """Return «1 день», «3 дня», «10 дней»."""
    if n % 10 == 1 and n % 100 != 11:
        return f"{n} день"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return f"{n} дня"
    return f"{n} дней"


def _box(x1: float, y1: float, x2: float, y2: float) -> list[Segment]:
    return [(x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)]


def _header(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw the supplier and the payment notice, the payment QR to their right."""
    width = CONTENT_WIDTH - QR_SIZE - 4 * mm
    top = flow.y - 3  # the default top padding of the platypus table this was
    y = top
    for text, style, space_after in (
        (doc.supplier.name, st.bold, 0.0),
        (doc.supplier.address, st.body, 3 * mm),
        (NOTICE, st.small, 2 * mm),
        (SCAN, st.small, 0.0),
    ):
        y -= Para.of(text, style, width).draw(flow, flow.left, y) + space_after
    code = qr_code(payment_qr_payload(doc))
    draw_qr(flow.canvas, code, flow.left + width, top - QR_SIZE, QR_SIZE)
    flow.y -= max(top - y, QR_SIZE) + 6


def _bank_block(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw the 1C bank block: bank, БИК, к/с; ИНН, КПП, р/с; recipient."""
    s, cell, vpad = doc.supplier, st.cell, 1.5
    x0 = flow.left
    x1, x2 = x0 + 45 * mm, x0 + 90 * mm
    x3, x4 = x2 + 18 * mm, flow.right
    bank = Para.of(s.bank or "", st.body, x2 - x0 - 2 * PAD)
    name = Para.of(s.name, st.body, x2 - x0 - 2 * PAD)
    # a row is as tall as its tallest cell, and never lower than one line of `cell`
    heights = (bank.height, st.small.leading, cell.leading, name.height, st.small.leading)
    tops = [flow.y]
    for height in heights:
        tops.append(tops[-1] - max(height, cell.leading) - 2 * vpad)
    t0, t1, t2, t3, t4, end = tops

    def put(x: float, top: float, text: str) -> None:
        flow.text(x + PAD, top - vpad - cell.size, text, cell.font, cell.size)

    bank.draw(flow, x0 + PAD, t0 - vpad)
    put(x2, t0, "БИК")
    put(x3, t0, s.bik or "")
    Para.of("Банк получателя", st.small, x2 - x0 - 2 * PAD).draw(flow, x0 + PAD, t1 - vpad)
    put(x2, t1, "Сч. №")
    put(x3, t1, s.corr_account or "")
    put(x0, t2, f"ИНН {s.inn}")
    put(x1, t2, f"КПП {s.kpp}" if s.kpp else "")
    put(x2, t2, "Сч. №")
    put(x3, t2, s.account or "")
    name.draw(flow, x0 + PAD, t3 - vpad)
    Para.of("Получатель", st.small, x2 - x0 - 2 * PAD).draw(flow, x0 + PAD, t4 - vpad)
    flow.rules(
        [*_box(x0, t0, x4, end),
         (x0, t2, x4, t2), (x0, t3, x2, t3), (x2, t1, x4, t1),
         (x1, t2, x1, t3), (x2, t0, x2, end), (x3, t0, x3, end)],
        GRID,
    )  # fmt: skip
    flow.y = end


def _title(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw «Счёт на оплату № … от …» and the thick rule under it."""
    title = f"Счёт на оплату № {doc.number} от {long_date(doc.date)}"
    flow.y -= Para.of(title, st.title, CONTENT_WIDTH).draw(flow, flow.left, flow.y)
    flow.y -= 1 + 1.5  # the rule's space before, its thickness
    flow.rules([(flow.left, flow.y, flow.right, flow.y)], 1.5)
    flow.y -= 4 * mm


def _parties(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw the Поставщик / Покупатель / Основание lines."""
    label_width = 32 * mm
    for label, value in (
        ("Поставщик (Исполнитель):", doc.supplier.requisites),
        ("Покупатель (Заказчик):", doc.buyer.requisites),
        ("Основание:", f"Заявка № {doc.application_number}"),
    ):
        left = Para.of(label, st.body, label_width - PAD)
        right = Para.of(value, st.bold, CONTENT_WIDTH - label_width - PAD)
        left.draw(flow, flow.left, flow.y - 3)
        right.draw(flow, flow.left + label_width, flow.y - 3)
        flow.y -= max(left.height, right.height) + 6


@dataclass(frozen=True)
class _Row:
    """A row of the lines table: each cell's lines, and the row's height."""

    cells: tuple[list[str], ...]
    height: float

    @classmethod
    def of(cls, cells: tuple[list[str], ...]) -> _Row:
        """Return the row, as tall as its tallest cell."""
        return cls(cells, max(map(len, cells)) * CELL_LEADING + 2 * CELL_VPADDING)

    def draw(
        self, flow: PageFlow, top: float, xs: list[float], style: Style, align: tuple[Align, ...]
    ) -> None:
        """Draw the cells (x edges `xs`) below `top`, each centred vertically."""
        for cell, how, x1, x2 in zip(self.cells, align, xs, xs[1:], strict=False):
            y = top - (self.height - len(cell) * CELL_LEADING) / 2 - style.size
            if how == "left":
                flow.lines(x1 + CELL_PADDING, y, cell, style.font, style.size, CELL_LEADING)
            else:
                x = (x1 + x2) / 2 if how == "centre" else x2 - CELL_PADDING
                flow.text(x, y, cell[0], style.font, style.size, how)


def _lines_table(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw the lines table, continued on new pages with the header row repeated."""
    fixed = sum(w for w in LINE_COLUMNS if w is not None)
    xs = [flow.left]
    for width in LINE_COLUMNS:
        xs.append(xs[-1] + (width if width is not None else CONTENT_WIDTH - fixed))
    name_width = xs[2] - xs[1] - 2 * CELL_PADDING
    line = st.line
    rows = [
        _Row.of(([str(n)], wrap(item.name, line.font, line.size, name_width), [str(item.qty)],
                 [item.unit], [format_rub(item.price)], [format_rub(item.amount)]))
        for n, item in enumerate(doc.lines, start=1)
    ]  # fmt: skip
    header = _Row.of(tuple([title] for title in LINE_TITLES))
    done = 0
    while done < len(rows):
        if not flow.fits(header.height + rows[done].height) and flow.y < flow.top:
            flow.new_page()
        top = flow.y
        header.draw(flow, top, xs, st.line_head, TITLE_ALIGN)
        ys = [top - header.height]
        # at least one row below the header, even one taller than a page
        while done < len(rows) and (ys[-1] - rows[done].height >= flow.bottom or len(ys) == 1):
            rows[done].draw(flow, ys[-1], xs, line, LINE_ALIGN)
            ys.append(ys[-1] - rows[done].height)
            done += 1
        bottom = ys[-1]
        grid = [(xs[0], y, xs[-1], y) for y in ys[:-1]] + [(x, top, x, bottom) for x in xs[1:-1]]
        flow.rules(grid, GRID)
        flow.rules(_box(xs[0], top, xs[-1], bottom), BOX)
        flow.y = bottom
        if done < len(rows):
            flow.new_page()


def _closing(flow: PageFlow, doc: InvoiceDoc, st: Styles) -> None:
    """Draw totals, the amount in words, terms and signatures, all on one page."""
    totals = [("Итого:", format_rub(doc.total))]
    vat = doc.vat
    totals.append((f"{vat_label(doc.vat_mode)}:", format_rub(vat) if vat is not None else "—"))
    if doc.prepaid:
        totals.append(("Зачтён аванс:", format_rub(doc.prepaid)))
    totals.append(("Всего к оплате:", format_rub(doc.due)))
    due = doc.date + timedelta(days=doc.due_days)
    count = f"Всего наименований {len(doc.lines)}, на сумму {format_rub(doc.total)} руб."
    terms = (
        f"Оплатить в течение {_days(doc.due_days)}, не позднее {short_date(due)}. "
        "В назначении платежа укажите:"
    )
    words = (Para.of(count, st.body, CONTENT_WIDTH),
             Para.of(amount_in_words(doc.due), st.bold, CONTENT_WIDTH))  # fmt: skip
    purpose = (Para.of(terms, st.body, CONTENT_WIDTH),
               Para.of(f"«{doc.purpose}»", st.bold, CONTENT_WIDTH))  # fmt: skip
    total_row = st.totals.leading + 2  # 1 pt padding above and below
    rule = 1 + 1.2 + 3 * mm  # space before, thickness, space after
    signatures = st.body.leading + 6
    height = (len(totals) * total_row + 3 * mm + sum(p.height for p in words) + 3 * mm + rule
              + sum(p.height for p in purpose) + 8 * mm + signatures)  # fmt: skip
    if not flow.fits(height):
        flow.new_page()
    t = st.totals
    for label, amount in totals:
        flow.y -= total_row
        baseline = flow.y + 1 + t.leading - t.size  # bottom-aligned in its row
        flow.text(flow.right - 26 * mm - PAD, baseline, label, t.font, t.size, "right")
        flow.text(flow.right - PAD, baseline, amount, t.font, t.size, "right")
    flow.y -= 3 * mm
    for para in words:
        flow.y -= para.draw(flow, flow.left, flow.y)
    flow.y -= 3 * mm + 1 + 1.2
    flow.rules([(flow.left, flow.y, flow.right, flow.y)], 1.2)
    flow.y -= 3 * mm
    for para in purpose:
        flow.y -= para.draw(flow, flow.left, flow.y)
    flow.y -= 8 * mm
    _signatures(flow, st)


def _signatures(flow: PageFlow, st: Styles) -> None:
    """Draw the Руководитель / Бухгалтер signature lines."""
    blank = "_" * 14
    label, line = 31 * mm, CONTENT_WIDTH / 2 - 31 * mm
    baseline = flow.y - 3 - st.body.size
    for x, who in ((flow.left, "Руководитель"), (flow.left + label + line, "Бухгалтер")):
        flow.text(x, baseline, who, st.bold.font, st.bold.size)
        flow.text(x + label, baseline, f"{blank} / {blank} /", st.body.font, st.body.size)
    flow.y -= st.body.leading + 6


def render_invoice_pdf(doc: InvoiceDoc) -> bytes:
    """Return the invoice PDF (A4, DejaVu embedded, payment QR in the header)."""
    if not doc.lines:
        raise ValueError(f"invoice {doc.number} has no lines")
    st = _styles()
    flow = PageFlow(
        title=f"Счёт на оплату № {doc.number} от {long_date(doc.date)}",
        author=doc.supplier.name,
        footer=f"Счёт на оплату № {doc.number} от {short_date(doc.date)}",
        fonts=(st.body.font, st.bold.font),
    )
    _header(flow, doc, st)
    flow.y -= 3 * mm
    _bank_block(flow, doc, st)
    flow.y -= 5 * mm
    _title(flow, doc, st)
    _parties(flow, doc, st)
    flow.y -= 3 * mm
    _lines_table(flow, doc, st)
    flow.y -= 2 * mm
    _closing(flow, doc, st)
    return flow.finish()
