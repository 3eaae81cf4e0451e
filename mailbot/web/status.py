"""«Заявки и коды»: the client's applications and orders, one application (state, timeline,
products with their codes, invoices) and its downloads.

Every figure is the status reply's (`handlers.correspondence.status_items`), and every file is
made by the function that makes the mailed one: the registry and the certificate by
`issuance.issue.documents` from `issued_codes`, the images by `documents.barcodes.images_zip`,
an invoice by `render_invoice_pdf(invoice_doc(...))`. Objects are found through `owned`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailbot.billing.invoices import invoice_doc
from mailbot.billing.money import format_rub
from mailbot.documents.barcodes import images_zip
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.documents.model import IssuedCode, short_date
from mailbot.handlers.correspondence import status_items
from mailbot.issuance.issue import documents, issued_codes
from mailbot.storage.db import read_only
from mailbot.storage.models import Application, Barcode, Client, Event, Invoice, ProductRow
from mailbot.web import owned
from mailbot.web.visit import Visit, not_found, page, render

MSK = timezone(timedelta(hours=3), "МСК")  # Moscow time: UTC+3 all year round
KIND_TEXT = {"registration": "регистрация", "order": "заказ кодов"}
INVOICE_STATUS_TEXT = {"issued": "ожидает оплаты", "paid": "оплачен", "cancelled": "аннулирован"}
# What the client reads for each known event of an application or its invoices; any other
# event is shown by its name.
EVENT_TEXT = {
    "form_invalid": "Найдены ошибки в файлах, отправлен список исправлений",
    "correction_received": "Получены исправленные файлы",
    "form_valid": "Файлы проверены, заявка принята",
    "invoice_issued": "Выставлен счёт",
    "paid_from_balance": "Оплачена с баланса",
    "payment_matched": "Оплата получена",
    "expired": "Срок оплаты счёта истёк",
    "cancelled": "Заявка отменена",
    "codes_allocated": "Штрихкоды присвоены",
    "pool_exhausted": "Выдача задерживается: готовим новые штрихкоды",
    "issuance_failed": "Выдача задерживается, мы уже разбираемся",
    "issuance_requeued": "Выдача возобновлена",
    "codes_issued": "Штрихкоды выданы, документы отправлены на почту",
    "payment_reversed": "Оплата отменена бухгалтерией",
    "invoice_unpaid": "Оплата счёта отменена",
    "invoice_cancelled": "Счёт аннулирован",
}
MIRRORED = {"invoice_created", "invoice_paid"}  # repeated by an application event
PAYMENTS = {"payment_matched", "paid_from_balance"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def when(at: datetime) -> str:
    """Return «25.11.2026 13:00» in Moscow time (stored times are UTC; SQLite drops the zone)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(MSK).strftime("%d.%m.%Y %H:%M")


def rub(amount: Any) -> str:
    return "" if amount is None else format_rub(amount)


def download(data: bytes, media_type: str, filename: str, ascii_name: str) -> Response:
    """A file to save: `filename` in UTF-8 (RFC 6266/5987), `ascii_name` for old clients."""
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


# ---- the list


def _row(item: dict[str, Any], kind: str) -> dict[str, Any]:
    invoice: Invoice | None = item["invoice"]
    return {
        "number": item["number"],
        "kind": KIND_TEXT.get(kind, kind),
        "created": short_date(item["created_at"]),
        "state": item["state_text"],
        "invoice": invoice.number if invoice else "",
        "total": rub(invoice.total) if invoice else "",
        "due": rub(item["due"]),
        "codes": item["codes"],
    }


def _applications(v: Visit) -> Response:
    with read_only(v.rt.engine) as session:
        apps = list(
            session.exec(
                select(Application)
                .where(Application.client_id == v.client_id)
                .order_by(col(Application.id).desc())
            )
        )
        items = status_items(session, apps)
    rows = [_row(item, a.kind) for a, item in zip(apps, items, strict=True)]
    return render(v, v.request, "applications.html.j2", rows=rows)


# ---- one application


@dataclass(frozen=True)
class Step:
    at: str
    text: str


def timeline(events: list[Event], invoices: dict[int, str]) -> list[Step]:
    """The application's events and its invoices', oldest first, in the client's words.

    An invoice's `invoice_created` and `invoice_paid` are left out: the application's own
    event of the same moment (`invoice_issued`, `paid_from_balance`, `payment_matched`)
    says it, with the invoice number; any other invoice event (a cancellation) is shown.
    """
    steps = []
    for e in events:
        if e.entity == "invoice" and e.event in MIRRORED:
            continue
        data = e.data or {}
        text = EVENT_TEXT.get(e.event, e.event)
        number = invoices.get(e.entity_id) if e.entity == "invoice" else data.get("invoice")
        details = [f"счёт № {number}"] if number else []
        if e.entity == "application" and "amount" in data and e.event in PAYMENTS:
            details.append(f"{rub(Decimal(str(data['amount'])))} руб.")
        steps.append(Step(when(e.at), text + (f" ({', '.join(details)})" if details else "")))
    return steps


