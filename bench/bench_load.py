"""Load benchmark: a backlog of N valid applications through one daemon pass; memory stays flat.

Embedded defaults (Maildir in, Maildir out) on SQLite, or PostgreSQL with --pg (a fresh
database is created and dropped). Prints messages/s for the whole pass (archive → parse →
invoice → commit → send), the process RSS sampled every --every messages while processing
(flat = no leak per message), and floors measured in the same run on the same files: bare
calamine and bare openpyxl (read-only) reads of the product list, and archive fsync + one
commit per message. Asserts nothing.

    python bench/bench_load.py [--n 1000] [--big] [--pg postgresql://…/postgres]

--big is the 10,000-message backlog (8-15 minutes per database on a 2-core machine).
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openpyxl
import psycopg
import structlog
from python_calamine import CalamineWorkbook
from sqlalchemy import func
from sqlmodel import Session, select

from bench.bench_backlog import application_files, application_mail, cpu_seconds, floor
from mailbot import guard
from mailbot.cli.demo import deliver_to_maildir
from mailbot.config import load_settings
from mailbot.mail.intake.maildir import MaildirIntake
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.runtime import Runtime, build_runtime
from mailbot.service.daemon import run_pass
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import InboundMessage, InboundStatus

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def site(root: Path, url: str | None) -> Runtime:
    root.mkdir()
    text = (REPO / "config.toml").read_text()  # one client: lift the per-address reply limit
    text = re.sub(  # the reply limit and the caps on mail to others (one form address)
        r"(?m)^(replies_per_sender_per_hour|applications_per_\w+|mails_per_recipient_per_day"
        r"|new_recipients_per_hour) = \d+",
        r"\1 = 1000000",
        text,
    )
    (root / "config.toml").write_text(text)
    env = {"MAILBOT_DATABASE_URL": url or f"sqlite:///{root / 'mailbot.db'}"}
    rt = build_runtime(load_settings(root / "config.toml", env={**env, "MAILBOT_SECRET_KEY": ""}))
    upgrade(rt.engine)
    return rt


def worker_rss() -> int:
    """RSS of the parse worker (0 between workers: it retires when its heap grows)."""
    worker = guard._worker
    if worker is None or not worker.alive:
        return 0
    try:
        with open(f"/proc/{worker.pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def processed_count(rt: Runtime) -> int:
    with Session(rt.engine) as s:
        return s.exec(
            select(func.count()).where(InboundMessage.status == InboundStatus.processed)
        ).one()


def read_floors(xlsx: bytes, repeat: int = 20) -> tuple[float, float]:
    """Seconds per bare calamine and bare openpyxl (read-only) read of the product list."""
    t0 = time.perf_counter()
    for _ in range(repeat):
        with CalamineWorkbook.from_filelike(io.BytesIO(xlsx)) as wb:
            wb.get_sheet_by_index(0).to_python()
    t1 = time.perf_counter()
    for _ in range(repeat):
        wb2 = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True, data_only=True)
        list(wb2.worksheets[0].iter_rows(values_only=True))
        wb2.close()
    t2 = time.perf_counter()
    return (t1 - t0) / repeat, (t2 - t1) / repeat


def run(n: int, every: int, url: str | None, label: str) -> None:
    files = application_files(50)
    raws = [application_mail(f"client{i}@example.test", files) for i in range(n)]
    cal, opx = read_floors(files[1])
    with tempfile.TemporaryDirectory(prefix="bench-load-", dir="/tmp") as tmp:
        rt = site(Path(tmp) / "site", url)
        for raw in raws:
            deliver_to_maildir(rt.settings.maildir.inbox, raw)
        intake = MaildirIntake(
            rt.settings.maildir.inbox, max_bytes=rt.settings.limits.max_message_bytes
        )
        samples: list[tuple[int, int, int]] = []
        seen = 0

        def sample() -> bool:  # asked before each message (and once per claimed batch)
            nonlocal seen
            seen += 1
            if seen % every == 1:  # a COUNT per message would itself grow with the table
                samples.append((processed_count(rt), rss(), worker_rss()))
            return False

        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        report = run_pass(rt, intake, MaildirTransport(rt.settings.maildir.outbox), sample)
        took = time.perf_counter() - t0
        samples.append((processed_count(rt), rss(), worker_rss()))
        guard.stop_worker()  # reaped: its CPU time joins ours
        cpu = cpu_seconds() - cpu0
        base = floor(rt, raws[: min(200, n)]) / min(200, n)
        rt.engine.dispose()
    rate = n / took
    print(f"{label}: backlog of {n} valid 50-row applications ({len(raws[0]) // 1024} KB each)")
    print(f"  received {report.received}, processed {report.processed}, sent {report.sent}")
    print(f"  mailbot pass               {rate:8.1f} messages/s  ({took:.1f} s)   target >= 20/s")
    print(
        f"  floor fsync + commit       {1 / base:8.1f} messages/s"
        f"  (mailbot x{1 / (base * rate):.1f})"
    )
    print(
        f"  floor calamine read        {1 / cal:8.1f} lists/s     (mailbot x{1 / (cal * rate):.1f})"
    )
    print(
        f"  floor openpyxl read-only   {1 / opx:8.1f} lists/s     (mailbot x{1 / (opx * rate):.1f})"
    )
    print(f"  CPU per message            {cpu / n * 1000:8.1f} ms (daemon + parse worker)")
    print(
        "  RSS while processing (messages done: daemon / parse worker): "
        + ", ".join(f"{k}: {v / MB:.0f} / {w / MB:.0f} MB" for k, v, w in samples)
    )
    growth = (samples[-1][1] - samples[1][1]) / MB if len(samples) > 2 else 0.0
    print(f"  daemon RSS growth after the first {every}: {growth:+.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--big", action="store_true", help="10,000 messages")
    ap.add_argument("--every", type=int, default=1000, help="RSS sample interval (messages)")
    ap.add_argument("--pg", default=None, help="admin URL: also run on a fresh PostgreSQL db")
    a = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    n = 10_000 if a.big else a.n
    run(n, a.every, None, "SQLite")
    if a.pg:
        name = f"bench_load_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(a.pg, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = a.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            run(n, a.every, f"{base}/{name}", "PostgreSQL")
        finally:
            with psycopg.connect(a.pg, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
