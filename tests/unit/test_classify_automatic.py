"""DOMAIN.md "Inbound mail" rule 1: machine-made mail is recognised, whatever its shape.

`automatic_mails` generates every kind (also used by the pipeline and daemon tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from mailbot.mail.classify import MessageKind, classify
from mailbot.mail.identity import sender_of
from mailbot.mail.message import ParsedMessage, parse_message

OUR = "info@example.test"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _base(sender: str, subject: str = "Re: Заявка") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, OUR, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@robot.test>"
    return msg


def _with_text(msg: EmailMessage, text: str = "Я в отпуске до понедельника.") -> EmailMessage:
    msg.set_content(text)
    return msg


def _plain(sender: str) -> EmailMessage:
    return _with_text(_base(sender))


def _report(sender: str, report_type: str, part_type: str, part: str) -> EmailMessage:
    raw = (
        f"From: {sender}\r\nTo: {OUR}\r\nSubject: Delivery Status Notification (Failure)\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@robot.test>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"--b1\r\nContent-Type: {part_type}\r\n\r\n{part}\r\n--b1--\r\n"
    )
    msg = BytesParser(policy=policy.default).parsebytes(raw.encode())
    assert isinstance(msg, EmailMessage)
    return msg


def _header(name: str, value: str, subject: str = "Re: Заявка") -> Callable[[str], EmailMessage]:
    def make(sender: str) -> EmailMessage:
        msg = _with_text(_base(sender, subject))
        msg[name] = value
        return msg

    return make


def _with_form(make: Callable[[str], EmailMessage]) -> Callable[[str], EmailMessage]:
    """The same robot, quoting our forms back as attachments (still never answered)."""

    def wrapped(sender: str) -> EmailMessage:
        msg = make(sender)
        msg.add_attachment(b"PK\x03\x04", maintype="application", subtype="octet-stream",
                           filename="Заявление.docx")  # fmt: skip
        return msg

    return wrapped


def _dsn(sender: str) -> EmailMessage:
    return _report(sender, "delivery-status", "message/delivery-status",
                   "Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@y.test\r\n"
                   "Action: failed\r\nStatus: 5.1.1\r\n")  # fmt: skip


def _mdn(sender: str) -> EmailMessage:
    return _report(sender, "disposition-notification", "message/disposition-notification",
                   "Final-Recipient: rfc822; x@y.test\r\nDisposition: manual-action/MDN-sent-"
                   "manually; displayed\r\n")  # fmt: skip


def _return_path_empty(sender: str) -> EmailMessage:
    msg = _with_text(_base(sender))
    msg["Return-Path"] = "<>"
    return msg


KINDS: dict[str, tuple[Callable[[str], EmailMessage], str | None]] = {
    # name: (builder taking the sender, a fixed sender or None for a unique address)
    "auto-replied": (_header("Auto-Submitted", "auto-replied"), None),
    "auto-generated": (_header("Auto-Submitted", "auto-generated"), None),
    "auto-notified": (_header("Auto-Submitted", "auto-notified; owner=x@y.test"), None),
    "precedence-bulk": (_header("Precedence", "bulk"), None),
    "precedence-junk": (_header("Precedence", "junk"), None),
    "precedence-list": (_header("Precedence", "list"), None),
    "precedence-auto_reply": (_header("Precedence", "auto_reply"), None),
    "list-id": (_header("List-Id", "Новости <news.example.org>"), None),
    "return-path-empty": (_return_path_empty, None),
    "mailer-daemon": (_plain, "Mail Delivery System <MAILER-DAEMON@mx.example.org>"),
    "postmaster": (_plain, "postmaster@example.org"),
    "dsn": (_dsn, None),
    "mdn": (_mdn, None),
    "x-autoreply": (_header("X-Autoreply", "yes"), None),
    "x-autorespond": (_header("X-Autorespond", "Vacation"), None),
    "exchange-oof": (
        _header("X-Auto-Response-Suppress", "All", "Automatic reply: Заявка на штрихкоды"),
        None,
    ),
    "exchange-oof-ru": (
        _header("X-Auto-Response-Suppress", "All", "Автоматический ответ: Заявка"),
        None,
    ),
    "auto-replied-with-forms": (_with_form(_header("Auto-Submitted", "auto-replied")), None),
    "our-own-address": (_plain, f"Штрихкод-Сервис <{OUR.upper()}>"),
}


def automatic_mails(n: int, *, our_address: str = OUR) -> list[bytes]:
    """n machine-made messages cycling over every kind, each (where possible) from a new address."""
    names = list(KINDS)
    out = []
    for i in range(n):
        build, fixed = KINDS[names[i % len(names)]]
        sender = fixed or f"robot{i}.{uuid.uuid4().hex[:6]}@example.test"
        if names[i % len(names)] == "our-own-address":
            sender = our_address
        out.append(bytes(build(sender)))
    return out


def _classify(raw: bytes) -> MessageKind:
    return classify(
        parse_message(raw),
        our_addresses=frozenset({OUR}),
        accountants=frozenset(),
        authserv_id="",
        in_thread=False,
        known_client=False,
    ).kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_automatic_mail_is_classified_automatic_or_bounce(kind: str) -> None:
    build, fixed = KINDS[kind]
    raw = bytes(build(OUR if kind == "our-own-address" else fixed or "robot@example.test"))
    assert _classify(raw) in (MessageKind.automatic, MessageKind.bounce)


def test_delivery_reports_and_daemon_mail_go_to_bounce_handling() -> None:
    for kind in ("dsn", "mdn", "mailer-daemon", "postmaster"):
        build, fixed = KINDS[kind]
        assert _classify(bytes(build(fixed or "robot@example.test"))) == MessageKind.bounce, kind


def test_a_person_writing_auto_submitted_no_is_answered() -> None:
    msg = _with_text(_base("person@example.test", "Вопрос"))
    msg["Auto-Submitted"] = "no"
    assert _classify(bytes(msg)) == MessageKind.unknown_sender


def test_an_outlook_mail_about_automatic_replies_is_not_taken_for_one() -> None:
    msg = _with_text(_base("person@example.test", "Как настроить автоответ в нашей почте?"))
    msg["X-Auto-Response-Suppress"] = "All"  # Outlook sets it on ordinary mail too
    assert _classify(bytes(msg)) == MessageKind.unknown_sender


def test_generator_covers_every_kind_with_distinct_senders() -> None:
    raws = automatic_mails(2 * len(KINDS))
    senders = [parse_message(r).from_addr for r in raws]
    assert len(set(senders)) >= 2 * (len(KINDS) - 3)
    assert all(_classify(r) in (MessageKind.automatic, MessageKind.bounce) for r in raws)


def _statement_mail(results: str, sender: str = "buh@client.example.test") -> ParsedMessage:
    raw = f"Authentication-Results: {results}\r\nFrom: {sender}\r\nSubject: s\r\n\r\nx\r\n"
    return parse_message(raw.encode())


def is_authenticated(msg: ParsedMessage, authserv_id: str) -> bool:
    return sender_of(msg, authserv_id).authenticated


def test_only_our_servers_pass_for_the_senders_domain_authenticates_a_statement() -> None:
    ok = "mx.example.test; dkim=pass header.d=client.example.test; spf=pass"
    assert is_authenticated(_statement_mail(ok), "mx.example.test")
    for forged in (
        "mx.example.test; dkim=fail (not dkim=pass) header.d=client.example.test",
        "mx.evil.test; dkim=pass header.d=client.example.test",
        "mx.example.test; dkim=pass header.d=evil.test",
        "mx.example.test; spf=pass smtp.mailfrom=client.example.test",
        "",
    ):
        assert not is_authenticated(_statement_mail(forged), "mx.example.test"), forged
    assert not is_authenticated(_statement_mail(ok), "")
