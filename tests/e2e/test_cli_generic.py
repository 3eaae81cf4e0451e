"""The admin's generic command-line items: config names, lists as JSON, refusals, resets."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.storage.db import make_engine
from mailbot.storage.models import (
    ApplicationState,
    Barcode,
    Client,
    Event,
    InboundStatus,
    OutboxMessage,
    OutboxStatus,
    Payment,
)
from mailbot.storage.models_web import WebSession
from mailbot.storage.queries import record_event
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
    assert sorted(e.data["session"] for e in site.events("web_session_ended")) == [1, 2]

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


def as_json(site: Site, *args: str) -> list[dict[str, Any]]:
    rows = json.loads(run(site, *args, "--json").stdout)
    assert isinstance(rows, list)
    return rows


def test_every_list_prints_json_and_log_takes_an_invoice_number(site: Site) -> None:
    """demo → run → pay → run, then each list as JSON, and the invoice's story."""
    run(site, "demo")
    run(site, "run", "--once")
    [number] = run(site, "invoices", "list", "--plain").stdout.split()
    run(site, "invoices", "pay", number)
    run(site, "run", "--once")

    [app] = as_json(site, "applications", "list")
    assert set(app) == {"number", "state", "kind", "sender", "org", "created"}
    assert app["state"] == "issued" and app["created"].startswith("20")
    assert as_json(site, "applications", "list", "--state", "issued") == [app]
    assert as_json(site, "applications", "list", "--state", "paid") == []
    mails = as_json(site, "outbox", "list")
    assert {m["kind"] for m in mails} >= {"invoice", "issued"}
    assert all(isinstance(m["id"], int) and isinstance(m["attempts"], int) for m in mails)
    pending = as_json(site, "outbox", "list", "--status", "pending")
    assert pending == [m for m in mails if m["status"] == "pending"]
    [message] = as_json(site, "messages", "list")
    assert message["id"] == "m1" and message["status"] == "processed"
    clients = as_json(site, "clients", "list")
    assert [c["login"] for c in clients] == ["7707083893", LOGIN]  # newest first
    [prefix] = as_json(site, "pool", "status")
    with Session(site.engine) as s:
        codes = len(s.exec(select(Barcode)).all())
    assert prefix["prefix"] == "4601234" and prefix["used"] == codes > 0
    assert prefix["free"] == prefix["capacity"] - codes
    for empty in (
        ("outbox", "held"),
        ("quarantine", "list"),
        ("requests", "list"),
        ("tickets", "list"),
        ("news", "list"),
    ):
        assert as_json(site, *empty) == [], empty

    with Session(site.engine) as s:  # a payment's own event (a statement's) joins the story
        [payment] = s.exec(select(Payment)).all()
        assert payment.id is not None
        record_event(s, entity="payment", entity_id=payment.id, event="payment_noted", at=NOW)
        s.commit()
    story = as_json(site, "log", number)
    events = [(e["entity"], e["event"]) for e in story]
    assert ("invoice", "invoice_created") in events
    assert ("invoice", "invoice_paid") in events
    assert ("application", "codes_allocated") in events
    assert ("payment", "payment_noted") in events
    assert story == as_json(site, "log", app["number"])  # the same story as its application
    table = run(site, "log", number).stdout
    assert "invoice_created" in table and "codes_allocated" in table


def test_log_of_an_unknown_invoice_or_a_ref_of_no_kind_is_one_line_exit_1(site: Site) -> None:
    assert refused(run(site, "log", "2026-99999", check=False)) == (
        "error: invoice 2026-99999 not found"
    )
    assert refused(run(site, "log", "what", check=False)) == (
        "error: 'what' names nothing: give a message (m12), an application "
        "(EAN-2026-000012) or an invoice (2026-00012)"
    )


def test_an_unknown_state_status_or_log_level_is_one_line_naming_the_valid_ones(
    workdir: Path,
) -> None:
    mailbot(workdir, "db", "upgrade")
    db = workdir / "var/mailbot.db"
    before = db.read_bytes()
    states = ", ".join(ApplicationState)
    cases = {
        ("applications", "list", "--state", "bogus"): f"'bogus' is not one of: {states}",
        ("outbox", "list", "--status", "gone"): "'gone' is not one of: " + ", ".join(OutboxStatus),
        ("messages", "list", "--status", "x"): "'x' is not one of: " + ", ".join(InboundStatus),
        ("--log-level", "loud", "status"): "'loud' is not one of: debug, info, warning, error",
        ("quarantine", "reject", "m1", "--reason", "  "): "--reason must say why (it is kept in "
        "the log)",
        ("tickets", "reply", "1", "--body-file", "no.txt"): "no.txt: No such file or directory",
        ("news", "send", "--subject", "S", "--body-file", "no.txt"): "no.txt: No such file or "
        "directory",
    }
    for args, says in cases.items():
        line = refused(mailbot(workdir, *args, check=False))
        assert line.startswith("error: ") and line.endswith(says), line
    assert db.read_bytes() == before  # nothing changed


def test_version_comes_from_the_installed_package(workdir: Path) -> None:
    assert mailbot(workdir, "--version").stdout == f"mailbot {version('mailbot')}\n"


def test_shell_completion_completes_commands_and_installs_into_a_home(tmp_path: Path) -> None:
    words = {"COMP_WORDS": "mailbot applications l", "COMP_CWORD": "2"}
    done = mailbot(tmp_path, env={"_MAILBOT_COMPLETE": "complete_bash", **words})
    assert done.stdout.split() == ["list"]
    script = mailbot(tmp_path, "--show-completion", "bash").stdout
    assert "_MAILBOT_COMPLETE=complete_bash" in script
    home = tmp_path / "home"
    home.mkdir()
    mailbot(tmp_path, "--install-completion", "bash", env={"HOME": str(home)})
    assert "mailbot" in (home / ".bashrc").read_text()
