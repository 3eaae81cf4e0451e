"""Messages we refuse to read, through archive_one → process_pending → the outbox rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot import guard, pipeline
from mailbot.billing.payments import import_statement
from mailbot.guard import GuardedParseError
from mailbot.mail import reading
from mailbot.mail.intake.base import RawMessage
from mailbot.parsers import bank_statement_1c
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, OutboxMessage

WORD = "=?utf-8?b?0J/RgNC40LLQtdGC?="


def _rows(rt: Runtime, model: Any) -> list[Any]:
    with Session(rt.engine) as s:
        return list(s.exec(select(model).order_by(col(model.id))))


def _take(rt: Runtime, *mails: bytes) -> None:
    for i, raw in enumerate(mails):
        pipeline.archive_one(rt, RawMessage(f"test:{i}", raw, len(raw)))
    pipeline.process_pending(rt)


def test_headers_over_a_limit_are_quarantined_and_the_sender_told_which(rt: Runtime) -> None:
    subject = " ".join([WORD] * 300)
    raw = (
        f"From: Иван <ivan@client.test>\r\nTo: info@example.test\r\nSubject: {subject}\r\n"
        "Message-ID: <m1@client.test>\r\n\r\nтекст\r\n"
    ).encode()
    _take(rt, raw)
    [row] = _rows(rt, InboundMessage)
    assert (row.status, row.kind, row.from_addr, row.message_id, row.subject) == (
        "quarantined",
        "unreadable",
        "ivan@client.test",
        "<m1@client.test>",
        "",
    )
    assert row.last_error == "one header (subject) over 200 encoded words (not parsed)"
    [reply] = _rows(rt, OutboxMessage)
    assert reply.recipients == ["ivan@client.test"] and reply.kind == "unreadable"
    body = reply.body.decode()
    assert "заголовок «subject» состоит из слишком многих закодированных частей" in body
    assert "In-Reply-To: <m1@client.test>" in body


def test_a_robot_or_our_own_address_is_quarantined_without_a_reply(rt: Runtime) -> None:
    many = "".join(f"X-H{i}: v\r\n" for i in range(1001))
    robot = f"From: mailer-daemon@mx.test\r\n{many}\r\nbody".encode()
    ours = f"From: {rt.settings.service.email}\r\n{many}\r\nbody".encode()
    listed = f"From: a@list.test\r\nList-Id: <l.list.test>\r\n{many}\r\nbody".encode()
    _take(rt, robot, ours, listed)
    assert [r.status for r in _rows(rt, InboundMessage)] == ["quarantined"] * 3
    assert _rows(rt, OutboxMessage) == []


def test_a_header_nested_too_deep_for_the_stdlib_is_refused_not_retried(rt: Runtime) -> None:
    # (A From so long is no sender at all by the identity rule and never parsed; a
    # Message-ID is still parsed structurally.)
    nested = "Message-ID: " + "(" * 60_000
    raw = ("From: a@client.test\r\n" + nested + "\r\nSubject: x\r\n\r\nbody").encode()
    assert isinstance(reading.read_message(raw, rt.settings.limits), reading.Unreadable)
    _take(rt, raw)
    [row] = _rows(rt, InboundMessage)
    assert (row.status, row.attempts) == ("quarantined", 1)  # one started attempt, no retry
    assert "nested too deep" in row.last_error


def test_a_parser_bug_while_archiving_never_stops_the_intake(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> object:
        raise GuardedParseError("parser raised on message:\nValueError: boom")

    monkeypatch.setattr(pipeline, "read_message", broken)
    raw = b"From: a@client.test\r\nMessage-ID: <b1@client.test>\r\nSubject: x\r\n\r\nhi"
    row = pipeline.archive_one(rt, RawMessage("test:bug", raw, len(raw)))
    assert (row.status, row.from_addr, row.message_id) == (
        "archived",
        "a@client.test",
        "<b1@client.test>",
    )
    pipeline.process_pending(rt)  # the same bug while processing: a failed attempt, parked
    [after] = _rows(rt, InboundMessage)
    assert (after.status, after.attempts) == ("failed", 1)
    assert "boom" in after.last_error


def _hog(data: bytes, *, our_accounts: object = ()) -> object:
    return bytearray(4 << 30)


def test_a_statement_past_the_memory_cap_is_an_error_not_a_dead_daemon(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bank statements are parsed in the guarded worker too (a spoofed accountant mail)."""
    monkeypatch.setattr(bank_statement_1c, "parse_statement", _hog)
    guard.stop_worker()  # the next parse forks a worker that has the patch
    try:
        with Session(rt.engine) as session:
            summary = import_statement(session, rt, b"1CClientBankExchange\r\n", source="x.txt")
    finally:
        monkeypatch.undo()
        guard.stop_worker()
    assert summary.error == "the statement could not be read within the parse limits (memory)"
    assert summary.outcomes == ()
