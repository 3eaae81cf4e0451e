"""A message we refused to read (headers over a limit, a parse out of time or memory).

It is quarantined with the reason, so an operator sees it in `mailbot quarantine list` and
the quarantine folder; the sender is told which limit it hit when an address can be read
safely from the raw bytes and the mail is not a robot's (no reply loops, no backscatter).
"""

from __future__ import annotations

import structlog
from sqlmodel import Session

from mailbot.handlers.context import Context
from mailbot.handlers.replies import Answer, reply
from mailbot.mail.measure import raw_facts
from mailbot.mail.reading import Unreadable, unread_message
from mailbot.mail.render import render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, InboundStatus

log = structlog.get_logger()
SUBJECT = "Ваше письмо не удалось прочитать"


def refuse(
    session: Session, rt: Runtime, inbound: InboundMessage, raw: bytes, why: Unreadable
) -> str:
    """Quarantine `inbound` with the reason; reply where the sender can be answered."""
    facts = raw_facts(raw)
    inbound.kind, inbound.reason = "unreadable", why.reason
    inbound.status, inbound.last_error = InboundStatus.quarantined, why.reason
    log.warning("message_unreadable", reason=why.reason, sender=facts.from_addr)
    if not facts.from_addr or facts.automatic or facts.from_addr in rt.our_addresses:
        return f"quarantined: {why.reason}"
    msg = unread_message(facts)
    text = render_body(
        rt.env,
        "unreadable",
        {"problem": why.problem, **why.params, "service": rt.settings.service},
    )
    c = Context(session, rt, inbound, msg, raw, app=None, client=None)
    reply(c, Answer(to=facts.from_addr, subject=SUBJECT, text=text, kind="unreadable"))
    return f"quarantined and answered: {why.reason}"
