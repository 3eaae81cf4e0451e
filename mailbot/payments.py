"""Payments: the accountant's `invoices pay`, applied once, whatever happens after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlmodel import Session, select

from mailbot.crashpoints import crash_point
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Invoice, InvoiceStatus, Payment
from mailbot.storage.queries import record_event
from mailbot.workflow import transition


@dataclass(frozen=True)
class PayResult:
    ok: bool
    message: str


def pay_invoice(
    rt: Runtime,
    number: str,
    *,
    amount: Decimal | None = None,
    paid_on: date | None = None,
    force_reason: str = "",
    source: str = "cli",
) -> PayResult:
    """Mark invoice `number` paid (idempotent); the amount must match unless forced."""
    with transaction(rt.engine) as session:
        result = _pay(
            session,
            rt,
            number,
            amount=amount,
            paid_on=paid_on,
            force_reason=force_reason,
            source=source,
        )
    crash_point("after_payment")
    return result


def _pay(
    session: Session,
    rt: Runtime,
    number: str,
    *,
    amount: Decimal | None,
    paid_on: date | None,
    force_reason: str,
    source: str,
) -> PayResult:
    now = rt.clock()
    invoice = session.exec(
        select(Invoice).where(Invoice.number == number).with_for_update()
    ).first()
    if invoice is None:
        return PayResult(ok=False, message=f"invoice {number} not found")
    if invoice.status == InvoiceStatus.paid:
        return PayResult(ok=True, message=f"invoice {number} is already paid")
    if invoice.status == InvoiceStatus.cancelled:
        return PayResult(ok=False, message=f"invoice {number} is cancelled")
    due = invoice.total - invoice.from_balance
    amount = due if amount is None else amount.quantize(Decimal("0.01"))
    if amount != due and not force_reason:
        return PayResult(
            ok=False,
            message=f"invoice {number} is for {due} RUB, got {amount}: "
            "pass --force REASON to accept a different amount",
        )
    app = session.get(Application, invoice.application_id)
    assert app is not None  # noqa: S101
    error = transition(
        session, app, "payment_matched", now=now, data={"invoice": number, "amount": str(amount)}
    )
    if error is not None:
        return PayResult(ok=False, message=str(error))
    payment = Payment(
        fingerprint=f"invoice:{number}",
        invoice_id=invoice.id,
        client_id=app.client_id,
        amount=amount,
        paid_on=paid_on or now.date(),
        source=source,
        purpose=force_reason,
        status="applied",
        reason=force_reason,
        created_at=now,
    )
    session.add(payment)
    invoice.status, invoice.paid_at = InvoiceStatus.paid, now
    session.add(invoice)
    assert invoice.id is not None  # noqa: S101
    record_event(
        session,
        entity="invoice",
        entity_id=invoice.id,
        event="invoice_paid",
        at=now,
        from_state=InvoiceStatus.issued,
        to_state=InvoiceStatus.paid,
        data={"amount": str(amount), "source": source, "reason": force_reason},
    )
    return PayResult(ok=True, message=f"invoice {number} paid: {amount} RUB; {app.number} → paid")
