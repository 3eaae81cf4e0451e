"""The one reply to an inbound message: in its thread, once per message and topic, rate-limited."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailbot.mail.message import ParsedMessage
from mailbot.mail.outbox import enqueue
from mailbot.mail.render import FileAttachment, Mail
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, OutboxMessage


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
        caps=rt.settings.limits,
    )
