"""The accountant's corrections: cancel an invoice, reverse a mistaken payment, pay from a balance.

Nothing is deleted. A cancelled invoice keeps its number (numbers are never reused) and its
rows, with status `cancelled`; whatever part of it the client's balance had covered goes back
to the balance as a `balance_returned` movement.

A reversal keeps the payment row and marks it `reversed` (its reason says why and what it
was), rather than adding a negative payment: a payment is money the bank moved, and a second,
negative row would be money nobody moved. Each reversal writes `payment_reversed`, plus
`invoice_unpaid` when it had paid an invoice, plus a `balance_reversed` movement when part of it
had gone to the client's balance (the whole of a credit, or an overpayment's surplus). A balance
never goes below zero: when the money credited has already been spent the reversal is refused.
Codes issued for an invoice the payment had paid stay issued (they are the client's, bound to
products forever); the invoice is unpaid again and the command says so.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from mailbot.billing.payments import PayResult, Spent, spend_balance
from mailbot.invariant import InvariantError
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    Client,
    Event,
    Invoice,
    InvoiceStatus,
    Payment,
)
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.queries import record_event
from mailbot.workflow import must, transition


def cancel_invoice(rt: Runtime, number: str, *, reason: str) -> PayResult:
    """Cancel an unpaid invoice: it is never paid after this; its application is cancelled."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        invoice = _locked_invoice(session, number)
        if invoice is None:
            return PayResult(ok=False, message=f"invoice {number} not found")
        if invoice.status == InvoiceStatus.cancelled:
            return PayResult(ok=True, message=f"invoice {number} is already cancelled")
        if invoice.status == InvoiceStatus.paid:
            return PayResult(ok=False, message=_paid_refusal(session, invoice))
        app = _app_of(session, invoice)
        error = transition(
            session,
            app,
            "cancelled",
            now=now,
            data={"invoice": number, "reason": reason},
        )
        if error is not None:
            return PayResult(ok=False, message=f"invoice {number} not cancelled: {error}")
        invoice.status = InvoiceStatus.cancelled
        session.add(invoice)
        record_event(
            session,
            entity="invoice",
            entity_id=_id(invoice.id),
            event="invoice_cancelled",
            at=now,
            from_state=InvoiceStatus.issued,
            to_state=InvoiceStatus.cancelled,
            data={"reason": reason, "from_balance": str(invoice.from_balance)},
        )
        message = f"invoice {number} cancelled; {app.number} → cancelled"
        if invoice.from_balance > 0:
            client = _locked_client(session, app.client_id)
            client.balance += invoice.from_balance
            session.add(client)
            _movement(session, client, "balance_returned", invoice.from_balance, now, number)
            message += (
                f"; {invoice.from_balance} RUB returned to the balance ({client.balance} RUB)"
            )
    return PayResult(ok=True, message=message)


def _paid_refusal(session: Session, invoice: Invoice) -> str:
    payment = session.exec(
        select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status == "applied")
    ).first()
    hint = f": reverse payment {payment} first" if payment else " (from the balance)"
    return f"invoice {invoice.number} is paid{hint}; a paid invoice is not cancelled"


