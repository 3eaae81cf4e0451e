"""Backlog throughput with 1 and 2 daemons (`mailbot run` processes) on one PostgreSQL.

N sample applications wait in the embedded Maildir inbox; the daemons start, one reads the
inbox (the elected reader), all process, issue and send; the figure is applications/s
from start until every reply is sent. The 1-worker run is the floor of the same run:
only the ratio travels (2 cores, shared with other work). Asserts nothing.
Run: /tmp/venv/bin/python bench/bench_workers.py [--n 40] [--pg postgresql://…/postgres]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func
from sqlmodel import Session, select

from mailbot.cli.demo import deliver_to_maildir, sample_message
from mailbot.storage.db import make_engine
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import OutboxMessage

REPO = Path(__file__).resolve().parents[1]


def run(workers: int, n: int, pg_admin: str) -> float:
    """Return applications/s for `workers` daemons on a fresh database and site."""
    name = f"mailbot_bench_{uuid.uuid4().hex[:8]}"
    base = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    site = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    with psycopg.connect(pg_admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(engine)
        text = (REPO / "config.toml").read_text()
        text = re.sub(  # the reply limit and the caps on mail to others (one form address)
            r"(?m)^(replies_per_sender_per_hour|applications_per_\w+|mails_per_recipient_per_day"
            r"|new_recipients_per_hour) = \d+",
            r"\1 = 100000",
            text,
        )
        (site / "config.toml").write_text(text)
        template = sample_message(to="info@example.test")
        for i in range(n):
            raw = template.replace(
                b"demo@client.example.test", f"a{i}@client.example.test".encode()
            )
            mid = f"Message-ID: <{uuid.uuid4().hex}@client.example.test>".encode()
            deliver_to_maildir(
                site / "var/mail/inbox", re.sub(rb"(?m)^Message-ID: .*$", mid, raw, count=1)
            )
        env = {**os.environ, "MAILBOT_DATABASE_URL": url}
        started = time.perf_counter()
        for w in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mailbot", "run"],
                    cwd=site,
                    env=env,
                    stdout=(site / f"daemon{w}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        sent = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
        while True:
            with Session(engine) as s:
                if s.exec(sent).one() >= n:
                    break
            time.sleep(0.05)  # poll interval
        return n / (time.perf_counter() - started)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        engine.dispose()
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(site, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    a = parser.parse_args()
    one = run(1, a.n, a.pg)
    two = run(2, a.n, a.pg)
    print(f"backlog of {a.n} applications on PostgreSQL, start → every reply sent")
    print(f"  1 worker : {one:6.1f} applications/s (floor)")
    print(f"  2 workers: {two:6.1f} applications/s ({two / one:.2f}× the floor)")


if __name__ == "__main__":
    main()