def _events(session: Session, app_id: int, invoice_ids: list[int]) -> list[Event]:
    of_app = and_(col(Event.entity) == "application", col(Event.entity_id) == app_id)
    of_invoices = and_(col(Event.entity) == "invoice", col(Event.entity_id).in_(invoice_ids))
    return list(
        session.exec(
            select(Event).where(or_(of_app, of_invoices)).order_by(col(Event.at), col(Event.id))
        )
    )


def _products(session: Session, app_id: int) -> list[dict[str, str]]:
    rows = session.exec(
        select(ProductRow, Barcode.ean)
        .join(Barcode, col(Barcode.product_row_id) == col(ProductRow.id), isouter=True)
        .where(ProductRow.application_id == app_id)
        .order_by(col(ProductRow.row))
    ).all()
    return [
        {
            "row": str(r.row),
            "name": r.name,
            "type": r.product_type_name,
            "brand": r.brand,
            "ean": ean or "",
        }
        for r, ean in rows
    ]


def _invoice_row(i: Invoice) -> dict[str, str]:
    return {
        "number": i.number,
        "issued": short_date(i.issued_on),
        "total": rub(i.total),
        "from_balance": rub(i.from_balance) if i.from_balance else "",
        "due": rub(i.total - i.from_balance),
        "status": INVOICE_STATUS_TEXT.get(i.status, i.status),
    }


def _application(v: Visit) -> Response:
    number = v.request.path_params["number"]
    with read_only(v.rt.engine) as session:
        app = owned.application(session, v.client_id, number)
        app_id = _id(app.id)
        invoices = list(
            session.exec(
                select(Invoice).where(Invoice.application_id == app_id).order_by(col(Invoice.id))
            )
        )
        numbers = {i.id: i.number for i in invoices if i.id is not None}
        steps = timeline(_events(session, app_id, list(numbers)), numbers)
        [status] = status_items(session, [app])
        products = _products(session, app_id)
        rows = [_invoice_row(i) for i in invoices]
    return render(
        v,
        v.request,
        "application.html.j2",
        app=_row(status, app.kind),
        steps=steps,
        products=products,
        invoices=rows,
        has_codes=bool(products) and all(p["ean"] for p in products),
    )


def _id(value: int | None) -> int:
    if value is None:
        raise not_found()
    return value


# ---- downloads


@dataclass(frozen=True)
class Issued:
    """What the documents of an application with codes are made from."""

    app: Application
    client: Client
    codes: list[IssuedCode]
    on: date  # the day the codes were issued: the documents' date


def issue_day(session: Session, app_id: int, *, today: date) -> date:
    """The day of `codes_issued` (the mail's documents' date), else the day codes were given."""
    issued = session.exec(
        select(Event.at)
        .where(
            Event.entity == "application", Event.entity_id == app_id, Event.event == "codes_issued"
        )
        .order_by(col(Event.id).desc())
    ).first()
    if issued is None:
        issued = session.exec(
            select(Barcode.issued_at).where(Barcode.application_id == app_id).limit(1)
        ).first()
    return issued.date() if issued is not None else today


def _issued(v: Visit) -> Issued:
    """The application named in the path, with its codes; 404 if not this client's or none yet."""
    with read_only(v.rt.engine) as session:
        app = owned.application(session, v.client_id, v.request.path_params["number"])
        app_id = _id(app.id)
        codes = issued_codes(session, app_id)
        client = session.get(Client, v.client_id)
        if codes is None or client is None:
            raise not_found()
        return Issued(app, client, codes, issue_day(session, app_id, today=v.rt.clock().date()))


def _registry(v: Visit) -> Response:
    it = _issued(v)
    registry, _ = documents(v.rt, it.app, it.client, it.codes, on=it.on)
    return download(registry.data, XLSX, registry.filename, f"registry-{it.app.number}.xlsx")


def _certificate(v: Visit) -> Response:
    it = _issued(v)
    _, certificate = documents(v.rt, it.app, it.client, it.codes, on=it.on)
    name = f"certificate-{it.app.number}.pdf"
    return download(certificate.data, "application/pdf", certificate.filename, name)


def _barcodes(v: Visit) -> Response:
    it = _issued(v)
    data = images_zip([c.ean for c in it.codes], it.app.number, modified=it.on)
    filename = f"Штрихкоды {it.app.number}.zip"
    return download(data, "application/zip", filename, f"barcodes-{it.app.number}.zip")


def _invoice_pdf(v: Visit) -> Response:
    with read_only(v.rt.engine) as session:
        invoice = owned.invoice(session, v.client_id, v.request.path_params["number"])
        app = session.get(Application, invoice.application_id)
        if app is None:
            raise not_found()
    pdf = render_invoice_pdf(invoice_doc(invoice, app, v.rt.settings))
    number = invoice.number
    return download(pdf, "application/pdf", f"Счёт {number}.pdf", f"invoice-{number}.pdf")


routes: list[BaseRoute] = [
    Route("/applications", page(_applications), methods=["GET"]),
    Route("/applications/{number}", page(_application), methods=["GET"]),
    Route("/applications/{number}/registry.xlsx", page(_registry), methods=["GET"]),
    Route("/applications/{number}/barcodes.zip", page(_barcodes), methods=["GET"]),
    Route("/applications/{number}/certificate.pdf", page(_certificate), methods=["GET"]),
    Route("/invoices/{number}/pdf", page(_invoice_pdf), methods=["GET"]),
]
