"""What an admin sees from the command line when something is wrong."""

from __future__ import annotations

from pathlib import Path

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
