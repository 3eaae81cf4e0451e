"""SmtpTransport against the loopback relay, which delivers into Dovecot before its 250."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtplib import SMTPAuthenticationError
from sqlmodel import Session, col, select
from structlog.testing import capture_logs

from mailbot.mail.outbox import Delivery, Outgoing, SendReport, enqueue, send_due
from mailbot.mail.render import Mail
from mailbot.mail.smtp import SmtpSettings, SmtpTransport
from mailbot.mail.transport import DeliveryError, Envelope
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Event, OutboxMessage
from tests.conftest import FakeClock
from tests.mailstack import MailStack, mailstack, mailstack_factory  # noqa: F401 - fixtures
from tests.mailstack_tls import TestCA

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
    # the server refused the login itself (535), not some other trouble on the way
    assert isinstance(err.value.__cause__, SMTPAuthenticationError)
    assert "535" in str(err.value) and "Authentication credentials invalid" in str(err.value)
    assert "wrong-password" not in str(err.value)
    assert "wrong-password" not in repr(transport)


# ---------------------------------------------------------------- outbox over real SMTP
@pytest.fixture
def relay_fault(mailstack: MailStack) -> Iterator[Callable[[str | None], None]]:  # noqa: F811
    """Set a relay fault for this test; cleared afterwards whatever happens."""
    yield mailstack.set_relay_fault
    mailstack.set_relay_fault(None)


def queue_reply(rt: Runtime) -> OutboxMessage:
    mail = Mail(to=(RCPT,), subject="Re: Заявка", text="Здравствуйте!\n")
    with transaction(rt.engine) as session:
        row = enqueue(
            session,
            mail,
            Outgoing(dedupe_key=f"test:{uuid.uuid4().hex}", kind="test"),
            sender=rt.sender,
            now=rt.clock(),
        )
        session.expunge(row)
    return row


@dataclass(frozen=True)
class Queued:
    """One reply in the outbox and the transport that sends it; what became of it."""

    rt: Runtime
    row: OutboxMessage
    transport: SmtpTransport

    def send(self) -> SendReport:
        rt = self.rt
        return send_due(rt.engine, Delivery(self.transport, rt.sender, rt.vault, rt.clock))

    def reload(self) -> OutboxMessage:
        with Session(self.rt.engine) as session:
            fresh = session.get(OutboxMessage, self.row.id)
            assert fresh is not None
            return fresh

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with Session(self.rt.engine) as session:
            found = session.exec(
                select(Event)
                .where(Event.entity == "outbox", Event.entity_id == self.row.id)
                .order_by(col(Event.id))
            )
            return [(e.event, dict(e.data or {})) for e in found]


@pytest.fixture
def queued(rt: Runtime, transport_for: Callable[..., SmtpTransport]) -> Queued:
    """A reply queued for RCPT, to be sent over the test's mail stack."""
    return Queued(rt, queue_reply(rt), transport_for())


def test_outbox_4xx_defers_with_backoff_then_delivers_exactly_once(
    queued: Queued,
    clock: FakeClock,
    mailstack: MailStack,  # noqa: F811
    relay_fault: Callable[[str | None], None],
) -> None:
    relay_fault("4xx")
    assert queued.send() == SendReport(retried=1)
    deferred = queued.reload()
    assert (deferred.status, deferred.attempts) == ("pending", 1)
    assert deferred.last_error.startswith("451")
    relay_fault(None)
    assert queued.send() == SendReport()  # not due before the backoff ends
    clock.advance(minutes=1)
    assert queued.send() == SendReport(sent=1)
    assert queued.reload().status == "sent"
    assert len(mailstack.by_message_id(RCPT, queued.row.message_id)) == 1


def test_outbox_5xx_fails_at_once_and_is_never_retried(
    queued: Queued,
    clock: FakeClock,
    mailstack: MailStack,  # noqa: F811
    relay_fault: Callable[[str | None], None],
) -> None:
    relay_fault("5xx")
    assert queued.send() == SendReport(failed=1)
    relay_fault(None)
    clock.advance(hours=2)
    assert queued.send() == SendReport()
    failed = queued.reload()
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error.startswith("554")
    assert mailstack.by_message_id(RCPT, queued.row.message_id) == []


def test_outbox_drop_after_data_is_retried_and_recorded_as_an_unknown_outcome(
    queued: Queued,
    clock: FakeClock,
    mailstack: MailStack,  # noqa: F811
    relay_fault: Callable[[str | None], None],
) -> None:
    relay_fault("drop-after-data")
    assert queued.send() == SendReport(retried=1)
    assert queued.events()[-1] == (
        "mail_deferred",
        {"error": queued.reload().last_error, "outcome_unknown": True},
    )
    relay_fault(None)
    clock.advance(minutes=1)
    assert queued.send() == SendReport(sent=1)
    assert queued.reload().status == "sent"
    # The documented unknown-outcome case: the first copy did arrive; both share one
    # Message-ID, so the receiving side can drop the second. Never a third.
    copies = mailstack.by_message_id(RCPT, queued.row.message_id)
    assert len(copies) == 2


