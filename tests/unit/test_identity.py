"""The one identity rule: the single From mailbox as RFC 5322 parses it, and who vouches for it."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path

import pytest

from mailbot.config import parse_settings
from mailbot.mail.dsn import read_report
from mailbot.mail.identity import Sender, from_mailbox, sender_of
from mailbot.mail.message import parse_message
from tests.conftest import REPO

Table = dict[str, object]

OURS = "mx.us.test"
PASS = f"{OURS}; dkim=pass header.d=client.test; dmarc=pass header.from=client.test"


def _b64(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _raw(*froms: str, top: str = "") -> bytes:
    head = "".join(f"From: {f}\r\n" for f in froms)
    return f"{top}{head}To: info@us.test\r\nSubject: s\r\n\r\nbody\r\n".encode()


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("boss@client.test", "boss@client.test"),
        ("Boss <Boss@Client.TEST>", "boss@client.test"),
        ('"Boss, Inc." <boss@client.test>', "boss@client.test"),
        ("Ivanov I.I. <ivanov@client.test>", "ivanov@client.test"),  # obs-phrase: legal
        ("boss@client.test (Boss Himself)", "boss@client.test"),
        ("Boss (the <evil@evil.test> one) <boss@client.test>", "boss@client.test"),
        ('"boss@client.test" <attacker@evil.test>', "attacker@evil.test"),
        (f"{_b64('boss@client.test')} <attacker@evil.test>", "attacker@evil.test"),
        (f"{_b64('Иван Петров')} <ivan@client.test>", "ivan@client.test"),
        ("Иван <ivan@пример.рф>", "ivan@пример.рф"),  # IDN (SMTPUTF8)
        ("ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_the_sender_is_the_one_mailbox_rfc5322_reads(value: str, address: str) -> None:
    assert from_mailbox((value,))[1] == address
    assert parse_message(_raw(value)).from_addr == address


@pytest.mark.parametrize(
    "value",
    [
        "attacker@evil.example (x <boss@client.test>",  # issue 16 attack 2: unclosed comment
        "boss@client.test <attacker@evil.test>",  # which is it? neither
        "a@client.test, b@client.test",  # several mailboxes
        "staff: boss@client.test;",  # a group, even of one
        "undisclosed-recipients:;",
        "",
        "not an address",
        "x@",
        "@client.test",
        "<boss@client.test",
        f"{_b64('boss@client.test' + chr(13) + chr(10))} <attacker@evil.test>",
        "(" * 3000 + "boss@client.test",  # too long to be a From
    ],
)
def test_anything_but_one_clean_mailbox_is_no_sender(value: str) -> None:
    assert from_mailbox((value,)) == ("", "")
    assert sender_of(parse_message(_raw(value)), OURS) == Sender("", authenticated=False)


def test_several_from_fields_are_no_sender_even_when_they_agree() -> None:
    for froms in (("boss@client.test", "attacker@evil.test"), ("boss@client.test",) * 2):
        msg = parse_message(_raw(*froms, top=f"Authentication-Results: {PASS}\r\n"))
        assert msg.from_headers == froms
        assert sender_of(msg, OURS) == Sender("", authenticated=False)
    assert from_mailbox(()) == ("", "")


def test_authenticated_only_by_our_field_on_top_and_for_the_from_domain() -> None:
    top = f"Return-Path: <b@client.test>\r\nAuthentication-Results: {PASS}\r\n"
    assert sender_of(parse_message(_raw("boss@client.test", top=top)), OURS) == Sender(
        "boss@client.test", authenticated=True
    )
    sub = parse_message(_raw("boss@mail.client.test", top=top))
    assert sender_of(sub, OURS).authenticated  # dkim d=client.test aligns with a child
    assert not sender_of(parse_message(_raw("x@evil.test", top=top)), OURS).authenticated
    below = _raw("boss@client.test").replace(
        b"Subject: s\r\n", f"Subject: s\r\nAuthentication-Results: {PASS}\r\n".encode()
    )
    assert not sender_of(parse_message(below), OURS).authenticated
    assert not sender_of(parse_message(_raw("boss@client.test", top=top)), "").authenticated


def _dsn(action: str, rcpt: str, mid: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.client.test\r\nTo: info@us.test\r\nSubject: Undelivered\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {mid}\r\n\r\n--b--\r\n"
    ).encode()


def test_a_delivery_report_names_our_ids_and_only_failed_recipients() -> None:
    mid = "<0123abcd.mailbot@us.test>"
    report = read_report(_dsn("failed", "Client@Client.test", mid))
    assert report.message_ids == {mid} and report.failed == {"client@client.test"}
    assert read_report(_dsn("delayed", "client@client.test", mid)).failed == frozenset()
    prose = b"From: MAILER-DAEMON@x\r\n\r\n<client@client.test>: no such user\r\n" + mid.encode()
    assert read_report(prose).failed == {"client@client.test"}
    assert read_report(b"From: x\r\n\r\n<other@id.test>").message_ids == frozenset()


def test_config_reads_mail_authserv_id_and_statement_senders_and_the_old_keys() -> None:

    def settings(
        mail: dict[str, object], payments: dict[str, object]
    ) -> tuple[str, tuple[str, ...]]:
        data = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
        data["mail"], data["payments"] = mail, payments
        s = parse_settings(data, base_dir=Path("/srv/mailbot"), env={})
        return s.authserv_id, s.accountants

    assert settings({"authserv_id": ""}, {"statement_senders": []}) == ("", ())
    new = settings({"authserv_id": "MX.Us.test"}, {"statement_senders": ["Buh@Bank.test"]})
    assert new == ("mx.us.test", ("buh@bank.test",))
    old = settings({}, {"accountants": ["buh@bank.test"], "authserv_id": "mx.us.test"})
    assert old == ("mx.us.test", ("buh@bank.test",))
    # the shipped file's empty new keys do not hide old ones set by hand
    both = settings(
        {"authserv_id": ""},
        {"statement_senders": [], "accountants": ["b@bank.test"], "authserv_id": "mx.us.test"},
    )
    assert both == ("mx.us.test", ("b@bank.test",))
