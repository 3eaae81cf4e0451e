"""What an admin sees from the command line when something is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from mailbot.storage.db import make_engine
from mailbot.storage.models import Event, InboundMessage, InboundStatus
from tests.e2e.helpers import mailbot


def test_the_daemon_refuses_an_unmigrated_database_with_one_clear_line(workdir: Path) -> None:
    proc = mailbot(workdir, "run", "--once", check=False)
    assert proc.returncode == 2
    assert "run `mailbot db upgrade`" in proc.stderr
    assert "Traceback" not in proc.stderr
    mailbot(workdir, "db", "upgrade")
    assert mailbot(workdir, "run", "--once").stdout.startswith("received 0")


def test_a_wrong_config_key_is_named_without_a_traceback(workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace('mode = "22"', 'mode = "18"'), encoding="utf-8"
    )
    proc = mailbot(workdir, "status", check=False)
    assert proc.returncode == 2
    assert "vat.mode: must be one of 22, 10, 5, 7, 0, none, got '18'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_names_a_message_that_fails_and_how_to_retry_it(workdir: Path) -> None:
    mailbot(workdir, "db", "upgrade")
    inbox = workdir / "var/mail/inbox/new"
    inbox.mkdir(parents=True)
    (inbox / "1.a.host").write_bytes(b"From: a@client.example.test\r\nSubject: x\r\n\r\nhi\r\n")
    killed = mailbot(
        workdir, "run", "--once", env={"MAILBOT_CRASH_AT": "after_archive"}, check=False
    )
    assert killed.returncode < 0
    for archived in (workdir / "var/archive").rglob("*.eml"):
        archived.unlink()  # the archived copy is lost: processing must fail, loudly
    mailbot(workdir, "run", "--once")
    status = mailbot(workdir, "status").stdout
    assert "inbound failed" in status and "FileNotFoundError" in status
    assert "mailbot messages retry m1" in status
    assert (inbox / "1.a.host").exists()  # still in the mailbox: nothing is lost
    assert "will be processed" in mailbot(workdir, "messages", "retry", "m1").stdout


def test_quarantine_retry_and_reject_move_the_message_and_log_why(workdir: Path) -> None:
    mailbot(workdir, "db", "upgrade")
    engine = make_engine(f"sqlite:///{workdir / 'var/mailbot.db'}")
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    with Session(engine) as s:
        for n in (1, 2):
            s.add(
                InboundMessage(
                    key=f"maildir:{n}",
                    sha256=f"{n:064d}",
                    archive_path=f"{n}.eml",
                    size=10,
                    received_at=now,
                    status=InboundStatus.quarantined,
                    attempts=5,
                    acknowledged=True,
                    lease_until=now,
                    lease_owner="host:1",
                    correlation_id=f"m{n}",
                )
            )
        s.commit()
    assert "will be processed" in mailbot(workdir, "quarantine", "retry", "m1").stdout
    assert (
        "rejected: spam"
        in mailbot(workdir, "quarantine", "reject", "m2", "--reason", "spam").stdout
    )
    refused = mailbot(workdir, "quarantine", "reject", "m1", "--reason", "late", check=False)
    assert refused.returncode == 1
    assert "message m1 is archived, not quarantined" in refused.stderr
    with Session(engine) as s:
        m1, m2 = s.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all()
        events = s.exec(select(Event).where(Event.entity == "inbound").order_by(col(Event.id)))
        logged = [(e.entity_id, e.event, e.from_state, e.to_state, e.data) for e in events]
    engine.dispose()
    assert (m1.status, m1.attempts, m1.acknowledged) == (InboundStatus.archived, 0, False)
    assert (m1.lease_until, m1.lease_owner) == (None, "")
    assert (m2.status, m2.attempts, m2.acknowledged) == (InboundStatus.rejected, 5, True)
    assert logged == [
        (1, "message_requeued", "quarantined", "archived", {"by": "admin"}),
        (2, "message_rejected", "quarantined", "rejected", {"reason": "spam"}),
    ]
