"""SmtpTransport against the loopback relay, which delivers into Dovecot before its 250."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from mailbot.smtp import SmtpSettings, SmtpTransport
from mailbot.transport import DeliveryError, Envelope
from tests.mailstack import MailStack, mailstack, mailstack_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.mail
SENDER = "info@example.test"
RCPT = "applicant@example.test"


def outgoing(to: str = RCPT) -> tuple[bytes, Envelope]:
    mid = f"<{uuid.uuid4().hex}@mailbot.test>"
    data = (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: reply\r\nMessage-ID: {mid}\r\n"
        "Auto-Submitted: auto-replied\r\n\r\nbody line\r\n.leading dot\r\n"
    ).encode()
    return data, Envelope(mail_from=SENDER, recipients=(to,), message_id=mid)


@pytest.fixture
def transport_for(mailstack: MailStack) -> Iterator[Callable[..., SmtpTransport]]:  # noqa: F811
    made: list[SmtpTransport] = []

    def make(stack: MailStack | None = None, **kw: Any) -> SmtpTransport:
        s = stack or mailstack
        base: dict[str, Any] = dict(host=s.host, port=s.smtp_port, security="none", timeout=10)
        transport = SmtpTransport(SmtpSettings(**{**base, **kw}))
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def test_delivered_message_is_in_the_recipients_inbox(
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    data, env = outgoing()
    transport_for().deliver(data, env)
    (got,) = mailstack.by_message_id(RCPT, env.message_id)
    assert got.endswith(data)  # delivery prepends Return-Path, Delivered-To, Received


def test_deliveries_in_a_batch_share_one_connection(
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    transport = transport_for()
    sent = [outgoing() for _ in range(3)]
    with capture_logs() as logs:
        for data, env in sent:
            transport.deliver(data, env)
    assert [e["event"] for e in logs].count("smtp_connected") == 1
    assert all(mailstack.by_message_id(RCPT, env.message_id) for _, env in sent)


def test_unknown_recipient_is_a_permanent_failure(
    transport_for: Callable[..., SmtpTransport],
) -> None:
    data, env = outgoing(to="nobody@example.test")
    with pytest.raises(DeliveryError) as err:
        transport_for().deliver(data, env)
    assert err.value.permanent


def test_one_refused_recipient_of_two_still_delivers_to_the_other(
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    data, env = outgoing()
    env = Envelope(env.mail_from, (RCPT, "nobody@example.test"), env.message_id)
    with capture_logs() as logs:
        transport_for().deliver(data, env)
    assert mailstack.by_message_id(RCPT, env.message_id)
    (event,) = [e for e in logs if e["event"] == "smtp_recipients_refused"]
    assert event["refused"] == {"nobody@example.test": 550}


def test_mailbox_server_down_behind_the_relay_is_a_transient_failure(
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    stack = mailstack_factory()
    stack.stop_dovecot()  # the relay now answers 451
    with pytest.raises(DeliveryError) as err:
        transport_for(stack).deliver(*outgoing())
    assert not err.value.permanent


def test_unreachable_server_is_a_transient_failure(
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    stack = mailstack_factory()
    stack.stop()
    transport = transport_for(stack)
    with pytest.raises(DeliveryError) as err:
        transport.deliver(*outgoing())
    assert not err.value.permanent
    with pytest.raises(DeliveryError) as err:
        transport.check()
    assert not err.value.permanent


def test_transport_reconnects_when_the_server_dropped_the_connection(
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    stack = mailstack_factory()
    transport = transport_for(stack, noop_after=0.0)
    transport.deliver(*outgoing())
    stack.stop_relay()
    stack.start_relay()
    data, env = outgoing()
    with capture_logs() as logs:
        transport.deliver(data, env)
    assert "smtp_reconnect" in [e["event"] for e in logs]
    assert stack.by_message_id(RCPT, env.message_id)


def test_check_logs_in_and_reports_the_server(
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    transport = transport_for(user=SENDER, password=mailstack.password)
    assert transport.check().startswith(f"{mailstack.host}:{mailstack.smtp_port}")


def test_check_with_a_wrong_password_fails_without_showing_it(
    transport_for: Callable[..., SmtpTransport],
) -> None:
    transport = transport_for(user=SENDER, password="wrong-password")
    with pytest.raises(DeliveryError) as err:
        transport.check()
    assert "wrong-password" not in str(err.value)
    assert "wrong-password" not in repr(transport)
