"""Settings of the IMAP intake and SMTP transport: secrets stay hidden, keys round-trip."""

from __future__ import annotations

import pytest

from mailbot.mail.intake.imap import ImapIntake, ImapSettings, make_key, parse_key
from mailbot.mail.smtp import SmtpSettings, SmtpTransport


def test_imap_settings_repr_hides_the_password() -> None:
    s = ImapSettings(host="imap.example.test", user="info@example.test", password="hunter2")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in repr(ImapIntake(s))
    assert "***" in repr(s)


def test_smtp_settings_repr_hides_the_password() -> None:
    s = SmtpSettings(host="smtp.example.test", user="info@example.test", password="hunter2")
    transport = SmtpTransport(s)
    try:
        assert "hunter2" not in repr(s)
        assert "hunter2" not in repr(transport)
    finally:
        transport.close()


def test_unknown_security_is_rejected() -> None:
    with pytest.raises(ValueError, match="security"):
        ImapSettings(host="h", user="u", password="p", security="tls")
    with pytest.raises(ValueError, match="security"):
        SmtpSettings(host="h", security="tls")


def test_imap_key_round_trips_mailbox_names_with_colons() -> None:
    key = make_key("Archive:2024/in", 1700000000, 42)
    assert key == "imap:Archive:2024/in:1700000000:42"
    assert parse_key(key) == ("Archive:2024/in", 1700000000, 42)


def test_a_key_of_another_intake_is_rejected() -> None:
    with pytest.raises(ValueError, match="not an IMAP intake key"):
        parse_key("maildir:1:2:3")
