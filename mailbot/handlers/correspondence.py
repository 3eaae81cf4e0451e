"""Mail that is not a form: robots, bounces, status questions, support, strangers."""

from __future__ import annotations

import re
from datetime import timedelta

import structlog
from sqlmodel import Session, col, select

from mailbot.forms import blank_form_attachments
from mailbot.handlers import consent
from mailbot.handlers.applications import reply_to
from mailbot.handlers.replies import reply
from mailbot.invariant import InvariantError
from mailbot.mail.message import ParsedMessage
from mailbot.mail.render import FileAttachment, render_body, reply_subject
from mailbot.runtime import Runtime
from mailbot.storage.models import (
    Application,
    Barcode,
    Client,
    InboundMessage,
    Invoice,
    OutboxMessage,
    OutboxStatus,
)
from mailbot.storage.queries import record_event

log = structlog.get_logger()
STATE_TEXT = {
    "received": "получена, проверяется",
    "needs_fix": "нужно исправить файлы (см. наше письмо)",
    "accepted": "принята",
    "invoiced": "выставлен счёт, ожидаем оплату",
    "paid": "оплачена, штрихкоды готовятся",
    "issued": "штрихкоды выданы",
    "expired": "срок оплаты счёта истёк",
    "cancelled": "отменена",
}
MESSAGE_ID_RE = re.compile(rb"<[^<>\s]+\.mailbot@[^<>\s]+>")


def bounce(session: Session, rt: Runtime, inbound: InboundMessage, raw: bytes) -> str:
    """A DSN about our mail marks that mail bounced; never answered."""
    hits = {m.decode("ascii", "replace") for m in MESSAGE_ID_RE.findall(raw)}
    rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.message_id).in_(hits)))
    marked = 0
    for row in rows:
        if row.status == OutboxStatus.bounced:
            continue
        row.status = OutboxStatus.bounced
        session.add(row)
        if row.id is None:
            raise InvariantError("row.id is missing")
        record_event(
            session,
            entity="outbox",
            entity_id=row.id,
            event="mail_bounced",
            at=rt.clock(),
            to_state=OutboxStatus.bounced,
            correlation_id=inbound.correlation_id,
        )
        marked += 1
    return f"bounced {marked}"


def _apps_for(session: Session, client: Client | None, sender: str) -> list[Application]:
    """The client's applications and those known by the sender's address (sender, form e-mail)."""
    apps = {a.id: a for a in consent.applications_of(session, sender)}
    if client is not None:
        query = select(Application).where(Application.client_id == client.id)
        apps.update((a.id, a) for a in session.exec(query))
    return [apps[k] for k in sorted(k for k in apps if k is not None)]


def status_reply(
    session: Session,
    rt: Runtime,
    inbound: InboundMessage,
    msg: ParsedMessage,
    client: Client | None,
) -> str:
    """List the sender's applications; answered only to a registered or applying address.

    Anyone else gets the general instructions and no data (at most once a day).
    """
    sender = msg.from_addr
    apps = _apps_for(session, client, sender) if sender else []
    if not apps:
        return correspondence_instructions(session, rt, inbound, msg)
    items = []
    for app in apps:
        invoice = session.exec(
            select(Invoice).where(Invoice.application_id == app.id).order_by(col(Invoice.id).desc())
        ).first()
        codes = len(session.exec(select(Barcode.id).where(Barcode.application_id == app.id)).all())
        due = (
            invoice.total - invoice.from_balance if invoice and invoice.status == "issued" else None
        )
        items.append(
            {
                "number": app.number,
                "created_at": app.created_at,
                "invoice": invoice,
                "state_text": STATE_TEXT.get(app.state, app.state),
                "codes": codes,
                "due": due,
            }
        )
    reply(
        session,
        rt,
        inbound,
        msg,
        to=sender,
        subject=reply_subject(msg.subject or "Статус заявок", msg.application_tag or ""),
        text=render_body(rt.env, "status", {"apps": items, "service": rt.settings.service}),
        kind="status",
    )
    return f"status of {len(items)}"


def correspondence_instructions(
    session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage
) -> str:
    """The general instructions with the blank forms."""
    return instructions(session, rt, inbound, msg, blank_form_attachments(rt.product_types))


def instructions(
    session: Session,
    rt: Runtime,
    inbound: InboundMessage,
    msg: ParsedMessage,
    forms: tuple[FileAttachment, ...],
) -> str:
    """One reply with instructions and blank forms, at most once per sender per day."""
    now = rt.clock()
    sender = reply_to(msg)
    recent = session.exec(
        select(OutboxMessage.recipients).where(
            OutboxMessage.kind == "instructions",
            OutboxMessage.created_at >= now - timedelta(days=1),
        )
    )
    if any(sender in r for r in recent):
        return "instructions already sent today"
    reply(
        session,
        rt,
        inbound,
        msg,
        to=sender,
        subject=reply_subject(msg.subject or "Регистрация штрихкодов", ""),
        text=render_body(rt.env, "instructions", {"service": rt.settings.service}),
        kind="instructions",
        attachments=forms,
        now=now,
    )
    return "instructions"


def oversized(session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage) -> str:
    """Refuse a message over the size limit politely; its body was never read."""
    mb = 1_000_000
    body = render_body(
        rt.env,
        "oversized",
        {
            "subject": msg.subject,
            "size_mb": f"{inbound.size / mb:.1f}",
            "limit_mb": f"{rt.settings.limits.max_message_bytes / mb:.0f}",
            "service": rt.settings.service,
        },
    )
    reply(
        session,
        rt,
        inbound,
        msg,
        to=reply_to(msg),
        subject=reply_subject(msg.subject, msg.application_tag or ""),
        text=body,
        kind="oversized",
    )
    return "refused: too large"
