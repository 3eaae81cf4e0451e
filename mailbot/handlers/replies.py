"""The one reply to an inbound message: in its thread, once per message and topic, rate-limited."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailbot.handlers.context import Context
from mailbot.mail.identity import address_of
from mailbot.mail.message import ParsedMessage
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import FileAttachment, Mail, reply_subject
from mailbot.storage.models import Application, OutboxMessage


def reply_to(msg: ParsedMessage) -> str:
    """Where our reply goes: the From address, never Reply-To.

    Reply-To is whatever the sender typed; obeying it would let anyone make us mail forms,
    invoices or ticket numbers to a third party (backscatter). The From address is the one
    the receiving MTA and DMARC vouch for; the application's own e-mail field gets the
    invoice and codes as well.
    """
    return address_of(msg)


@dataclass(frozen=True)
class Answer:
    """What we say back: to whom, in which words, and what makes it once-only.

    Deduplicated on ``inbound:<id>:<topic>`` (`topic` defaults to `kind`) unless
    `dedupe_key` names its own key, so a message processed twice is answered once.
    """

    to: str | tuple[str, ...]
    subject: str
    text: str
    kind: str
    topic: str = ""
    attachments: tuple[FileAttachment, ...] = ()
    dedupe_key: str = ""
    application_id: int | None = None


def reply(c: Context, answer: Answer) -> OutboxMessage:
    """Queue `answer` to the message of `c`; the outbox row (the existing one on a re-run).

    The per-sender hourly limit applies (loop guard).
    """
    msg, inbound = c.msg, c.inbound
    mail = Mail(
        to=(answer.to,) if isinstance(answer.to, str) else answer.to,
        subject=answer.subject,
        text=answer.text,
        attachments=answer.attachments,
        in_reply_to=msg.message_id,
        references=msg.references,
    )
    outgoing = Outgoing(
        dedupe_key=answer.dedupe_key or f"inbound:{inbound.id}:{answer.topic or answer.kind}",
        kind=answer.kind,
        application_id=answer.application_id,
        inbound_id=inbound.id,
        correlation_id=inbound.correlation_id,
        rate_limit=c.rt.settings.limits.replies_per_sender_per_hour,
        caps=c.rt.settings.limits,
    )
    return enqueue(c.session, mail, outgoing, sender=c.rt.sender, now=c.rt.clock())


def reply_in_thread(
    c: Context, app: Application, answer: Answer, *, untitled: str = "Заявка на штрихкоды"
) -> OutboxMessage:
    """Queue `answer` about `app`: its subject tag, once per application, kind and message."""
    subject = reply_subject(c.msg.subject or app.subject or untitled, app.number)
    key = f"application:{app.id}:{answer.kind}:{c.inbound.id}"
    return reply(
        c, dataclasses.replace(answer, subject=subject, dedupe_key=key, application_id=app.id)
    )