def reverse_payment(rt: Runtime, payment_id: int, *, reason: str) -> PayResult:
    """Reverse an applied or credited payment (the row stays, marked `reversed`)."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        payment = session.exec(
            select(Payment).where(Payment.id == payment_id).with_for_update()
        ).first()
        if payment is None:
            return PayResult(ok=False, message=f"no payment {payment_id}")
        if payment.status == "held":
            return PayResult(
                ok=False,
                message=f"payment {payment_id} is held, not applied: reject it instead "
                f"(mailbot payments reject {payment_id} --reason …)",
            )
        if payment.status not in ("applied", "credited"):
            return PayResult(ok=False, message=f"payment {payment_id} is already {payment.status}")
        invoice = (
            _locked_invoice_by_id(session, payment.invoice_id)
            if payment.status == "applied"
            else None
        )
        back = _credited_by(session, payment)
        client = _locked_client(session, payment.client_id) if back > 0 else None
        if client is not None and client.balance < back:
            return PayResult(
                ok=False,
                message=f"payment {payment_id}: {back} RUB of it went to the balance of "
                f"{client.login or client.inn}, which holds {client.balance} RUB now "
                "(already spent): not reversed",
            )
        message = f"payment {payment_id} reversed ({payment.amount} RUB)"
        if invoice is not None:
            message += _unpay(session, invoice, payment, now, reason)
        if client is not None:
            client.balance -= back
            session.add(client)
            _movement(session, client, "balance_reversed", back, now, payment_id)
            message += f"; {back} RUB taken back from the balance ({client.balance} RUB)"
        was = payment.status
        payment.status, payment.reason = "reversed", f"{reason} (was {was}: {payment.reason})"
        session.add(payment)
        record_event(
            session,
            entity="payment",
            entity_id=payment_id,
            event="payment_reversed",
            at=now,
            from_state=was,
            to_state="reversed",
            data={"reason": reason, "amount": str(payment.amount), "balance": str(back)},
        )
    return PayResult(ok=True, message=message)


def _unpay(session: Session, invoice: Invoice, payment: Payment, now: datetime, reason: str) -> str:
    """The invoice the payment had paid is unpaid again; codes already issued stay issued."""
    app = _app_of(session, invoice)
    invoice.status, invoice.paid_at = InvoiceStatus.issued, None
    session.add(invoice)
    record_event(
        session,
        entity="invoice",
        entity_id=_id(invoice.id),
        event="invoice_unpaid",
        at=now,
        from_state=InvoiceStatus.paid,
        to_state=InvoiceStatus.issued,
        data={"payment": payment.id, "reason": reason},
    )
    if app.state == S.issued:
        return (
            f"; invoice {invoice.number} is unpaid again; the codes of {app.number} "
            "were already issued and stay issued"
        )
    must(
        transition(
            session,
            app,
            "payment_reversed",
            now=now,
            data={"invoice": invoice.number, "payment": payment.id},
        )
    )
    return f"; invoice {invoice.number} is unpaid again; {app.number} → {app.state}"


def _credited_by(session: Session, payment: Payment) -> Decimal:
    """What of `payment` went to a client's balance: all of a credit, an overpayment's surplus."""
    if payment.client_id is None:
        return Decimal("0.00")
    if payment.status == "credited":
        return payment.amount
    events = session.exec(
        select(Event).where(
            Event.entity == "client",
            Event.entity_id == payment.client_id,
            Event.event == "balance_credited",
        )
    ).all()
    return sum(
        (
            Decimal(str(e.data["amount"]))
            for e in events
            if e.data.get("payment") == payment.fingerprint and "surplus_of" in e.data
        ),
        Decimal("0.00"),
    )


def pay_from_balance(rt: Runtime, number: str) -> PayResult:
    """Pay an open invoice from its client's balance, as far as the balance goes."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        invoice = _locked_invoice(session, number)
        if invoice is None:
            return PayResult(ok=False, message=f"invoice {number} not found")
        if invoice.status != InvoiceStatus.issued:
            return PayResult(ok=False, message=f"invoice {number} is {invoice.status}")
        app = _app_of(session, invoice)
        if app.client_id is None:
            return PayResult(
                ok=False, message=f"{app.number} has no registered client yet: no balance to use"
            )
        client = _locked_client(session, app.client_id)
        spent = spend_balance(session, invoice, app, client, now=now)
    if isinstance(spent, str):
        return PayResult(ok=False, message=spent)
    return PayResult(ok=True, message=_spent_line(number, app.number, spent))


def _spent_line(number: str, app_number: str, spent: Spent) -> str:
    head = f"{spent.used} RUB taken from the balance ({spent.balance} RUB left)"
    if spent.paid:
        return f"{head}; invoice {number} paid; {app_number} → paid"
    return f"{head}; invoice {number}: {spent.due} RUB still due"


def _movement(  # noqa: PLR0913 - the movement's columns
    session: Session, client: Client, event: str, amount: Decimal, now: datetime, ref: object
) -> None:
    """Log a change of the client's balance (see billing.ledger.MOVEMENT_EVENTS)."""
    key = "payment" if isinstance(ref, int) else "invoice"
    data = {"amount": str(amount), "balance": str(client.balance), key: ref}
    record_event(session, entity="client", entity_id=_id(client.id), event=event, at=now, data=data)


def _locked_invoice(session: Session, number: str) -> Invoice | None:
    return session.exec(select(Invoice).where(Invoice.number == number).with_for_update()).first()


def _locked_invoice_by_id(session: Session, invoice_id: int | None) -> Invoice:
    invoice = session.exec(
        select(Invoice).where(col(Invoice.id) == invoice_id).with_for_update()
    ).first()
    if invoice is None:
        raise InvariantError("an applied payment always has its invoice")
    return invoice


def _locked_client(session: Session, client_id: int | None) -> Client:
    client = session.exec(
        select(Client).where(col(Client.id) == client_id).with_for_update()
    ).first()
    if client is None:
        raise InvariantError("money on a balance always has its client")
    return client


def _app_of(session: Session, invoice: Invoice) -> Application:
    app = session.get(Application, invoice.application_id)
    if app is None:
        raise InvariantError("an invoice always has its application")
    return app


def _id(value: int | None) -> int:
    if value is None:
        raise InvariantError("flushed rows only")
    return value
