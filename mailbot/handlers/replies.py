"""The one reply to an inbound message: in its thread, once per message and topic, rate-limited."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailbot.mail.message import ParsedMessage
from mailbot.mail.outbox import enqueue
from mailbot.mail.render import FileAttachment, Mail, reply_subject
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, InboundMessage, OutboxMessage


def reply_to(msg: ParsedMessage) -> str:
    """Where our reply goes: the From address, never Reply-To.

    Reply-To is whatever the sender typed; obeying it would let anyone make us mail forms,
    invoices or ticket numbers to a third party (backscatter). The From address is the one
    the receiving MTA and DMARC vouch for; the application's own e-mail field gets the
    invoice and codes as well.
    """
    return msg.from_addr


def reply(
    session: Session,
    rt: Runtime,
    inbound: InboundMessage,
    msg: ParsedMessage,
    *,
    to: str | tuple[str, ...],
    subject: str,
    text: str,
    kind: str,
    topic: str = "",
    attachments: tuple[FileAttachment, ...] = (),
    now: datetime | None = None,
    dedupe_key: str = "",
    application_id: int | None = None,
) -> OutboxMessage:
    """Queue our answer to `msg` for `to`; the outbox row (the existing one on a re-run).

    Deduplicated on ``inbound:<id>:<topic>`` (`topic` defaults to `kind`) unless the caller
    names its own `dedupe_key`, so a message processed twice is answered once; the
    per-sender hourly limit applies (loop guard). `now` defaults to the runtime's clock.
    """
    mail = Mail(
        to=(to,) if isinstance(to, str) else to,
        subject=subject,
        text=text,
        attachments=attachments,
        in_reply_to=msg.message_id,
        references=msg.references,
    )
    return enqueue(
        session,
        mail,
        dedupe_key=dedupe_key or f"inbound:{inbound.id}:{topic or kind}",
        kind=kind,
        sender=rt.sender,
        now=rt.clock() if now is None else now,
        application_id=application_id,
        inbound_id=inbound.id,
        correlation_id=inbound.correlation_id,
        rate_limit=rt.settings.limits.replies_per_sender_per_hour,
    )


def reply_in_thread(
    session: Session,
    rt: Runtime,
    app: Application,
    inbound: InboundMessage,
    msg: ParsedMessage,
    *,
    to: tuple[str, ...],
    kind: str,
    body: str,
    attachments: tuple[FileAttachment, ...] = (),
    untitled: str = "Заявка на штрихкоды",
) -> None:
    """Queue the answer to `msg` about `app` (once per application, kind and message)."""
    reply(
        session,
        rt,
        inbound,
        msg,
        to=to,
        subject=reply_subject(msg.subject or app.subject or untitled, app.number),
        text=body,
        kind=kind,
        attachments=attachments,
        dedupe_key=f"application:{app.id}:{kind}:{inbound.id}",
        application_id=app.id,
    )
