"""MaildirIntake on a temporary Maildir."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mailbot.mail.intake.base import OversizedMessage, RawMessage
from mailbot.mail.intake.maildir import HEADER_CAP, MaildirIntake

HEAD = b"From: a@example.test\r\nSubject: hi\r\n\r\n"


def drop(root: Path, name: str, data: bytes, sub: str = "new", mtime: int | None = None) -> Path:
    path = root / sub / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "inbox"


def test_missing_maildir_is_created(root: Path) -> None:
    MaildirIntake(root)
    assert all((root / sub).is_dir() for sub in ("new", "cur", "tmp"))


def test_fetch_new_yields_new_and_cur_messages_oldest_first_with_exact_bytes(root: Path) -> None:
    intake = MaildirIntake(root)
    drop(root, "300.c.host", HEAD + b"third", mtime=3000)
    drop(root, "100.a.host:2,S", HEAD + b"first", sub="cur", mtime=1000)
    drop(root, "200.b.host", HEAD + b"second", mtime=2000)
    got = list(intake.fetch_new())
    assert [m.key for m in got] == [
        "maildir:100.a.host",
        "maildir:200.b.host",
        "maildir:300.c.host",
    ]
    assert [m.data for m in got if isinstance(m, RawMessage)] == [
        HEAD + b"first",
        HEAD + b"second",
        HEAD + b"third",
    ]
    assert [m.size for m in got] == [len(HEAD) + 5, len(HEAD) + 6, len(HEAD) + 5]


def test_acknowledged_message_moves_to_processed_and_is_not_fetched_again(root: Path) -> None:
    intake = MaildirIntake(root)
    drop(root, "1.a.host:2,S", HEAD + b"x", sub="cur")
    (msg,) = intake.fetch_new()
    intake.acknowledge(msg.key)
    assert list(intake.fetch_new()) == []
    assert (root / ".processed" / "cur" / "1.a.host:2,S").read_bytes() == HEAD + b"x"


def test_acknowledge_twice_or_of_an_unknown_key_is_a_no_op(root: Path) -> None:
    intake = MaildirIntake(root)
    drop(root, "1.a.host", HEAD)
    intake.acknowledge("maildir:1.a.host")
    intake.acknowledge("maildir:1.a.host")
    intake.acknowledge("maildir:never.was.here")
    assert [p.name for p in (root / ".processed" / "cur").iterdir()] == ["1.a.host"]


def test_acknowledge_rejects_a_key_of_another_intake(root: Path) -> None:
    with pytest.raises(ValueError, match="not a Maildir intake key"):
        MaildirIntake(root).acknowledge("imap:INBOX:1:2")


def test_quarantine_moves_the_message_and_writes_the_reason_beside_it(root: Path) -> None:
    intake = MaildirIntake(root)
    drop(root, "1.a.host", HEAD)
    intake.acknowledge("maildir:1.a.host", quarantine=True, reason="parser crashed: KeyError")
    box = root / ".quarantine" / "cur"
    assert (box / "1.a.host").read_bytes() == HEAD
    assert (box / "1.a.host.reason").read_text() == "parser crashed: KeyError\n"
    assert list(intake.fetch_new()) == []


def test_oversized_message_yields_only_its_header_block(root: Path) -> None:
    intake = MaildirIntake(root, max_bytes=100)
    drop(root, "1.big.host", HEAD + b"x" * 500)
    (msg,) = intake.fetch_new()
    assert isinstance(msg, OversizedMessage)
    assert msg.headers == HEAD
    assert msg.size == len(HEAD) + 500


def test_oversized_header_block_is_capped_at_64_kb(root: Path) -> None:
    intake = MaildirIntake(root, max_bytes=100)
    drop(root, "1.big.host", b"X-Junk: " + b"y" * (HEADER_CAP * 2) + b"\r\n\r\nbody")
    (msg,) = intake.fetch_new()
    assert isinstance(msg, OversizedMessage)
    assert len(msg.headers) == HEADER_CAP


def test_wait_returns_false_at_the_timeout_on_an_empty_maildir(root: Path) -> None:
    intake = MaildirIntake(root)
    t0 = time.monotonic()
    assert intake.wait(0.2) is False
    assert time.monotonic() - t0 >= 0.2


def test_wait_returns_at_once_for_a_message_not_yet_fetched(root: Path) -> None:
    intake = MaildirIntake(root)
    drop(root, "1.a.host", HEAD)
    assert intake.wait(30) is True
    list(intake.fetch_new())
    assert intake.wait(0.1) is False  # fetched, not acknowledged: not new any more


def test_wait_wakes_up_when_a_message_arrives(root: Path) -> None:
    intake = MaildirIntake(root)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(intake.wait(30)))
    waiter.start()
    drop(root, "1.a.host", HEAD)
    waiter.join(timeout=10)
    assert woke == [True]
