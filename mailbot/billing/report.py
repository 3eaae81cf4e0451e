"""The period report for the accountant: invoices and payments, to lay beside a 1C statement.

`period_report` reads the rows (invoices by issue date, payments by the day the money came);
`to_xlsx` and `to_csv` write them (pure, bytes out). Column names and statuses are Russian, as
the accountant reads them; amounts stay exact (Decimal in xlsx number cells, «2500,00» in csv)
and each table ends with an «Итого» row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet
from sqlmodel import Session, col, select

from mailbot.storage.models import Application, Invoice, Payment

INVOICE_COLUMNS = (
    "Номер счёта",
    "Дата",
    "ИНН покупателя",
    "Покупатель",
    "Сумма",
    "НДС",
    "Статус",
    "Оплачено",
    "В т.ч. с баланса",
    "Дата оплаты",
    "Заявка",
)
PAYMENT_COLUMNS = (
    "Дата",
    "Номер п/п",
    "ИНН плательщика",
    "Плательщик",
    "Сумма",
    "Статус",
    "Счёт",
    "Источник",
    "Примечание",
    "ID",
)
INVOICE_STATUS = {"issued": "выставлен", "paid": "оплачен", "cancelled": "отменён"}
PAYMENT_STATUS = {
    "applied": "зачтён по счёту",
    "credited": "на баланс клиента",
    "held": "ждёт бухгалтера",
    "rejected": "отклонён",
    "reversed": "сторнирован",
}
SOURCE = {"cli": "вручную", "statement": "выписка", "mail": "выписка по почте"}
Cell = str | Decimal | date | int | None


@dataclass(frozen=True)
class Report:
    first: date
    last: date
    invoices: tuple[tuple[Cell, ...], ...]
    payments: tuple[tuple[Cell, ...], ...]

    @property
    def invoices_total(self) -> Decimal:
        return sum((_money(r[4]) for r in self.invoices), Decimal("0.00"))

    @property
    def payments_total(self) -> Decimal:
        return sum((_money(r[4]) for r in self.payments), Decimal("0.00"))


def _money(value: Cell) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def period_report(session: Session, first: date, last: date) -> Report:
    """Invoices issued and payments received from `first` to `last`, both days included."""
    invoices = session.exec(
        select(Invoice, Application.number)
        .join(Application, col(Application.id) == col(Invoice.application_id))
        .where(Invoice.issued_on >= first, Invoice.issued_on <= last)
        .order_by(col(Invoice.number))
    ).all()
    payments = session.exec(
        select(Payment)
        .where(Payment.paid_on >= first, Payment.paid_on <= last)
        .order_by(col(Payment.paid_on), col(Payment.id))
    ).all()
    ids = {p.invoice_id for p in payments} | {i.id for i, _ in invoices}
    numbers = dict(
        session.exec(
            select(Invoice.id, Invoice.number).where(col(Invoice.id).in_([i for i in ids if i]))
        ).all()
    )
    money = _paid_money(session, [i.id for i, _ in invoices if i.id is not None])
    return Report(
        first,
        last,
        tuple(_invoice_row(i, number, money.get(i.id or 0)) for i, number in invoices),
        tuple(_payment_row(p, numbers.get(p.invoice_id or 0, "")) for p in payments),
    )


def _paid_money(session: Session, invoice_ids: list[int]) -> dict[int, Decimal]:
    """The money (not the balance) that paid each invoice: its applied payment."""
    if not invoice_ids:
        return {}
    rows = session.exec(
        select(Payment).where(col(Payment.invoice_id).in_(invoice_ids), Payment.status == "applied")
    ).all()
    return {p.invoice_id: p.amount for p in rows if p.invoice_id is not None}


def _invoice_row(inv: Invoice, app_number: str, money: Decimal | None) -> tuple[Cell, ...]:
    paid = Decimal("0.00")
    if inv.status == "paid":
        paid = inv.from_balance + min(money or Decimal(0), inv.total - inv.from_balance)
    return (
        inv.number,
        inv.issued_on,
        str(inv.buyer.get("inn") or ""),
        str(inv.buyer.get("name") or ""),
        inv.total,
        inv.vat_amount if inv.vat_mode != "none" else None,
        INVOICE_STATUS.get(inv.status, inv.status),
        paid,
        inv.from_balance,
        inv.paid_at.date() if inv.paid_at else None,
        app_number,
    )


def _payment_row(p: Payment, invoice: str) -> tuple[Cell, ...]:
    return (
        p.paid_on,
        p.doc_number,
        p.payer_inn,
        p.payer_name,
        p.amount,
        PAYMENT_STATUS.get(p.status, p.status),
        invoice,
        SOURCE.get(p.source, p.source),
        p.reason,
        p.id,
    )


def to_xlsx(report: Report) -> bytes:
    """Two sheets, «Счета» and «Платежи», each with its «Итого» row."""
    book = Workbook()
    sheet = book.active
    if sheet is None:
        sheet = book.create_sheet()
    sheet.title = "Счета"
    _fill(sheet, INVOICE_COLUMNS, report.invoices, report.invoices_total)
    _fill(book.create_sheet("Платежи"), PAYMENT_COLUMNS, report.payments, report.payments_total)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _fill(
    sheet: Worksheet, columns: Sequence[str], rows: Sequence[tuple[Cell, ...]], total: Decimal
) -> None:
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r in rows:
        sheet.append(list(r))
    sheet.append(["Итого", None, None, None, total])
    sheet[sheet.max_row][0].font = Font(bold=True)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, Decimal):
                cell.number_format = "#,##0.00"
            elif isinstance(cell.value, date):
                cell.number_format = "DD.MM.YYYY"
    for letter, width in zip(
        "ABCDEFGHIJK", (14, 12, 14, 40, 14, 12, 18, 14, 14, 14, 18), strict=False
    ):
        sheet.column_dimensions[letter].width = width


def to_csv(report: Report) -> tuple[bytes, bytes]:
    """(invoices, payments) as CSV for Excel and 1C: «;», UTF-8 with BOM, «2500,00», dd.mm.yyyy."""
    return (
        _csv(INVOICE_COLUMNS, report.invoices, report.invoices_total),
        _csv(PAYMENT_COLUMNS, report.payments, report.payments_total),
    )


def _csv(columns: Sequence[str], rows: Sequence[tuple[Cell, ...]], total: Decimal) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_text(v) for v in r])
    writer.writerow(["Итого", "", "", "", _text(total)])
    return buffer.getvalue().encode("utf-8-sig")


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    if isinstance(value, date):
        return f"{value:%d.%m.%Y}"
    return str(value)
