"""ImapIntake against a real Dovecot on 127.0.0.1 (tests/mailstack.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from imapclient import IMAPClient
from structlog.testing import capture_logs

from mailbot.mail.intake.base import OversizedMessage, RawMessage
from mailbot.mail.intake.imap import (
    ImapIntake,
    ImapRefused,
    ImapSettings,
    ImapUnavailable,
    parse_key,
)
from tests.mailstack import MailStack, mailstack, mailstack_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.mail
USER = "info@example.test"


def make_message(n: int, body: bytes = b"hello\r\n") -> bytes:
    mid = f"<{n}.{uuid.uuid4().hex}@example.test>"
    return (
        f"From: a@example.test\r\nTo: {USER}\r\nSubject: message {n}\r\nMessage-ID: {mid}\r\n\r\n"
    ).encode() + body


def settings_for(stack: MailStack, mailbox: str = "INBOX", **kw: Any) -> ImapSettings:
    base: dict[str, Any] = dict(
        host=stack.host,
        port=stack.imap_port,
        security="none",
        user=USER,
        password=stack.password,
        mailbox=mailbox,
        processed_folder=f"{mailbox}-processed",
        quarantine_folder=f"{mailbox}-quarantine",
        poll_seconds=0.1,
        backoff_initial=0.05,
    )
    return ImapSettings(**{**base, **kw})


@pytest.fixture
def box(mailstack: MailStack) -> Iterator[str]:  # noqa: F811 - the fixture
    """Return a fresh mailbox of USER for one test."""
    name = f"t{uuid.uuid4().hex[:12]}"
    with mailstack.imap(USER) as c:
        c.create_folder(name)
    yield name


@pytest.fixture
def intake_for(mailstack: MailStack) -> Iterator[Callable[..., ImapIntake]]:  # noqa: F811
    made: list[ImapIntake] = []

    def make(mailbox: str, stack: MailStack | None = None, **kw: Any) -> ImapIntake:
        intake = ImapIntake(settings_for(stack or mailstack, mailbox, **kw))
        made.append(intake)
        return intake

    yield make
    for intake in made:
        intake.close()


@dataclass(frozen=True)
class Fetched:
    raw: bytes
    intake: ImapIntake
    msg: RawMessage | OversizedMessage


@pytest.fixture
def fetched(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
) -> Fetched:
    """One message in a fresh mailbox, fetched and not acknowledged yet."""
    raw = make_message(1)
    mailstack.append(USER, raw, box)
    intake = intake_for(box)
    (msg,) = intake.fetch_new()
    return Fetched(raw, intake, msg)


@pytest.fixture
def three(mailstack: MailStack, box: str) -> list[bytes]:  # noqa: F811
    """Three messages appended to the fresh mailbox; their bytes, oldest first."""
    raws = [make_message(i) for i in range(3)]
    for raw in raws:
        mailstack.append(USER, raw, box)
    return raws


def test_fetch_new_yields_every_message_oldest_first_with_exact_bytes(
    box: str,
    three: list[bytes],
    intake_for: Callable[..., ImapIntake],
) -> None:
    got = list(intake_for(box).fetch_new())
    assert [m.data for m in got if isinstance(m, RawMessage)] == three
    keys = [parse_key(m.key) for m in got]
    assert [k[0] for k in keys] == [box] * 3
    assert len({k[1] for k in keys}) == 1
    assert [k[2] for k in keys] == sorted(k[2] for k in keys)
    assert all(m.key == f"imap:{box}:{keys[0][1]}:{k[2]}" for m, k in zip(got, keys, strict=True))
    assert [m.size for m in got] == [len(r) for r in three]


def test_acknowledged_messages_move_to_processed_folder_and_are_not_fetched_again(
    mailstack: MailStack,  # noqa: F811
    box: str,
    three: list[bytes],
    intake_for: Callable[..., ImapIntake],
) -> None:
    intake = intake_for(box)
    for msg in intake.fetch_new():
        intake.acknowledge(msg.key)
    assert list(intake.fetch_new()) == []
    assert mailstack.messages(USER, f"{box}-processed") == three
    assert mailstack.messages(USER, box) == []


def test_acknowledge_twice_or_after_the_message_is_gone_is_a_no_op(
    mailstack: MailStack,  # noqa: F811
    box: str,
    fetched: Fetched,
) -> None:
    fetched.intake.acknowledge(fetched.msg.key)
    fetched.intake.acknowledge(fetched.msg.key)
    assert len(mailstack.messages(USER, f"{box}-processed")) == 1


def test_quarantine_moves_the_message_to_the_quarantine_folder_and_logs_the_reason(
    mailstack: MailStack,  # noqa: F811
    box: str,
    fetched: Fetched,
) -> None:
    with capture_logs() as logs:
        fetched.intake.acknowledge(fetched.msg.key, quarantine=True, reason="parser crashed")
    assert mailstack.messages(USER, f"{box}-quarantine") == [fetched.raw]
    assert mailstack.messages(USER, box) == []
    (event,) = [e for e in logs if e["event"] == "imap_message_quarantined"]
    assert event["reason"] == "parser crashed"
    assert event["key"] == fetched.msg.key


def test_oversized_message_yields_its_headers_without_the_body_being_downloaded(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = make_message(1)
    big = make_message(2, body=b"x" * 5000 + b"\r\n")
    mailstack.append(USER, small, box)
    mailstack.append(USER, big, box)
    requests: list[tuple[list[int], list[bytes]]] = []
    real_fetch = IMAPClient.fetch

    def spy(self: Any, messages: Any, data: Any, modifiers: Any = None) -> Any:
        requests.append((list(messages), list(data)))
        return real_fetch(self, messages, data, modifiers)

    monkeypatch.setattr(IMAPClient, "fetch", spy)
    got = list(intake_for(box, max_bytes=1000).fetch_new())
    assert isinstance(got[0], RawMessage)
    assert got[0].data == small
    assert isinstance(got[1], OversizedMessage)
    assert got[1].size == len(big)
    assert got[1].headers == big.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    big_uid = parse_key(got[1].key)[2]
    body_requests = [uids for uids, items in requests if b"BODY.PEEK[]" in items]
    assert body_requests
    assert all(big_uid not in uids for uids in body_requests)


def test_acknowledge_falls_back_to_copy_and_expunge_without_move(
    mailstack: MailStack,  # noqa: F811
    box: str,
    fetched: Fetched,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = IMAPClient.has_capability
    monkeypatch.setattr(IMAPClient, "has_capability", lambda s, cap: cap != "MOVE" and real(s, cap))
    fetched.intake.acknowledge(fetched.msg.key)  # MOVE is looked up when acknowledging
    assert mailstack.messages(USER, f"{box}-processed") == [fetched.raw]
    assert mailstack.messages(USER, box) == []


def test_recreated_mailbox_changes_the_keys_and_a_stale_acknowledge_is_a_no_op(
    mailstack: MailStack,  # noqa: F811
    box: str,
    fetched: Fetched,
) -> None:
    raw, intake, before = fetched.raw, fetched.intake, fetched.msg
    with mailstack.imap(USER) as c:  # new UIDVALIDITY, same message back
        c.delete_folder(box)
        c.create_folder(box)
        c.append(box, raw)
    with capture_logs() as logs:
        intake.acknowledge(before.key)
    assert "imap_ack_uidvalidity_changed" in [e["event"] for e in logs]
    assert mailstack.messages(USER, box) == [raw]
    (after,) = intake.fetch_new()
    assert parse_key(after.key)[1] != parse_key(before.key)[1]
    assert isinstance(after, RawMessage)
    assert after.data == raw


def _idle_started_event(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    started = threading.Event()
    real_idle = IMAPClient.idle

    def idle(self: Any) -> Any:
        result = real_idle(self)
        started.set()
        return result

    monkeypatch.setattr(IMAPClient, "idle", idle)
    return started


def test_wait_returns_true_when_mail_arrives_during_idle(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    intake = intake_for(box)
    assert list(intake.fetch_new()) == []
    started = _idle_started_event(monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        woke = pool.submit(intake.wait, 20.0)
        assert started.wait(10), "IDLE never started"
        t0 = time.monotonic()
        mailstack.append(USER, make_message(1), box)
        assert woke.result(timeout=10) is True
    assert time.monotonic() - t0 < 10  # Dovecot notifies ~0.5 s late; far below the timeout


def test_wait_returns_false_at_the_timeout_when_nothing_arrives(
    box: str, intake_for: Callable[..., ImapIntake]
) -> None:
    intake = intake_for(box)
    t0 = time.monotonic()
    assert intake.wait(0.3) is False
    assert time.monotonic() - t0 >= 0.3


def test_wait_returns_at_once_for_mail_that_came_before_it_started(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
) -> None:
    intake = intake_for(box)
    assert list(intake.fetch_new()) == []
    mailstack.append(USER, make_message(1), box)
    assert intake.wait(30.0) is True
    list(intake.fetch_new())
    assert intake.wait(0.2) is False  # fetched, not acknowledged: not new any more


def test_wait_polls_with_noop_when_the_server_has_no_idle(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = IMAPClient.has_capability
    monkeypatch.setattr(IMAPClient, "has_capability", lambda s, cap: cap != "IDLE" and real(s, cap))
    intake = intake_for(box, poll_seconds=0.05)
    assert intake.wait(0.2) is False
    with ThreadPoolExecutor(1) as pool:
        woke = pool.submit(intake.wait, 20.0)
        mailstack.append(USER, make_message(1), box)
        assert woke.result(timeout=10) is True


def test_intake_reconnects_after_dovecot_restarts(
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    intake_for: Callable[..., ImapIntake],
) -> None:
    stack = mailstack_factory()
    intake = intake_for("INBOX", stack=stack)
    stack.append(USER, make_message(1))
    assert len(list(intake.fetch_new())) == 1
    stack.stop_dovecot()
    stack.start_dovecot()
    stack.append(USER, make_message(2))
    with capture_logs() as logs:
        assert len(list(intake.fetch_new())) == 2
    assert "imap_reconnect" in [e["event"] for e in logs]


def test_intake_gives_up_with_imap_unavailable_while_the_server_stays_down(
    mailstack_factory: Callable[..., MailStack],  # noqa: F811
    intake_for: Callable[..., ImapIntake],
) -> None:
    stack = mailstack_factory()
    intake = intake_for("INBOX", stack=stack, reconnect_attempts=2, backoff_initial=0.01)
    assert list(intake.fetch_new()) == []
    stack.stop_dovecot()
    with pytest.raises(ImapUnavailable):
        list(intake.fetch_new())


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_connection_verifies_the_server_with_the_ca_file(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
    security: str,
) -> None:
    raw = make_message(1)
    mailstack.append(USER, raw, box)
    port = mailstack.imaps_port if security == "ssl" else mailstack.imap_port
    intake = intake_for(box, security=security, port=port, ca_file=str(mailstack.ca_file))
    assert [m.data for m in intake.fetch_new() if isinstance(m, RawMessage)] == [raw]


def test_server_with_an_unknown_ca_is_refused_with_a_clear_error(
    mailstack: MailStack,  # noqa: F811
    intake_for: Callable[..., ImapIntake],
) -> None:
    intake = intake_for("INBOX", security="ssl", port=mailstack.imaps_port, ca_file=None)
    with pytest.raises(ImapRefused, match=r"certificate .* is not trusted"):
        list(intake.fetch_new())


def test_wrong_password_is_refused_without_retrying(
    intake_for: Callable[..., ImapIntake],
) -> None:
    intake = intake_for("INBOX", password="wrong-password")
    with capture_logs() as logs, pytest.raises(ImapRefused, match="login") as err:
        list(intake.fetch_new())
    assert "wrong-password" not in str(err.value)
    assert [e for e in logs if e["event"] == "imap_reconnect"] == []  # one attempt, no retry


def test_logs_carry_neither_password_nor_message_bodies(
    mailstack: MailStack,  # noqa: F811
    box: str,
    intake_for: Callable[..., ImapIntake],
) -> None:
    mailstack.append(USER, make_message(1, body=b"SECRET-BODY-TEXT\r\n"), box)
    with capture_logs() as logs:
        intake = intake_for(box)
        for msg in intake.fetch_new():
            intake.acknowledge(msg.key)
        intake.close()
    text = repr(logs) + repr(intake)
    assert "imap_connected" in text
    assert mailstack.password not in text
    assert "SECRET-BODY-TEXT" not in text
