"""Invoices: numbering, amounts from the tariff, and the document data for the PDF."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from mailbot.billing.money import InvoiceLine, VatMode, price_lines, to_money, vat_included
from mailbot.config import Service, Settings
from mailbot.documents.model import InvoiceDoc, Party
from mailbot.invariant import InvariantError
from mailbot.storage.models import Application, Client, Invoice, InvoiceStatus
from mailbot.storage.queries import next_number, record_event


def service_party(service: Service) -> Party:
    return Party(
        name=service.name,
        inn=service.inn,
        kpp=service.kpp or None,
        address=service.address,
        bank=service.bank,
        bik=service.bik,
        account=service.account,
        corr_account=service.corr_account,
        phone=service.phone or None,
    )


def buyer_of(form: dict[str, Any]) -> dict[str, Any]:
    """The buyer's requisites as stored on the invoice (a snapshot, not a reference)."""
    return {
        "name": form.get("org_name") or "",
        "inn": form.get("inn") or "",
        "kpp": form.get("kpp") or None,
        "address": form.get("legal_address") or "",
        "phone": form.get("phone") or None,
    }


def create_invoice(  # noqa: PLR0913 - billing's inputs, keyword-only; left to its owner
    session: Session,
    app: Application,
    *,
    count: int,
    new_client: bool,
    settings: Settings,
    now: datetime,
    correlation_id: str = "",
    use_balance: bool = True,
) -> Invoice:
    """Number and store the invoice for `count` codes, in the caller's transaction.

    `use_balance=False`: the client's balance is left alone (an order not proven to come
    from the client; it is spent once the client confirms, mailbot.handlers.confirm).
    """
    lines = price_lines(settings.tariffs, count, new_client=new_client)
    total = to_money(sum((line.amount for line in lines), Decimal(0)))
    seq = next_number(session, "invoice", now.year)
    from_balance = (
        _take_balance(session, app, total, now=now, correlation_id=correlation_id)
        if use_balance
        else Decimal("0.00")
    )
    invoice = Invoice(
        number=f"{now.year}-{seq:05d}",
        application_id=app.id or 0,
        issued_on=now.date(),
        due_on=now.date() + timedelta(days=settings.invoice_due_days),
        total=total,
        vat_mode=settings.vat_mode,
        vat_amount=vat_included(total, settings.vat_mode) or Decimal("0.00"),
        lines=[
            {"name": ln.name, "qty": ln.qty, "unit": ln.unit, "price": str(ln.price)}
            for ln in lines
        ],
        buyer=buyer_of(app.form),
        from_balance=from_balance,
    )
    if from_balance == total:
        invoice.status, invoice.paid_at = InvoiceStatus.paid, now
    session.add(invoice)
    session.flush()
    if invoice.id is None:
        raise InvariantError("invoice.id is missing")
    record_event(
        session,
        entity="invoice",
        entity_id=invoice.id,
        event="invoice_created",
        at=now,
        to_state=invoice.status,
        correlation_id=correlation_id,
        data={"number": invoice.number, "total": str(total), "from_balance": str(from_balance)},
    )
    return invoice


def opening_event(invoice: Invoice) -> str:
    """Return the application event of a new invoice: paid outright from the balance, or not."""
    return "paid_from_balance" if invoice.status == InvoiceStatus.paid else "invoice_issued"


def _take_balance(
    session: Session, app: Application, total: Decimal, *, now: datetime, correlation_id: str
) -> Decimal:
    """Debit the client's balance by what it can cover of `total`; return that amount."""
    if app.client_id is None:
        return Decimal("0.00")
    client = session.exec(select(Client).where(Client.id == app.client_id).with_for_update()).one()
    used = to_money(min(client.balance, total))
    if used <= 0:
        return Decimal("0.00")
    client.balance -= used
    session.add(client)
    record_event(
        session,
        entity="client",
        entity_id=app.client_id,
        event="balance_used",
        at=now,
        correlation_id=correlation_id,
        data={"amount": str(used), "balance": str(client.balance), "application": app.number},
    )
    return used


def invoice_doc(invoice: Invoice, app: Application, settings: Settings) -> InvoiceDoc:
    """The data the PDF renderer needs, rebuilt from the stored invoice."""
    return InvoiceDoc(
        number=invoice.number,
        date=invoice.issued_on,
        supplier=service_party(settings.service),
        buyer=Party(**invoice.buyer),
        lines=tuple(
            InvoiceLine(ln["name"], int(ln["qty"]), ln["unit"], Decimal(ln["price"]))
            for ln in invoice.lines
        ),
        vat_mode=VatMode(invoice.vat_mode),
        application_number=app.number,
        due_days=(invoice.due_on - invoice.issued_on).days,
        prepaid=invoice.from_balance,
    )
