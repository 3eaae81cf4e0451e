"""Bank statements mailed by the accountant: imported when authenticated, else only held.

Only a From mailbox listed in `[payments] statement_senders` (mail.identity's one rule), with
our own server's Authentication-Results saying dmarc=pass or aligned dkim=pass for exactly
that domain (`classify.statement_authenticated`), imports. The classifier decides it and the
handler checks both again before importing, so no other route can apply a statement.
Either way the listed address (never a Reply-To) gets a reply in Russian saying what became
of each payment.
"""

from __future__ import annotations

from mailbot.billing.matching import ImportSummary
from mailbot.billing.payments import UNVERIFIED, import_statement
from mailbot.handlers.context import Context
from mailbot.handlers.replies import Answer, reply
from mailbot.invariant import InvariantError
from mailbot.mail.classify import statement_authenticated
from mailbot.mail.identity import sender_of
from mailbot.mail.message import Attachment, ParsedMessage
from mailbot.mail.render import render_body

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


def statement(c: Context) -> str:
    """Import the attached statements (authenticated mail only); reply with the summary."""
    if not statement_authenticated(c.msg, c.rt.settings.authserv_id):  # defence in depth
        return unverified(c, why="signature not for the sender's domain")
    return _import(c, hold_reason="")


def unverified(c: Context, *, why: str = "") -> str:
    """Hold every payment of the attached statements for manual confirmation; tell the sender."""
    reason = f"{UNVERIFIED} ({why})" if why else UNVERIFIED
    return _import(c, hold_reason=reason)


def _import(c: Context, *, hold_reason: str) -> str:
    session, rt, inbound, msg = c.session, c.rt, c.inbound, c.msg
    to = sender_of(msg, rt.settings.authserv_id).address
    if to not in rt.settings.accountants:
        raise InvariantError("only statement_senders' mail is classified as a statement")
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
        c,
        Answer(
            to=to,
            subject=f"{subject}: {msg.subject}" if msg.subject else subject,
            text=body,
            kind="statement_report",
            topic="statement",
        ),
    )
    counts = "; ".join(f"{name}: {s.error or s.line}" for name, s in results)
    return ("held, " if hold_reason else "imported, ") + counts
