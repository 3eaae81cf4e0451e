"""The daemon (`python -m mailbot run`) on real Dovecot IMAP(S) and SMTP, as a subprocess.

Each test runs its own loopback stack (catch-all relay: every sender address is a real
mailbox) and its own SQLite site, appends mail over IMAP and reads our replies over IMAP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.storage.db import make_engine
from mailbot.storage.models import InboundMessage, OutboxMessage
from tests.conftest import REPO
from tests.e2e.helpers import mailbot
from tests.mailstack import MailStack
from tests.unit.test_classify_automatic import automatic_mails

pytestmark = [pytest.mark.mail, pytest.mark.timeout(180)]
INFO = "info@example.test"
CATCH = "applicant@example.test"  # every unknown address of example.test lands here


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Return config text with `key` of `[section]` set to the TOML literal `value`."""
    head = text.index(f"[{section}]\n")
    end = text.find("\n[", head + 1)
    end = len(text) if end < 0 else end
    body, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text[head:end], count=1)
    if n == 0:
        body = body.replace(f"[{section}]\n", f"[{section}]\n{key} = {value}\n", 1)
    return text[:head] + body + text[end:]


class Site:
    """A workdir configured for IMAP(S) intake and SMTP outbox at `stack`; runs the daemon."""

    def __init__(self, root: Path, stack: MailStack, mailbox: str, **limits: int) -> None:
        self.dir, self.stack, self.mailbox = root, stack, mailbox
        root.mkdir()
        text = (REPO / "config.toml").read_text()
        for section, key, value in (
            ("intake", "kind", '"imap"'),
            ("imap", "host", '"127.0.0.1"'),
            ("imap", "port", str(stack.imaps_port)),
            ("imap", "security", '"ssl"'),
            ("imap", "ca_file", f'"{stack.ca_file}"'),
            ("imap", "mailbox", f'"{mailbox}"'),
            ("imap", "processed_folder", f'"{mailbox}-done"'),
            ("imap", "quarantine_folder", f'"{mailbox}-quarantine"'),
            ("outbox", "kind", '"smtp"'),
            ("smtp", "host", '"127.0.0.1"'),
            ("smtp", "port", str(stack.smtp_port)),
            ("smtp", "security", '"none"'),
            *(("limits", k, str(v)) for k, v in limits.items()),
        ):
            text = set_key(text, section, key, value)
        (root / "config.toml").write_text(text)
        self.db_url = f"sqlite:///{root / 'var' / 'mailbot.db'}"
        self.env = {
            "MAILBOT_IMAP_PASSWORD": stack.password,
            "MAILBOT_SMTP_PASSWORD": stack.password,
            "MAILBOT_DATABASE_URL": self.db_url,
        }
        with stack.imap(INFO) as c:
            if not c.folder_exists(mailbox):
                c.create_folder(mailbox)
        mailbot(root, "db", "upgrade", env=self.env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--log-level", "debug", "run"],
            cwd=self.dir,
            env={**os.environ, **self.env},
            stdout=(self.dir / "daemon.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> int:
        """SIGTERM the daemon; return its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def log(self) -> str:
        return (self.dir / "daemon.log").read_text(errors="replace")

    def rows(self, model: Any) -> list[Any]:
        engine = make_engine(self.db_url)
        try:
            with Session(engine) as s:
                return list(s.exec(select(model).order_by(col(model.id))))
        finally:
            engine.dispose()


@pytest.fixture
def stack(mailstack_factory: Callable[..., MailStack]) -> MailStack:
    return mailstack_factory(catchall=CATCH)


@pytest.fixture
def site(tmp_path: Path, stack: MailStack) -> Iterator[Site]:
    s = Site(tmp_path / "site", stack, "intake")
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def letter(sender: str, subject: str = "Вопрос", body: str = "Здравствуйте!") -> tuple[bytes, str]:
    mid = f"<{uuid.uuid4().hex}@sender.test>"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, INFO, subject, mid
    msg.set_content(body)
    return bytes(msg), mid


def replies_to(stack: MailStack, message_id: str) -> list[EmailMessage]:
    """Our replies in the catch-all INBOX whose In-Reply-To is `message_id`."""
    with stack.imap(CATCH) as c:
        c.select_folder("INBOX", readonly=True)
        c.noop()
        uids = c.search(["HEADER", "In-Reply-To", message_id])
        got = c.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(bytes(got[u][b"BODY[]"])) for u in sorted(got)]


def wait_until(what: str, check: Callable[[], Any], site: Site, timeout: float = 30.0) -> Any:
    """Return check()'s first truthy value; fail with the daemon log at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s; daemon log:\n{site.log()[-4000:]}")
        time.sleep(0.05)  # poll interval of the deadline loop


def folder_count(stack: MailStack, folder: str) -> int:
    with stack.imap(INFO) as c:
        if not c.folder_exists(folder):
            return 0
        c.select_folder(folder, readonly=True)
        return len(c.search("ALL"))


def test_daemon_over_verified_imaps_answers_mail_appended_while_it_idles(
    site: Site, stack: MailStack
) -> None:
    site.start()
    wait_until("daemon idling", lambda: "imap_idle_started" in site.log(), site)
    raw, mid = letter("stranger@example.test", subject="Как получить штрихкоды?")
    stack.append(INFO, raw, site.mailbox)
    [reply] = wait_until("reply", lambda: replies_to(stack, mid), site)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == "stranger@example.test"
    assert mid in reply["References"]
    assert reply["Subject"].startswith("Re: Как получить штрихкоды?")
    wait_until("moved to processed", lambda: folder_count(stack, "intake-done") == 1, site)
    assert folder_count(stack, "intake") == 0
    assert site.stop() == 0
    assert "daemon_stopped" in site.log()


def test_daemon_reconnects_after_dovecot_restarts_and_loses_no_message(
    site: Site, stack: MailStack
) -> None:
    site.start()
    first, first_id = letter("one@example.test")
    stack.append(INFO, first, site.mailbox)
    wait_until("first reply", lambda: replies_to(stack, first_id), site)
    stack.stop_dovecot()
    wait_until("connection loss seen", lambda: "imap_reconnect" in site.log(), site)
    stack.start_dovecot()
    later = [letter(f"after{i}@example.test") for i in range(3)]
    for raw, _ in later:
        stack.append(INFO, raw, site.mailbox)
    for _, mid in later:
        wait_until(f"reply to {mid}", lambda m=mid: replies_to(stack, m), site)  # type: ignore[misc]
    wait_until("all processed", lambda: folder_count(stack, "intake-done") == 4, site)
    assert [len(replies_to(stack, m)) for m in (first_id, *(m for _, m in later))] == [1] * 4
    assert site.stop() == 0


def test_mailbox_recreated_with_the_same_mails_is_not_processed_again(
    site: Site, stack: MailStack
) -> None:
    mails = [letter(f"r{i}@example.test") for i in range(3)]
    for raw, _ in mails:
        stack.append(INFO, raw, site.mailbox)
    site.start()
    wait_until("processed", lambda: folder_count(stack, "intake-done") == 3, site)
    assert site.stop() == 0  # e.g. the mail server is migrated meanwhile
    with stack.imap(INFO) as c:  # new UIDVALIDITY, the same messages again
        old = c.folder_status(site.mailbox, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        c.delete_folder(site.mailbox)
        c.create_folder(site.mailbox)
        assert c.folder_status(site.mailbox, [b"UIDVALIDITY"])[b"UIDVALIDITY"] != old
        for raw, _ in mails:
            c.append(site.mailbox, raw)
    site.start()
    wait_until("moved out again", lambda: folder_count(stack, "intake-done") == 6, site)
    assert site.stop() == 0
    assert [len(replies_to(stack, mid)) for _, mid in mails] == [1, 1, 1]
    inbound = site.rows(InboundMessage)
    assert [r.status for r in inbound] == ["processed"] * 3 + ["duplicate"] * 3
    assert len(site.rows(OutboxMessage)) == 3


def test_oversized_message_is_refused_with_a_reply_and_only_its_header_is_archived(
    tmp_path: Path, stack: MailStack
) -> None:
    site = Site(tmp_path / "site", stack, "big", max_message_bytes=100_000)
    raw, mid = letter("big@example.test", subject="Большой файл", body="x" * 300_000)
    stack.append(INFO, raw, site.mailbox)
    site.start()
    try:
        [reply] = wait_until("refusal", lambda: replies_to(stack, mid), site)
        assert "Большой файл" in reply["Subject"]
        wait_until("moved", lambda: folder_count(stack, "big-done") == 1, site)
    finally:
        site.stop()
    [row] = site.rows(InboundMessage)
    assert row.kind == "oversized"
    assert row.size >= len(raw)  # as the server counts it (CRLF line ends)
    archived = site.dir / "var" / "archive" / row.archive_path
    assert archived.stat().st_size < 64 * 1024
    assert b"x" * 1000 not in archived.read_bytes()


def test_automatic_mail_of_every_kind_gets_no_reply_from_the_daemon(
    site: Site, stack: MailStack
) -> None:
    robots = automatic_mails(40, our_address=INFO)
    for raw in robots:
        stack.append(INFO, raw, site.mailbox)
    human, mid = letter("human@example.test")
    stack.append(INFO, human, site.mailbox)
    site.start()
    wait_until("human answered", lambda: replies_to(stack, mid), site)
    wait_until("all moved", lambda: folder_count(stack, "intake-done") == 41, site)
    assert site.stop() == 0
    outbox = site.rows(OutboxMessage)
    assert [o.recipients for o in outbox] == [["human@example.test"]]
    with stack.imap(CATCH) as c:
        c.select_folder("INBOX", readonly=True)
        assert len(c.search("ALL")) == 1


def test_sigterm_while_idle_stops_the_daemon_cleanly(site: Site) -> None:
    site.start()
    wait_until("daemon idling", lambda: "imap_idle_started" in site.log(), site)
    assert site.stop() == 0
    assert "daemon_stopped" in site.log()
