"""Mail that is not a form: robots, bounces, status questions, support, strangers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlmodel import Session, col, func, select

from mailbot.forms import blank_form_attachments
from mailbot.handlers import consent
from mailbot.handlers.context import Context
from mailbot.handlers.replies import Answer, reply, reply_to
from mailbot.invariant import InvariantError
from mailbot.mail.dsn import read_report
from mailbot.mail.identity import address_of
from mailbot.mail.render import FileAttachment, render_body, reply_subject
from mailbot.storage.models import (
    Application,
    Barcode,
    Client,
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


def bounce(c: Context) -> str:
    """A DSN about our mail marks that mail bounced; never answered.

    Only a row that was sent, whose random Message-ID the report names, and one of whose
    recipients the report says failed (mail/dsn.py): a stranger cannot guess our ids, and
    a report never cancels a mail still waiting to go (a greylisted credentials mail).
    """
    session, rt, inbound = c.session, c.rt, c.inbound
    report = read_report(c.raw)
    if not report.message_ids:
        return "bounced 0"
    rows = session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.message_id).in_(report.message_ids),
            col(OutboxMessage.random_id).is_(True),  # a computable id proves nothing
        )
    )
    marked = ignored = 0
    for row in rows:
        if row.status == OutboxStatus.bounced:
            continue
        named = {r.lower() for r in row.recipients} & report.failed
        if row.status != OutboxStatus.sent or not named:
            ignored += 1
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
            data={"recipients": sorted(named)},
        )
        marked += 1
    return f"bounced {marked}" + (f", ignored {ignored}" if ignored else "")


def _apps_for(session: Session, client: Client | None, sender: str) -> list[Application]:
    """The client's applications and those known by the sender's address (sender, form e-mail)."""
    apps = {a.id: a for a in consent.applications_of(session, sender)}
    if client is not None:
        query = select(Application).where(Application.client_id == client.id)
        apps.update((a.id, a) for a in session.exec(query))
    return [apps[k] for k in sorted(k for k in apps if k is not None)]


def status_items(session: Session, apps: list[Application]) -> list[dict[str, Any]]:
    """The applications as the status reply (and the web account's list) shows them.

    Three queries whatever the number of applications: their latest invoices and their
    code counts are read in bulk.
    """
    ids = [a.id for a in apps if a.id is not None]
    latest: dict[int, Invoice] = {}
    codes: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for invoice in session.exec(
            select(Invoice).where(col(Invoice.application_id).in_(chunk)).order_by(col(Invoice.id))
        ):
            latest[invoice.application_id] = invoice
        counted = session.exec(
            select(Barcode.application_id, func.count())
            .where(col(Barcode.application_id).in_(chunk))
            .group_by(col(Barcode.application_id))
        )
        codes.update((app_id, int(n)) for app_id, n in counted)
    items = []
    for app in apps:
        last = latest.get(app.id or 0)
        due = last.total - last.from_balance if last and last.status == "issued" else None
        items.append(
            {
                "number": app.number,
                "created_at": app.created_at,
                "invoice": last,
                "state_text": STATE_TEXT.get(app.state, app.state),
                "codes": codes.get(app.id or 0, 0),
                "due": due,
            }
        )
    return items


def status_reply(c: Context) -> str:
    """List the sender's applications; answered only to a registered or applying address.

    Anyone else gets the general instructions and no data (at most once a day).
    """
    session, rt, msg, client = c.session, c.rt, c.msg, c.client
    sender = address_of(msg)
    apps = _apps_for(session, client, sender) if sender else []
    if not apps:
        return instructions(c, blank_form_attachments(rt.product_types))
    items = status_items(session, apps)
    reply(
        c,
        Answer(
            to=sender,
            subject=reply_subject(msg.subject or "Статус заявок", msg.application_tag or ""),
            text=render_body(rt.env, "status", {"apps": items, "service": rt.settings.service}),
            kind="status",
        ),
    )
    return f"status of {len(items)}"


def instructions(c: Context, forms: tuple[FileAttachment, ...]) -> str:
    """One reply with instructions and blank forms, at most once per sender per day."""
    session, rt, msg = c.session, c.rt, c.msg
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
        c,
        Answer(
            to=sender,
            subject=reply_subject(msg.subject or "Регистрация штрихкодов", ""),
            text=render_body(rt.env, "instructions", {"service": rt.settings.service}),
            kind="instructions",
            attachments=forms,
        ),
    )
    return "instructions"


def oversized(c: Context) -> str:
    """Refuse a message over the size limit politely; its body was never read."""
    rt, inbound, msg = c.rt, c.inbound, c.msg
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
    subject = reply_subject(msg.subject, msg.application_tag or "")
    reply(c, Answer(to=reply_to(msg), subject=subject, text=body, kind="oversized"))
    return "refused: too large"
