"""Bank statements mailed by the accountant: imported when authenticated, else only held.

The classifier already required a configured accountant address and our own server's
`Authentication-Results` with dkim/dmarc=pass for the From domain (`classify.is_authenticated`);
the handler checks it again before importing, so no other route can apply a statement.
Either way the accountant gets a reply (in Russian) saying what became of each payment.
"""

from __future__ import annotations

from sqlmodel import Session

from mailbot.billing.matching import ImportSummary
from mailbot.billing.payments import UNVERIFIED, import_statement
from mailbot.handlers.replies import reply
from mailbot.mail.classify import is_authenticated
from mailbot.mail.message import Attachment, ParsedMessage
from mailbot.mail.render import render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage

VERDICT_TEXT = {
    "applied": "зачтён, счёт оплачен",
    "credited": "зачислен на баланс клиента",
    "held": "ждёт решения бухгалтера",
    "unreadable": "не прочитан, строки документа сохранены и ждут решения бухгалтера",
    "skipped": "не поступление на наш счёт, пропущен",
    "duplicate": "уже загружен раньше",
}


def statement_files(msg: ParsedMessage) -> list[Attachment]:
    return [a for a in msg.attachments if a.data.lstrip(b"\xef\xbb\xbf").startswith(b"1C")]


def statement(session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage) -> str:
    """Import the attached statements (authenticated mail only); reply with the summary."""
    if not is_authenticated(msg, rt.settings.authserv_id):  # defence in depth
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
    reply(
        session,
        rt,
        inbound,
        msg,
        to=msg.from_addr,
        subject=f"{subject}: {msg.subject}" if msg.subject else subject,
        text=body,
        kind="statement_report",
        topic="statement",
    )
    counts = "; ".join(f"{name}: {s.error or s.line}" for name, s in results)
    return ("held, " if hold_reason else "imported, ") + counts
