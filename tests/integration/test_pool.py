"""The barcode pool under load: 8 worker processes, a kill -9 mid-allocation, exhaustion."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
from collections import defaultdict

from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot.config import Prefix
from mailbot.issuance.issue import issue_paid, retry_waiting
from mailbot.issuance.pool import pool_states, sync_prefixes
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    ApplicationState,
    Barcode,
    BarcodePool,
    OutboxMessage,
    ProductRow,
)
from tests.conftest import REPO, FakeClock
from tests.fixtures.records import paid_application

WORKER = """
import os
import sys
from mailbot.config import load_settings
from mailbot.issuance.issue import allocate_paid
from mailbot.runtime import build_runtime
env = {**os.environ, "MAILBOT_DATABASE_URL": sys.argv[1]}
rt = build_runtime(load_settings(env=env))
print("ready", flush=True)
sys.stdin.readline()
print("allocated", allocate_paid(rt), flush=True)
"""


def _run_workers(db_url: str, count: int, **extra_env: str) -> list[int]:
    """Start `count` allocating processes, release them at once; their exit codes."""
    procs = []
    key = Fernet.generate_key().decode()
    for _ in range(count):
        env = {**os.environ, "MAILBOT_CONFIG": str(REPO / "config.toml"), **extra_env}
        env["MAILBOT_SECRET_KEY"] = key
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, db_url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
        )
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return [p.wait(timeout=300) for p in procs]


def _check_pool(engine: Engine) -> dict[int, int]:
    """Every code unique, refs contiguous per prefix, each application all or none."""
    with Session(engine) as s:
        codes = s.exec(select(Barcode)).all()
        pools = {p.id: p for p in s.exec(select(BarcodePool))}
        rows: defaultdict[int, int] = defaultdict(int)
        for r in s.exec(select(ProductRow)):
            rows[r.application_id] += 1
    assert len({c.ean for c in codes}) == len(codes)
    by_pool: dict[int, list[int]] = defaultdict(list)
    per_app: dict[int, int] = defaultdict(int)
    for c in codes:
        by_pool[c.pool_id].append(c.item_ref)
        per_app[c.application_id] += 1
    for pool_id, refs in by_pool.items():
        assert sorted(refs) == list(range(pools[pool_id].next_ref))  # no gap, no reuse
    for app_id, n in per_app.items():
        assert n == rows[app_id]
    for app_id in rows:  # each application's codes form blocks in row order
        mine = sorted((c for c in codes if c.application_id == app_id), key=lambda c: c.id or 0)
        for a, b in itertools.pairwise(mine):
            assert b.pool_id != a.pool_id or b.item_ref == a.item_ref + 1
    return per_app


def _fill(engine: Engine, clock: FakeClock, apps: int) -> int:
    with transaction(engine) as session:
        sync_prefixes(session, [Prefix("46012345", 700), Prefix("4609999", 100_000)], now=clock())
        total = 0
        for n in range(apps):
            rows = 1 + n % 5
            paid_application(session, clock(), n + 1, rows)
            total += rows
    return total


def test_eight_workers_allocating_for_400_applications_hand_out_each_code_once(
    engine: Engine, db_url: str, clock: FakeClock
) -> None:
    total = _fill(engine, clock, 400)
    codes = _run_workers(db_url, 8)
    assert codes == [0] * 8
    per_app = _check_pool(engine)
    assert len(per_app) == 400 and sum(per_app.values()) == total
    with Session(engine) as s:
        used = {p.prefix: p.used for p in pool_states(s)}
    assert used["46012345"] > 690  # the first prefix was filled before the second was touched
    assert used["46012345"] + used["4609999"] == total


def test_a_worker_killed_mid_allocation_leaves_no_partial_application(
    engine: Engine, db_url: str, clock: FakeClock
) -> None:
    total = _fill(engine, clock, 120)
    assert _run_workers(db_url, 1, MAILBOT_CRASH_AT="during_allocation") == [-9]
    with Session(engine) as s:  # killed with a block reserved and its codes inserted
        assert s.exec(select(Barcode)).all() == []
        assert {p.used for p in pool_states(s)} == {0}
    assert _run_workers(db_url, 3) == [0, 0, 0]
    per_app = _check_pool(engine)
    assert sum(per_app.values()) == total  # the killed worker's application was redone


def test_an_empty_pool_makes_the_application_wait_then_it_goes_on_when_a_prefix_is_added(
    rt: Runtime, clock: FakeClock
) -> None:
    rt.settings = dataclasses.replace(
        rt.settings,
        prefixes=(Prefix("460123456", 5),),
        pool_low_threshold=3,
        admin_email="admin@example.test",
    )
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=clock())
        first = paid_application(session, clock(), 1, 3, inn="7707083893")
        second = paid_application(session, clock(), 2, 4, inn="500100732259")
    assert issue_paid(rt) == 1
    with Session(rt.engine) as s:
        waiting = s.get(Application, second.id)
        assert waiting is not None and waiting.state == ApplicationState.paid
        assert "needs 4, 2 free" in waiting.waiting_reason
        issued = s.get(Application, first.id)
        assert issued is not None and issued.state == ApplicationState.issued
    assert issue_paid(rt) == 0  # waits; does not spin
    clock.advance(hours=1)
    retry_waiting(rt)  # a restart with the same config: still short, no second alert today
    assert issue_paid(rt) == 0
    rt.settings = dataclasses.replace(
        rt.settings, prefixes=(Prefix("460123456", 5), Prefix("4607777", 1000))
    )
    with transaction(rt.engine) as session:  # what daemon.prepare does on restart
        sync_prefixes(session, rt.settings.prefixes, now=clock())
    retry_waiting(rt)
    assert issue_paid(rt) == 1
    with Session(rt.engine) as s:
        done = s.get(Application, second.id)
        assert done is not None and done.state == ApplicationState.issued
        eans = s.exec(select(Barcode.ean).where(Barcode.application_id == second.id)).all()
        assert all(e.startswith("4607777") for e in eans) and len(eans) == 4
        alerts = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "pool_low")).all()
    assert [a.dedupe_key for a in alerts] == ["pool:460123456:low:2026-11-25"]
    assert alerts[0].recipients == ["admin@example.test"]
    assert "460123456" in alerts[0].body.decode()


def test_the_low_pool_alert_is_sent_again_the_next_day(rt: Runtime, clock: FakeClock) -> None:
    rt.settings = dataclasses.replace(
        rt.settings,
        prefixes=(Prefix("460123456", 10),),
        pool_low_threshold=8,
        admin_email="admin@example.test",
    )
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=clock())
        paid_application(session, clock(), 1, 3)
    issue_paid(rt)
    clock.advance(days=1)
    with transaction(rt.engine) as session:
        paid_application(session, clock(), 2, 1, inn="500100732259")
    issue_paid(rt)
    with Session(rt.engine) as s:
        keys = s.exec(
            select(OutboxMessage.dedupe_key)
            .where(OutboxMessage.kind == "pool_low")
            .order_by(col(OutboxMessage.id))
        ).all()
    assert keys == ["pool:460123456:low:2026-11-25", "pool:460123456:low:2026-11-26"]


def test_a_prefix_overlapping_a_known_one_is_refused(engine: Engine, clock: FakeClock) -> None:
    with transaction(engine) as session:
        sync_prefixes(session, [Prefix("4601234", 100)], now=clock())
        refused = sync_prefixes(
            session, [Prefix("4601234", 100), Prefix("46012345", 100)], now=clock()
        )
        assert refused == ["46012345"]
        assert [p.prefix for p in pool_states(session)] == ["4601234"]
