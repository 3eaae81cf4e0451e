"""Two daemons on one PostgreSQL and one real Dovecot mailbox; one is SIGKILLed mid-run.

Every application is processed once and answered once: one invoice row each, and one
reply per application (by In-Reply-To) in the recipients' mailbox. The one documented
exception (mailbot/outbox.py): a mail the killed daemon had delivered but not yet marked
sent goes again, with the same Message-ID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, col, select

from mailbot.cli.demo import sample_message
from mailbot.config import load_settings
from mailbot.issuance.pool import sync_prefixes
from mailbot.runtime import build_runtime
from mailbot.service.daemon import prepare
from mailbot.storage.db import make_engine
from mailbot.storage.models import (
    Application,
    BarcodePool,
    Event,
    InboundMessage,
    Invoice,
    OutboxMessage,
    OutboxStatus,
)
from mailbot.storage.models_workers import Worker
from tests.conftest import REPO, DatabaseFactory, FakeClock
from tests.e2e.test_mail_edge import set_key
from tests.mailstack import MailStack

pytestmark = [pytest.mark.mail, pytest.mark.pg, pytest.mark.timeout(600)]
INFO = "info@example.test"
CATCH = "applicant@example.test"


def applications(n: int) -> tuple[list[bytes], list[str]]:
    """n sample applications from n different senders, each with its own Message-ID."""
    template = sample_message(to=INFO, sender="demo@client.example.test")
    mails, ids = [], []
    for i in range(n):
        mid = f"<{uuid.uuid4().hex}@client.example.test>"
        raw = template.replace(b"demo@client.example.test", f"a{i}@client.example.test".encode())
        mails.append(re.sub(rb"(?m)^Message-ID: .*$", f"Message-ID: {mid}".encode(), raw, count=1))
        ids.append(mid)
    return mails, ids


class Cluster:
    """A site configured for IMAP + SMTP at `stack` and PostgreSQL; starts daemons."""

    def __init__(self, root: Path, stack: MailStack, db_url: str) -> None:
        self.dir, self.db_url = root, db_url
        text = (REPO / "config.toml").read_text()
        for section, key, value in (
            ("intake", "kind", '"imap"'),
            ("imap", "host", '"127.0.0.1"'),
            ("imap", "port", str(stack.imap_port)),
            ("imap", "security", '"none"'),
            ("outbox", "kind", '"smtp"'),
            ("smtp", "host", '"127.0.0.1"'),
            ("smtp", "port", str(stack.smtp_port)),
            ("smtp", "security", '"none"'),
            ("smtp", "user", '""'),
            ("limits", "replies_per_sender_per_hour", "100000"),  # every form names one address
            ("limits", "mails_per_recipient_per_day", "100000"),  # the caps on mail to others:
            ("limits", "applications_per_domain_per_hour", "100000"),  # one domain sends all
        ):
            text = set_key(text, section, key, value)
        (root / "config.toml").write_text(text)
        self.env = {
            **os.environ,
            "MAILBOT_IMAP_PASSWORD": stack.password,
            "MAILBOT_DATABASE_URL": db_url,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()  # pids the test killed on purpose
        self.engine = make_engine(db_url)

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run"],
            cwd=self.dir,
            env=self.env,
            stdout=(self.dir / f"daemon{n}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def count(self, query: object) -> int:
        with Session(self.engine) as s:
            return int(s.exec(query).one())  # type: ignore[call-overload]

    def logs(self) -> str:
        with Session(self.engine) as s:
            states = {
                "inbound": list(
                    s.exec(
                        select(
                            InboundMessage.status, InboundMessage.lease_owner, func.count()
                        ).group_by(col(InboundMessage.status), col(InboundMessage.lease_owner))
                    )
                ),
                "outbox": list(
                    s.exec(
                        select(
                            OutboxMessage.status, OutboxMessage.lease_owner, func.count()
                        ).group_by(col(OutboxMessage.status), col(OutboxMessage.lease_owner))
                    )
                ),
                "pids": [p.pid for p in self.procs],
            }
        tails = "\n".join(p.read_text(errors="replace")[-1500:] for p in self.dir.glob("*.log"))
        return f"{states}\n{tails}"

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll `check` until true; fail at the deadline or as soon as a daemon dies."""
        deadline = time.monotonic() + timeout
        while not check():
            dead = [
                f"pid {p.pid} exited {p.returncode}"
                for p in self.procs
                if p.poll() is not None and p.pid not in self.killed
            ]
            if dead:
                raise AssertionError(f"waiting for {what}: {dead}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout}s\n{self.logs()}")
            time.sleep(0.1)  # poll interval of the deadline loop

    def workers(self) -> dict[int, bool]:
        """pid -> reader flag of every daemon that has written its heartbeat row."""
        with Session(self.engine) as s:
            return {int(w.id.rsplit(":", 1)[1]): w.reader for w in s.exec(select(Worker))}

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.engine.dispose()


@pytest.fixture
def cluster(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    mailstack_factory: Callable[..., MailStack],
) -> Iterator[tuple[Cluster, MailStack]]:
    stack = mailstack_factory(catchall=CATCH)
    databases = DatabaseFactory("postgresql", tmp_path, request)
    site = tmp_path / "site"
    site.mkdir()
    c = Cluster(site, stack, databases())
    yield c, stack
    c.close()
    databases.close()


