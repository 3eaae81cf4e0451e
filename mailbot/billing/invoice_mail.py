"""An invoice as a document again: its PDF (the one the mail carried) and a re-sent mail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from mailbot.billing.invoices import invoice_doc
from mailbot.billing.payments import PayResult
from mailbot.config import Settings
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import FileAttachment, Mail, render_body, reply_subject
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Invoice, InvoiceStatus, OutboxMessage


@dataclass(frozen=True)
class InvoicePdf:
    filename: str  # «Счёт 2026-00001.pdf», as the mail names it
    data: bytes


def find(session: Session, number: str) -> tuple[Invoice, Application] | None:
    """The invoice with this number and its application."""
    row = session.exec(
        select(Invoice, Application)
        .join(Application, col(Application.id) == col(Invoice.application_id))
        .where(Invoice.number == number)
    ).first()
    return None if row is None else (row[0], row[1])


def pdf_of(invoice: Invoice, app: Application, settings: Settings) -> InvoicePdf:
    """The invoice PDF, rendered from the stored invoice exactly as the invoice mail does."""
    data = render_invoice_pdf(invoice_doc(invoice, app, settings))
    return InvoicePdf(f"Счёт {invoice.number}.pdf", data)


def resend(rt: Runtime, number: str) -> PayResult:
    """Queue the invoice mail again, in the application's thread, to its addresses.

    Each re-send is its own outbox row (`invoice:ID:resend:K`), so asking twice sends twice.
    A cancelled invoice is not sent: nobody must pay it. Like the reminders, it is the
    service's own mail to the application's addresses, so no cap on mail to others applies.
    """
    now = rt.clock()
    with transaction(rt.engine) as session:
        found = find(session, number)
        if found is None:
            return PayResult(ok=False, message=f"invoice {number} not found")
        invoice, app = found
        if invoice.status == InvoiceStatus.cancelled:
            return PayResult(ok=False, message=f"invoice {number} is cancelled: not re-sent")
        prefix = f"invoice:{invoice.id}:resend:"
        sent_before = session.exec(
            select(func.count(col(OutboxMessage.id))).where(
                col(OutboxMessage.dedupe_key).startswith(prefix)
            )
        ).one()
        doc = invoice_doc(invoice, app, rt.settings)
        pdf = pdf_of(invoice, app, rt.settings)
        thread = session.exec(
            select(OutboxMessage.message_id)
            .where(OutboxMessage.application_id == app.id)
            .order_by(col(OutboxMessage.id))
        ).first()
        text = render_body(
            rt.env,
            "invoice_resend",
            {"app": app, "invoice": invoice, "doc": doc, "service": rt.settings.service},
        )
        to = recipients(app)
        mail = Mail(
            to=to,
            subject=reply_subject(app.subject, app.number),
            text=text,
            attachments=(FileAttachment(pdf.filename, "application/pdf", pdf.data),),
            in_reply_to=thread or app.root_message_id,
            references=tuple(x for x in (app.root_message_id,) if x),
        )
        row = enqueue(
            session,
            mail,
            Outgoing(
                dedupe_key=f"{prefix}{sent_before + 1}",
                kind="invoice",
                application_id=app.id,
            ),
            sender=rt.sender,
            now=now,
        )
        status = row.status
    held = f" (held: {row.held_reason})" if status == "held" else ""
    return PayResult(
        ok=True,
        message=f"invoice {number} queued to {', '.join(to)}{held}; "
        "it is sent on the next pass (mailbot run)",
    )


def recipients(app: Application) -> tuple[str, ...]:
    """Where the application's mail goes: its sender and the e-mail its form names."""
    email = str(app.form.get("email") or "").lower()
    return tuple(dict.fromkeys(a for a in (app.sender, email) if a))
