"""The admin's generic command-line items: config names, lists as JSON, refusals, resets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailbot.storage.db import make_engine
from mailbot.storage.models import Client, Event, OutboxMessage, OutboxStatus
from mailbot.storage.models_web import WebSession
from tests.e2e.helpers import mailbot

LOGIN = "7701234567"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_check_names_each_misspelt_key_and_section_and_exits_1(workdir: Path) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8").replace("due_days = 5", "due_dayz = 5")
    config.write_text(text + "\n[invoice]\ndue_days = 5\n", "utf-8")
    proc = mailbot(workdir, "check", check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "FAIL config: [invoices] due_dayz: unknown key (did you mean due_days?)",
        "FAIL config: [invoice]: unknown section (did you mean [invoices]?)",
    ]
    status = mailbot(workdir, "status", check=False)  # every other command refuses to start
    assert status.returncode == 2
    assert "[invoice]: unknown section (did you mean [invoices]?)" in status.stderr
    assert "Traceback" not in status.stderr


def run(site: Site, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`mailbot ARGS` in the site against its database (SQLite or PostgreSQL)."""
    return mailbot(site.dir, *args, env={"MAILBOT_DATABASE_URL": site.url}, check=check)


def refused(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one line a refusal prints; asserts the exit code and that nothing else was said."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


class Site:
    """A workdir with a migrated database and one client, ACME, with two open web sessions."""

    def __init__(self, workdir: Path, url: str) -> None:
        self.dir, self.url = workdir, url
        self.engine = make_engine(url)
        with Session(self.engine) as s:
            client = Client(
                inn="7701234567",
                kpp="770101001",
                org_name="ООО «Акме»",
                email="acme@client.example.test",
                login=LOGIN,
                password_hash="old-hash",
                must_change=False,
                credentials_seq=1,
                created_at=NOW,
            )
            s.add(client)
            s.flush()
            assert client.id is not None
            self.client_id = client.id
            for n in range(2):
                s.add(
                    WebSession(
                        token_hash=f"{n:064d}",
                        client_id=client.id,
                        csrf="x",
                        created_at=NOW,
                        last_seen_at=NOW,
                    )
                )
            s.commit()

    def client(self) -> Client:
        with Session(self.engine) as s:
            c = s.get(Client, self.client_id)
            assert c is not None
            return c

    def password_mails(self) -> list[OutboxMessage]:
        with Session(self.engine) as s:
            return list(
                s.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == "password_reset")
                    .order_by(col(OutboxMessage.id))
                )
            )

    def open_sessions(self) -> int:
        with Session(self.engine) as s:
            return len(
                s.exec(
                    select(WebSession).where(
                        WebSession.client_id == self.client_id, col(WebSession.ended_at).is_(None)
                    )
                ).all()
            )

    def events(self, event: str) -> list[Event]:
        with Session(self.engine) as s:
            return list(s.exec(select(Event).where(Event.event == event).order_by(col(Event.id))))


@pytest.fixture
def site(workdir: Path, db_url: str) -> Iterator[Site]:
    s = Site(workdir, db_url)
    yield s
    s.engine.dispose()


def test_reset_password_without_a_terminal_or_yes_is_refused_and_changes_nothing(
    site: Site,
) -> None:
    line = refused(run(site, "clients", "reset-password", LOGIN, check=False))
    assert line == (
        f"error: reset the password of {LOGIN} and mail a new one to "
        "acme@client.example.test? — not confirmed (no terminal); pass --yes to confirm"
    )
    assert site.client().password_hash == "old-hash"
    assert site.password_mails() == [] and site.open_sessions() == 2


def test_reset_password_of_an_unknown_login_is_one_line_exit_1(site: Site) -> None:
    line = refused(run(site, "clients", "reset-password", "0000000000", "--yes", check=False))
    assert line == "error: client 0000000000 not found"
    assert site.password_mails() == []


def test_reset_password_twice_drops_the_first_unsent_mail_and_ends_every_session(
    site: Site,
) -> None:
    first = run(site, "clients", "reset-password", LOGIN, "--yes").stdout
    assert "queued to acme@client.example.test" in first
    assert "ended 2 web session(s)" in first
    client = site.client()
    assert client.password_hash != "old-hash" and client.must_change
    assert client.password_changed_at is not None and client.credentials_seq == 2
    assert site.open_sessions() == 0
    with Session(site.engine) as s:
        ended = s.exec(select(WebSession)).all()
    assert {(w.end_reason, w.ended_at is not None) for w in ended} == {("reset", True)}

    second = run(site, "clients", "reset-password", LOGIN, "-y").stdout
    [old, new] = site.password_mails()
    assert f"dropped the unsent password mail(s) {old.id}: their password is void" in second
    assert "web session" not in second  # none was open any more
    assert old.status == OutboxStatus.dropped and old.secret is None
    assert "superseded by password reset #3" in old.held_reason
    assert new.status == OutboxStatus.pending and new.secret is not None
    assert "Прежний пароль больше не действует" in new.body.decode()
    [dropped] = site.events("mail_dropped")
    assert (dropped.entity_id, dropped.from_state) == (old.id, OutboxStatus.pending)
    resets = site.events("password_reset")
    assert [e.data["sessions_ended"] for e in resets] == [[1, 2], []]
    assert [e.data["superseded_mails"] for e in resets] == [[], [old.id]]


def test_a_password_mail_already_sent_is_not_touched_by_the_next_reset(site: Site) -> None:
    run(site, "clients", "reset-password", LOGIN, "--yes")
    with Session(site.engine) as s:
        [mail] = s.exec(select(OutboxMessage)).all()
        mail.status, mail.sent_at, mail.secret = OutboxStatus.sent, NOW, None
        s.add(mail)
        s.commit()
    out = run(site, "clients", "reset-password", LOGIN, "--yes").stdout
    assert "dropped" not in out
    assert [m.status for m in site.password_mails()] == [OutboxStatus.sent, OutboxStatus.pending]
