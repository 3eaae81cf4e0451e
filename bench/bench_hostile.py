"""Hostile-mail benchmark (issue 15): what each attacker message costs the real daemon.

For each hostile kind of tests/e2e/hostile_mail.py, a fresh embedded site (Maildir in and
out, SQLite in a temp dir, or PostgreSQL with --pg) gets the hostile message followed by a
normal application, and `python -m mailbot run --once` (the real daemon, a subprocess)
handles both. A baseline run with the normal application alone comes first. Per run:
- wall: the whole `run --once` (start-up ~1.5 s of imports included), and the hostile
  message's own processing time (`message_processed` duration_ms in the daemon's log);
- peak RSS of the daemon's process tree (daemon + parse worker), sampled every 10 ms as a sum
  of the tree's resident sets, and ru_maxrss of the run from wait4 (the largest single
  process of the tree, sampled or not);
- what happened to both messages (status, kind, reply).
Targets: every hostile message done in ≤ 10 s, peak RSS ≤ 512 MB. Asserts nothing.
Run: .venv/bin/python -u bench/bench_hostile.py [--pg] [--only KIND]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select

from mailbot.cli.demo import deliver_to_maildir
from mailbot.storage.db import make_engine
from mailbot.storage.models import InboundMessage, OutboxMessage
from tests.e2e.hostile_mail import Hostile, hostile_kinds
from tests.proof.builders import application, sender

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
PAGE = resource.getpagesize()
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def _memory(pids: list[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) of `pids`: RSS counts the pages the forked parse worker
    shares with the daemon twice, PSS splits them (the machine's real cost)."""
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                rss += int(f.read().split()[1]) * PAGE
            with open(f"/proc/{p}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return rss, pss


class Sampler(threading.Thread):
    """Peak of the summed RSS of a process tree, read every 10 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_pss, self.done = pid, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):  # sampling period, not synchronisation
            rss, pss = _memory(_tree(self.pid))
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)


def _database(tmp: Path, *, pg: bool) -> tuple[str, str | None]:
    if not pg:
        return f"sqlite:///{tmp / 'mailbot.db'}", None
    name = f"bench_hostile_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG + name, name


def _drop(name: str | None) -> None:
    if name is None:
        return
    admin = create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _mailbot(site: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", *args],
        cwd=site,
        env={**os.environ, **env},
        stdout=(site / "run.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def one_run(hostile: Hostile | None, *, pg: bool) -> dict[str, object]:
    """A fresh site, the hostile message (if any) then a normal application, one pass."""
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as d:
        tmp = Path(d)
        site = tmp / "site"
        site.mkdir()
        shutil.copy(REPO / "config.toml", site / "config.toml")
        url, db_name = _database(tmp, pg=pg)
        env = {"MAILBOT_DATABASE_URL": url}
        try:
            if _mailbot(site, env, "db", "upgrade").wait() != 0:
                raise SystemExit((site / "run.log").read_text())
            inbox = site / "var/mail/inbox"
            if hostile is not None:
                deliver_to_maildir(inbox, hostile.build())
            deliver_to_maildir(inbox, application(sender("bench-normal")))
            started = time.monotonic()
            proc = _mailbot(site, env, "run", "--once")
            sampler = Sampler(proc.pid)
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
            sampler.done.set()
            sampler.join()
            proc.returncode = os.waitstatus_to_exitcode(status)
            return {
                "exit": proc.returncode,
                "wall_s": wall,
                "tree_peak_mb": sampler.peak / MB,
                "tree_pss_mb": sampler.peak_pss / MB,
                "maxrss_mb": usage.ru_maxrss / 1024,
                "durations": _durations(site / "run.log"),
                "rows": _rows(url),
            }
        finally:
            _drop(db_name)


def _durations(log: Path) -> list[float]:
    """duration_ms of every `message_processed` line, in processing order."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "message_processed":
            out.append(float(event.get("duration_ms", 0.0)))
    return out


def _rows(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            inbound = list(s.exec(select(InboundMessage).order_by(col(InboundMessage.id))))
            replies = {o.inbound_id: o.kind for o in s.exec(select(OutboxMessage))}
            return [f"{r.status}/{r.kind or '-'}→{replies.get(r.id, 'no reply')}" for r in inbound]
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    ap.add_argument("--only", default="", help="one hostile kind by name")
    args = ap.parse_args()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; "
        f"database: {'postgresql' if args.pg else 'sqlite'}"
    )
    kinds = [h for h in hostile_kinds() if not args.only or h.name == args.only]
    base = one_run(None, pg=args.pg)
    head = (
        f"{'kind':<22} {'exit':>4} {'run s':>6} {'Δ run s':>7} {'msg s':>6} {'RSS MB':>7} "
        f"{'PSS MB':>7} {'maxrss MB':>9}  outcome"
    )
    print(head)
    print("-" * len(head))

    def line(name: str, r: dict[str, object], msg_s: float) -> None:
        rows = r["rows"]
        assert isinstance(rows, list)
        wall, floor = r["wall_s"], base["wall_s"]
        assert isinstance(wall, float) and isinstance(floor, float)
        print(
            f"{name:<22} {r['exit']:>4} {wall:>6.2f} {wall - floor:>+7.2f} {msg_s:>6.2f} "
            f"{r['tree_peak_mb']:>7.0f} {r['tree_pss_mb']:>7.0f} {r['maxrss_mb']:>9.0f}  "
            f"{' | '.join(rows)}"
        )

    durations = base["durations"]
    assert isinstance(durations, list)
    line("(normal alone)", base, (durations or [0.0])[0] / 1000)
    for h in kinds:
        r = one_run(h, pg=args.pg)
        d = r["durations"]
        assert isinstance(d, list)
        line(h.name, r, (d or [0.0])[0] / 1000)
    print("run s: the whole `run --once`, start-up included; Δ run s: minus the normal-alone run")
    print("(what the hostile message added); msg s: the first message's processing (its")
    print("message_processed duration_ms); RSS MB / PSS MB: peaks of the sampled sums over the")
    print("daemon's process tree (daemon + parse worker; RSS counts shared pages once per")
    print("process, PSS splits them); maxrss MB: the largest single process of the run (wait4).")


if __name__ == "__main__":
    main()
