"""What an inbound message is, decided in the order DOMAIN.md writes down (pure).

The caller looks up the two database facts (is this a reply in one of our threads,
is the sender a known client) and passes them in; everything else is in the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from mailbot.message import ParsedMessage

FORM_EXTS = frozenset({".docx", ".xlsx", ".xls", ".ods", ".csv"})
# Files applicants send instead of our forms: answered with "send .docx/.xlsx".
WRONG_EXTS = frozenset(
    {
        ".doc",
        ".docm",
        ".xlsm",
        ".pdf",
        ".rtf",
        ".odt",
        ".jpg",
        ".jpeg",
        ".png",
        ".heic",
        ".tif",
        ".tiff",
        ".zip",
        ".rar",
        ".7z",
        ".txt",
        ".dat",
    }
)
ROBOT_SENDERS = re.compile(r"^(mailer-daemon|postmaster|no-?reply|bounce[s]?)(\+.*)?@", re.I)
STATUS_WORDS = re.compile(r"статус|состояни|где (мои|наш)|когда (будут|придут)", re.I)


class MessageKind(StrEnum):
    automatic = "automatic"  # auto-replies, lists, robots: recorded, never answered
    bounce = "bounce"  # a DSN; marks our outgoing mail bounced
    statement = "statement"  # bank statement, authenticated
    statement_unverified = "statement_unverified"  # held for a person, never applied
    thread_reply = "thread_reply"
    application = "application"
    status_request = "status_request"
    client_mail = "client_mail"  # support ticket
    unknown_sender = "unknown_sender"


@dataclass(frozen=True)
class Classification:
    kind: MessageKind
    reason: str  # which rule matched, for the log and `mailbot status`


def extension(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def automatic_reason(msg: ParsedMessage, our_addresses: frozenset[str]) -> str | None:
    """Why the message is machine-made (RFC 3834 and the usual vendor headers), or None."""
    h = msg.headers
    auto = h.get("auto-submitted", "").lower()
    checks = (
        (auto not in ("", "no"), f"Auto-Submitted: {auto}"),
        (h.get("precedence", "").lower() in ("bulk", "junk", "list"), "Precedence"),
        ("list-id" in h, "List-Id"),
        (msg.return_path is not None and msg.return_path.strip() == "<>", "empty return path"),
        (bool(ROBOT_SENDERS.match(msg.from_addr)), "robot sender"),
        (msg.content_type == "multipart/report", "multipart/report"),
        ("x-autoreply" in h or "x-autorespond" in h, "X-Autoreply"),
        (
            "oof" in h.get("x-auto-response-suppress", "").lower()
            and msg.subject.lower().startswith(("automatic reply", "автоответ", "out of office")),
            "Exchange auto-reply",
        ),
        (msg.from_addr in our_addresses, "our own address"),
        (not msg.from_addr, "no sender address"),
    )
    return next((why for hit, why in checks if hit), None)


def is_authenticated(msg: ParsedMessage, authserv_id: str) -> bool:
    """True when OUR receiving server recorded dkim=pass or dmarc=pass for this message."""
    if not authserv_id:
        return False
    results = msg.headers.get("authentication-results", "")
    server = results.split(";", 1)[0].strip().lower()
    if server != authserv_id.lower():
        return False
    return bool(re.search(r"\b(dkim|dmarc)=pass\b", results, re.I))


def classify(
    msg: ParsedMessage,
    *,
    our_addresses: frozenset[str],
    accountants: frozenset[str],
    authserv_id: str,
    in_thread: bool,
    known_client: bool,
) -> Classification:
    """Classify in DOMAIN.md order: automatic, statement, thread, application, the rest."""
    why = automatic_reason(msg, our_addresses)
    if why is not None:
        if msg.content_type == "multipart/report" or why == "robot sender":
            return Classification(MessageKind.bounce, why)
        return Classification(MessageKind.automatic, why)
    statements = [a for a in msg.attachments if a.data.lstrip(b"\xef\xbb\xbf").startswith(b"1C")]
    if statements and msg.from_addr in accountants:
        if is_authenticated(msg, authserv_id):
            return Classification(MessageKind.statement, "accountant, authenticated")
        return Classification(MessageKind.statement_unverified, "accountant, not authenticated")
    exts = {extension(a.filename) for a in msg.attachments}
    if in_thread:
        return Classification(MessageKind.thread_reply, "subject tag or references")
    if exts & (FORM_EXTS | WRONG_EXTS):
        return Classification(MessageKind.application, "attachments: " + ", ".join(sorted(exts)))
    if known_client:
        if STATUS_WORDS.search(msg.subject) or STATUS_WORDS.search(msg.text[:2000]):
            return Classification(MessageKind.status_request, "status words")
        return Classification(MessageKind.client_mail, "known client")
    return Classification(MessageKind.unknown_sender, "no forms attached")
