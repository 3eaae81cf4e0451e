"""Bank statements mailed by the accountant: imported when authenticated, else only held.

The classifier already required a configured accountant address and our own server's
`Authentication-Results` with dkim/dmarc=pass. Here that result must also be *for the From
domain* (header.d / header.i / header.from), so a message signed by some other domain with
a forged From: is held like any unauthenticated one. Either way the accountant gets a reply
(in Russian) saying what became of each payment.
"""

from __future__ import annotations

import re

from sqlmodel import Session

from mailbot.matching import ImportSummary
from mailbot.message import Attachment, ParsedMessage
from mailbot.outbox import enqueue
from mailbot.payments import UNVERIFIED, import_statement
from mailbot.render import Mail, render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage

_RESULT = re.compile(r"(dkim|dmarc)\s*=\s*pass\b", re.I)  # at the start of a resinfo
_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"\bheader\.(d|i|from)\s*=\s*\"?([^\s;\"]+)", re.I)
VERDICT_TEXT = {
    "applied": "зачтён, счёт оплачен",
    "credited": "зачислен на баланс клиента",
    "held": "ждёт решения бухгалтера",
    "skipped": "не поступление на наш счёт, пропущен",
    "duplicate": "уже загружен раньше",
}


def sender_authenticated(msg: ParsedMessage, authserv_id: str) -> bool:
    """True when our server's Authentication-Results has dkim/dmarc=pass for the From domain."""
    results = msg.headers.get("authentication-results", "")
    head, _, rest = _COMMENT.sub(" ", results).partition(";")
    domain = msg.from_addr.rpartition("@")[2].lower()
    if not authserv_id or head.strip().lower() != authserv_id.lower() or not domain:
        return False
    for resinfo in rest.split(";"):
        if _RESULT.match(resinfo.strip()) is None:
            continue
        for _, value in _PROPERTY.findall(resinfo):
            signed = value.rpartition("@")[2].lower().rstrip(".")
            if signed == domain or domain.endswith("." + signed):
                return True
    return False


def statement_files(msg: ParsedMessage) -> list[Attachment]:
    return [a for a in msg.attachments if a.data.lstrip(b"\xef\xbb\xbf").startswith(b"1C")]


def statement(session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage) -> str:
    """Import the attached statements (authenticated mail only); reply with the summary."""
    if not sender_authenticated(msg, rt.settings.authserv_id):
        return unverified(session, rt, inbound, msg, why="signature not for the sender's domain")
    return _import(session, rt, inbound, msg, hold_reason="")


def unverified(
    session: Session,
    rt: Runtime,
    inbound: InboundMessage,
    msg: ParsedMessage,
    *,
    why: str = "",
) -> str:
    """Hold every payment of the attached statements for manual confirmation; tell the sender."""
    reason = f"{UNVERIFIED} ({why})" if why else UNVERIFIED
    return _import(session, rt, inbound, msg, hold_reason=reason)


def _import(
    session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage, *, hold_reason: str
) -> str:
    source = "mail" if not hold_reason else "mail-unverified"
    results: list[tuple[str, ImportSummary]] = []
    for att in statement_files(msg):
        summary = import_statement(
            session,
            rt,
            att.data,
            source=source,
            correlation_id=inbound.correlation_id,
            hold_reason=hold_reason,
        )
        results.append((att.filename, summary))
    body = render_body(
        rt.env,
        "statement_unverified" if hold_reason else "statement_report",
        {"files": results, "verdicts": VERDICT_TEXT, "service": rt.settings.service},
    )
    subject = "Выписка не загружена: письмо не подтверждено" if hold_reason else "Выписка загружена"
    mail = Mail(
        to=(msg.from_addr,),
        subject=f"{subject}: {msg.subject}" if msg.subject else subject,
        text=body,
        in_reply_to=msg.message_id,
        references=msg.references,
    )
    enqueue(
        session,
        mail,
        dedupe_key=f"inbound:{inbound.id}:statement",
        kind="statement_report",
        sender=rt.sender,
        now=rt.clock(),
        inbound_id=inbound.id,
        correlation_id=inbound.correlation_id,
        rate_limit=rt.settings.limits.replies_per_sender_per_hour,
    )
    counts = "; ".join(f"{name}: {s.error or s.line}" for name, s in results)
    return ("held, " if hold_reason else "imported, ") + counts
