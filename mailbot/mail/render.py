"""Jinja2 environment and the composition of outgoing mail (pure: data in, bytes out)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import jinja2

from mailbot.billing.money import format_rub

SECRET_MASK = "••••••••••••"  # noqa: S105 - the mask standing in for a password
MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1; SMTP servers refuse longer lines


@dataclass(frozen=True)
class FileAttachment:
    filename: str
    mime: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Mail:
    """A reply ready to be composed: who, what, and where in the thread."""

    to: tuple[str, ...]
    subject: str
    text: str
    attachments: tuple[FileAttachment, ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    extra_headers: Mapping[str, str] = field(default_factory=dict)


def make_env() -> jinja2.Environment:
    """The one template environment: templates/ shipped inside the package."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailbot.templates", ""),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - plain-text mail, never HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rub"] = format_rub
    env.filters["ddmmyyyy"] = lambda d: d.strftime("%d.%m.%Y")
    return env


def render_body(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render the text of mail/<name>.txt.j2 (subjects are built by `reply_subject`)."""
    return env.get_template(f"mail/{name}.txt.j2").render(context)


def one_line(value: str) -> str:
    """A header-safe single line: CR, LF and other controls removed (no header injection)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


MESSAGE_ID_BITS = 128


def new_message_id(domain: str) -> str:
    """A fresh Message-ID with 128 random bits, so nobody can guess ours.

    It names our mail in replies (References) and in delivery reports, which makes it a
    proof of having seen the mail: it must not be derivable from anything public (issue 16
    found sha256 of the dedupe key computed by a stranger). The outbox generates it once,
    when the row is inserted, and stores it with the row; every retry sends that id.
    """
    return f"<{secrets.token_hex(MESSAGE_ID_BITS // 8)}.mailbot@{domain}>"


REPLY_SUBJECT_KEEPS = 200  # characters of the original subject a reply repeats


def reply_subject(original: str, tag: str) -> str:
    """«Re: <original> [EAN-…]» with the tag once, whatever the applicant did to it.

    A subject longer than REPLY_SUBJECT_KEEPS is cut (with «…»): a reply never repeats a
    megabyte, and its subject fits the outbox column (998) on PostgreSQL.
    """
    base = one_line(original) or "Заявка на штрихкоды"
    base = re.sub(r"^((re|fwd?|ответ|пересл)\s*:\s*)+", "", base, flags=re.I)
    if len(base) > REPLY_SUBJECT_KEEPS:
        base = base[:REPLY_SUBJECT_KEEPS].rstrip() + "…"
    if tag and f"[{tag}]" not in base:
        base = f"{base} [{tag}]"
    return f"Re: {base}"


def compose(
    mail: Mail,
    *,
    message_id: str,
    from_addr: str,
    from_name: str,
    date: datetime,
) -> bytes:
    """Build the RFC 5322 bytes of `mail`; every header value is one line."""
    msg = EmailMessage()
    user, _, domain = from_addr.partition("@")
    msg["From"] = Address(one_line(from_name), user, domain)
    msg["To"] = ", ".join(one_line(t) for t in mail.to)
    msg["Subject"] = one_line(mail.subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = one_line(mail.in_reply_to)
    refs = _references(mail.references, mail.in_reply_to)
    if refs:
        msg["References"] = refs
    # RFC 3834: a reply to a message is auto-replied; a reminder, alert or newsletter that
    # answers nothing is auto-generated. Either keeps other robots from answering us.
    msg["Auto-Submitted"] = "auto-replied" if mail.in_reply_to else "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in mail.extra_headers.items():
        msg[name] = one_line(value)
    # 8bit keeps the text byte-for-byte searchable, so the secret mask can be swapped at
    # delivery without re-rendering (quoted-printable could split it across lines). SMTP
    # refuses lines over 998 octets, though: a text with one (a long value pasted by a
    # client) goes quoted-printable, which folds it; mail carrying a secret never has one.
    too_long = any(len(line.encode()) > MAX_LINE_OCTETS for line in mail.text.splitlines())
    msg.set_content(mail.text, cte="quoted-printable" if too_long else "8bit")
    for att in mail.attachments:
        maintype, _, subtype = att.mime.partition("/")
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)
    return bytes(msg)


def _references(refs: Sequence[str], in_reply_to: str) -> str:
    ids = [r for r in refs if r][-10:]
    if in_reply_to and in_reply_to not in ids:
        ids.append(in_reply_to)
    return " ".join(one_line(i) for i in ids)