def replies(stack: MailStack) -> list[tuple[str, str]]:
    """(In-Reply-To, Message-ID) of every reply in the recipients' mailbox."""
    with stack.imap(CATCH) as c:
        c.select_folder("INBOX", readonly=True)
        got = c.fetch(c.search("ALL"), [b"BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO MESSAGE-ID)]"])
    out = []
    for item in got.values():
        head = message_from_bytes(bytes(item[b"BODY[HEADER.FIELDS (IN-REPLY-TO MESSAGE-ID)]"]))
        out.append((str(head["In-Reply-To"]).strip(), str(head["Message-ID"]).strip()))
    return out


def run_two_daemons_and_kill_one(cluster: Cluster, stack: MailStack, n: int) -> None:
    mails, ids = applications(n)
    with stack.imap(INFO) as c:
        for raw in mails:
            c.append("INBOX", raw)
    first, second = cluster.start(), cluster.start()
    pids = {first.pid, second.pid}
    cluster.wait("both daemons running", lambda: set(cluster.workers()) == pids, 120)
    invoiced = select(func.count()).select_from(Invoice)
    cluster.wait(
        "a third of the applications invoiced", lambda: cluster.count(invoiced) >= n // 3, 180
    )
    readers = [pid for pid, reader in cluster.workers().items() if reader]
    assert len(readers) == 1, f"exactly one daemon is the reader: {cluster.workers()}"
    victim, survivor = (first, second) if readers[0] == first.pid else (second, first)
    # Frozen, the reader can neither deliver nor commit: the outbox rows it holds now are
    # the only ones it may have delivered without marking them sent (outbox.py).
    victim.send_signal(signal.SIGSTOP)
    with Session(cluster.engine) as s:
        in_flight = set(
            s.exec(
                select(OutboxMessage.message_id).where(
                    col(OutboxMessage.lease_owner).endswith(f":{victim.pid}"),
                    OutboxMessage.status == OutboxStatus.pending,
                )
            )
        )
    cluster.kill(victim)  # the reader dies: the other must take the mailbox over
    cluster.wait("the survivor reads the mailbox", lambda: cluster.workers()[survivor.pid], 60)
    sent = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
    acked = select(func.count()).select_from(InboundMessage).where(col(InboundMessage.acknowledged))
    cluster.wait("every application answered", lambda: cluster.count(sent) >= n, 180)
    cluster.wait("every message acknowledged", lambda: cluster.count(acked) >= n, 60)
    stack.wait_for_messages(CATCH, n, timeout=60)

    assert cluster.count(select(func.count()).select_from(Application)) == n
    assert cluster.count(invoiced) == n
    assert cluster.count(select(func.count(func.distinct(Invoice.application_id)))) == n
    got = replies(stack)
    assert cluster.count(sent) == n, "one reply row per application, no other mail"
    ids_per_thread = {mid: {m for irt, m in got if irt == mid} for mid in ids}
    assert all(len(v) == 1 for v in ids_per_thread.values()), ids_per_thread
    copies = Counter(m for _, m in got)
    again = {m: c for m, c in copies.items() if c > 1}
    assert set(again) <= in_flight, f"sent twice though not in flight at the kill: {again}"
    assert sum(again.values()) <= 2, f"one delivery at most was in flight: {again}"
    assert len(got) == n + sum(c - 1 for c in again.values()), "no stray reply"
    with stack.imap(INFO) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search("ALL") == [], "the mailbox was fully read and acknowledged"


def lock_waiters(engine_url: str) -> int:
    """How many sessions of this database wait for a lock (row, key or advisory)."""
    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_daemon_starting_while_another_configures_the_pool_starts_too(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Both daemons used to insert the new prefix row; the second died on its unique key
    # before its first pass, and killing the other left nobody to answer (the flaky run).
    databases = DatabaseFactory("postgresql", tmp_path, request)
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    url = databases()
    settings = load_settings(
        tmp_path / "config.toml", env={"MAILBOT_DATABASE_URL": url, "MAILBOT_SECRET_KEY": ""}
    )
    first, second = build_runtime(settings), build_runtime(settings)
    clock = FakeClock()
    try:
        with ThreadPoolExecutor(1) as pool, Session(first.engine) as starting:
            sync_prefixes(starting, settings.prefixes, now=clock())  # not committed yet
            peer = pool.submit(prepare, second)
            deadline = time.monotonic() + 60
            while lock_waiters(url) == 0 and not peer.done():
                assert time.monotonic() < deadline, "the second start never met the first"
                time.sleep(0.02)  # poll interval of the deadline loop
            starting.commit()
            peer.result(timeout=60)  # raised IntegrityError (barcodepool_prefix_key)
        with Session(first.engine) as s:
            pools = list(s.exec(select(BarcodePool.prefix)))
            configured = s.exec(
                select(func.count()).select_from(Event).where(Event.event == "prefix_configured")
            ).one()
        assert sorted(pools) == sorted(p.prefix for p in settings.prefixes)
        assert configured == len(settings.prefixes), "configured once, by the first"
    finally:
        first.engine.dispose()
        second.engine.dispose()
        databases.close()


def test_two_daemons_answer_60_applications_once_though_the_reader_is_killed(
    cluster: tuple[Cluster, MailStack],
) -> None:
    run_two_daemons_and_kill_one(*cluster, n=60)


@pytest.mark.slow
def test_two_daemons_answer_300_applications_once_though_the_reader_is_killed(
    cluster: tuple[Cluster, MailStack],
) -> None:
    run_two_daemons_and_kill_one(*cluster, n=300)
