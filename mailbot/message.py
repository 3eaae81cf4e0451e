"""RFC 5322 bytes → `ParsedMessage`: the few facts the rest of mailbot looks at."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

MAX_PARTS = 500
MAX_DEPTH = 20
TAG_RE = re.compile(r"\[(EAN-\d{4}-\d{6})\]")
TICKET_RE = re.compile(r"\[Обращение №\s*(\d+)\]")


@dataclass(frozen=True)
class Attachment:
    filename: str  # as sent; never used as a path
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str
    from_addr: str  # lower-cased address only
    from_name: str
    reply_to: str
    subject: str
    in_reply_to: str
    references: tuple[str, ...]
    headers: dict[str, str]  # selected headers, lower-case names, for classification
    content_type: str
    text: str
    attachments: tuple[Attachment, ...]
    return_path: str | None = None
    defects: tuple[str, ...] = field(default_factory=tuple)

    @property
    def application_tag(self) -> str | None:
        m = TAG_RE.search(self.subject)
        return m.group(1) if m else None

    @property
    def thread_ids(self) -> tuple[str, ...]:
        return tuple(x for x in (self.in_reply_to, *self.references) if x)


_KEPT = (
    "auto-submitted",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "x-mailer-daemon",
    "authentication-results",
)


def _clean(value: object) -> str:
    """A header value as one line: folding and any CR/LF removed."""
    return re.sub(r"[\r\n]+\s*", " ", str(value or "")).strip()


def _ids(value: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", value))


def _header(msg: Message, name: str) -> str:
    try:
        return _clean(msg.get(name, ""))
    except (ValueError, TypeError, IndexError):  # malformed header: keep the raw text
        raw = msg.get_all(name, failobj=[""])
        return _clean(raw[0] if raw else "")


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset: decode leniently
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _walk(msg: EmailMessage, out: list[Attachment], texts: list[str], depth: int) -> None:
    if depth > MAX_DEPTH or len(out) > MAX_PARTS:
        return
    for part in msg.walk():
        if len(out) > MAX_PARTS:
            return
        ctype = part.get_content_type()
        if part.is_multipart():
            continue
        if ctype == "message/rfc822":
            inner = part.get_payload()
            for sub in inner if isinstance(inner, list) else [inner]:
                if isinstance(sub, EmailMessage):
                    _walk(sub, out, texts, depth + 1)
            continue
        try:
            filename = part.get_filename()
        except (ValueError, TypeError, IndexError):
            filename = "attachment"
        disposition = part.get_content_disposition()
        if filename or disposition == "attachment":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                out.append(Attachment(_clean(filename or "attachment"), ctype, data))
        elif ctype == "text/plain" and not texts:
            texts.append(_text_of(part))


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw bytes; never raises on malformed mail (defects are listed)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)  # noqa: S101 - policy.default guarantees it
    name, addr = parseaddr(_header(msg, "From"))
    reply_name, reply_addr = parseaddr(_header(msg, "Reply-To"))
    del reply_name
    attachments: list[Attachment] = []
    texts: list[str] = []
    _walk(msg, attachments, texts, 0)
    return_path = msg.get("Return-Path")
    return ParsedMessage(
        message_id=(_ids(_header(msg, "Message-ID")) or ("",))[0],
        from_addr=addr.lower(),
        from_name=_clean(name),
        reply_to=reply_addr.lower(),
        subject=_header(msg, "Subject"),
        in_reply_to=(_ids(_header(msg, "In-Reply-To")) or ("",))[0],
        references=_ids(_header(msg, "References")),
        headers={k: _header(msg, k) for k in _KEPT if k in msg},
        content_type=msg.get_content_type(),
        text=(texts[0] if texts else "")[:20_000],
        attachments=tuple(attachments),
        return_path=None if return_path is None else _clean(return_path),
        defects=tuple(type(d).__name__ for d in msg.defects),
    )


def recipients_of(raw_to: str) -> list[str]:
    return [a.lower() for _, a in getaddresses([raw_to]) if a]