def test_outbox_waits_out_a_server_that_is_down_and_then_delivers_once(
    rt: Runtime,
    clock: FakeClock,
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    stack = mailstack_factory()
    queued = Queued(rt, queue_reply(rt), transport_for(stack))
    stack.stop_relay()
    assert queued.send() == SendReport(retried=1)
    assert "unavailable" in queued.reload().last_error
    clock.advance(minutes=1)
    assert queued.send() == SendReport(retried=1)
    stack.start_relay()
    clock.advance(minutes=2)
    assert queued.send() == SendReport(sent=1)
    assert (queued.reload().status, queued.reload().attempts) == ("sent", 3)
    assert len(stack.by_message_id(RCPT, queued.row.message_id)) == 1


def test_outbox_gives_up_on_transient_failures_after_the_four_day_horizon(
    queued: Queued,
    clock: FakeClock,
    relay_fault: Callable[[str | None], None],
) -> None:
    relay_fault("4xx")
    assert queued.send() == SendReport(retried=1)
    clock.advance(days=3, hours=23)
    assert queued.send() == SendReport(retried=1)
    clock.advance(hours=1)
    assert queued.send() == SendReport(failed=1)
    assert queued.reload().status == "failed"


# ---------------------------------------------------------------- TLS
TLS_PORTS = {"ssl": "smtps_port", "starttls": "starttls_port"}


def tls_transport(
    transport_for: Callable[..., SmtpTransport],
    stack: MailStack,
    security: str,
    ca_file: Path | None,
    **kw: Any,
) -> SmtpTransport:
    """A transport to the relay's port for `security`, trusting `ca_file` (None: the system)."""
    port = getattr(stack, TLS_PORTS[security])
    return transport_for(stack, port=port, security=security, ca_file=ca_file, **kw)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_delivers_and_logs_in_with_the_server_verified_by_the_ca_file(
    security: str,
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    transport = tls_transport(
        transport_for,
        mailstack,
        security,
        mailstack.ca_file,
        user=SENDER,
        password=mailstack.password,
    )
    assert transport.check().startswith(
        f"{mailstack.host}:{getattr(mailstack, TLS_PORTS[security])}"
    )
    data, env = outgoing()
    with capture_logs() as logs:
        transport.deliver(data, env)
    (got,) = mailstack.by_message_id(RCPT, env.message_id)
    assert got.endswith(data)
    assert [e["event"] for e in logs] == ["mail_sent"]  # over the connection check() opened


def test_the_starttls_port_takes_no_mail_before_starttls(
    mailstack: MailStack,  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    """What makes the STARTTLS test above mean something: that port never speaks in clear."""
    transport = transport_for(port=mailstack.starttls_port, security="none")
    data, env = outgoing()
    with pytest.raises(DeliveryError) as err:
        transport.deliver(data, env)
    assert str(err.value).startswith("530") and "STARTTLS" in str(err.value)
    assert mailstack.by_message_id(RCPT, env.message_id) == []


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA file of a throw-away CA that signed none of the stack's certificates."""
    return TestCA.new("some other CA").write(tmp_path_factory.mktemp("other-ca") / "ca.pem")


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.parametrize("trusted", ["another CA", "the system store"])
def test_a_certificate_from_an_untrusted_ca_is_refused_and_nothing_is_sent(
    security: str,
    trusted: str,
    rt: Runtime,
    mailstack: MailStack,  # noqa: F811
    other_ca: Path,
    transport_for: Callable[..., SmtpTransport],
) -> None:
    ca_file = other_ca if trusted == "another CA" else None
    queued = Queued(rt, queue_reply(rt), tls_transport(transport_for, mailstack, security, ca_file))
    assert queued.send() == SendReport(retried=1)
    row = queued.reload()
    assert (row.status, row.sent_at) == ("pending", None)
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert "unable to get local issuer certificate" in row.last_error
    assert [e for e, _ in queued.events()] == ["mail_queued", "mail_deferred"]
    assert mailstack.by_message_id(RCPT, queued.row.message_id) == []
    with pytest.raises(DeliveryError) as err:
        queued.transport.check()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_a_certificate_for_another_host_is_refused_and_nothing_is_sent(
    security: str,
    rt: Runtime,
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    transport_for: Callable[..., SmtpTransport],
) -> None:
    stack = mailstack_factory(tls_names=("mail.elsewhere.test",))  # signed by the right CA
    queued = Queued(
        rt, queue_reply(rt), tls_transport(transport_for, stack, security, stack.ca_file)
    )
    assert queued.send() == SendReport(retried=1)
    row = queued.reload()
    assert (row.status, row.sent_at) == ("pending", None)
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert "not valid for '127.0.0.1'" in row.last_error
    assert stack.by_message_id(RCPT, queued.row.message_id) == []
