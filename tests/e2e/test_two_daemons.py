"""Two daemons on one PostgreSQL and one real Dovecot mailbox; one is SIGKILLed mid-run.

Every application is processed once and answered once: one invoice row each, and one
reply per application (by In-Reply-To) in the recipients' mailbox.
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
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from mailbot.demo import sample_message
from mailbot.storage.db import make_engine
from mailbot.storage.models import Application, InboundMessage, Invoice, OutboxMessage
from mailbot.storage.models_workers import Worker
from tests.conftest import REPO, DatabaseFactory
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
        ):
            text = set_key(text, section, key, value)
        (root / "config.toml").write_text(text)
        self.env = {
            **os.environ,
            "MAILBOT_IMAP_PASSWORD": stack.password,
            "MAILBOT_DATABASE_URL": db_url,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
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

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout}s\n{self.logs()}")
            time.sleep(0.1)  # poll interval of the deadline loop

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


def reply_counts(stack: MailStack) -> Counter[str]:
    """How many of our replies each In-Reply-To has in the recipients' mailbox."""
    with stack.imap(CATCH) as c:
        c.select_folder("INBOX", readonly=True)
        got = c.fetch(c.search("ALL"), [b"BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO)]"])
    counts: Counter[str] = Counter()
    for item in got.values():
        header = bytes(item[b"BODY[HEADER.FIELDS (IN-REPLY-TO)]"]).decode().strip()
        counts[header.partition(":")[2].strip()] += 1
    return counts


def run_two_daemons_and_kill_one(cluster: Cluster, stack: MailStack, n: int) -> None:
    mails, ids = applications(n)
    with stack.imap(INFO) as c:
        for raw in mails:
            c.append("INBOX", raw)
    first, second = cluster.start(), cluster.start()
    invoiced = select(func.count()).select_from(Invoice)
    cluster.wait(
        "a third of the applications invoiced", lambda: cluster.count(invoiced) >= n // 3, 180
    )
    with Session(cluster.engine) as s:
        reader = s.exec(select(Worker).where(col(Worker.reader))).first()
    assert reader is not None, "one daemon is the reader"
    victim = first if reader.id.endswith(f":{first.pid}") else second
    victim.send_signal(signal.SIGKILL)  # the reader dies: the other must take the mailbox over
    victim.wait()
    sent = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
    acked = select(func.count()).select_from(InboundMessage).where(col(InboundMessage.acknowledged))
    cluster.wait("every application answered", lambda: cluster.count(sent) >= n, 90)
    cluster.wait("every message acknowledged", lambda: cluster.count(acked) >= n, 60)
    stack.wait_for_messages(CATCH, n, timeout=60)

    assert cluster.count(select(func.count()).select_from(Application)) == n
    assert cluster.count(invoiced) == n
    assert cluster.count(select(func.count(func.distinct(Invoice.application_id)))) == n
    counts = reply_counts(stack)
    assert {mid: counts[mid] for mid in ids} == dict.fromkeys(ids, 1)
    assert sum(counts.values()) == n, "no duplicate or stray reply"
    with stack.imap(INFO) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search("ALL") == [], "the mailbox was fully read and acknowledged"


@pytest.mark.slow  # failed once in the last CI run (flaky under load); see the session note
def test_two_daemons_answer_60_applications_once_though_the_reader_is_killed(
    cluster: tuple[Cluster, MailStack],
) -> None:
    run_two_daemons_and_kill_one(*cluster, n=60)


@pytest.mark.slow
def test_two_daemons_answer_300_applications_once_though_the_reader_is_killed(
    cluster: tuple[Cluster, MailStack],
) -> None:
    run_two_daemons_and_kill_one(*cluster, n=300)
