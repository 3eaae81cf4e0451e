"""Storage on SQLite and on the real PostgreSQL: schema, counters, leases, state machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot.config import Prefix
from mailbot.issuance.pool import allocate, pool_states, sync_prefixes
from mailbot.storage.db import make_engine, transaction
from mailbot.storage.migrate import (
    NotMigratedError,
    _config,
    check_migrated,
    head_revisions,
    script_heads,
    upgrade,
)
from mailbot.storage.models import (
    Application,
    ApplicationState,
    Event,
    InboundMessage,
    OutboxMessage,
    ProductRow,
)
from mailbot.storage.models_workers import Worker
from mailbot.storage.queries import (
    claim_inbound,
    next_number,
    release_dead_leases,
    replies_since,
)
from mailbot.workflow import IllegalTransition, transition
from tests.conftest import FakeClock


def test_migration_heads_read_from_the_scripts_agree_with_alembic() -> None:
    assert script_heads() == head_revisions()


def test_a_migrated_database_passes_and_an_unmigrated_one_is_refused(engine: Engine) -> None:
    check_migrated(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(NotMigratedError, match="run `mailbot db upgrade`"):
        check_migrated(engine)


def test_the_loop_guard_index_is_filled_from_mail_queued_before_the_upgrade(
    engine: Engine, clock: FakeClock
) -> None:
    from alembic import command

    with engine.begin() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    now = clock()
    # the table as revision 0005 had it (later revisions add columns the model knows)
    names: tuple[str, ...] = ("dedupe_key", "message_id", "kind", "body", "status")
    names += ("next_attempt_at", "created_at", "correlation_id", "subject", "last_error")
    names += ("attempts", "lease_owner")
    old = OutboxMessage.__table__  # type: ignore[attr-defined]
    outbox_0005 = sa.table("outboxmessage", *(sa.column(n, old.c[n].type) for n in names))
    outbox_0005.append_column(sa.column("recipients", sa.JSON()))
    with engine.begin() as conn:
        for n, (to, kind, status) in enumerate(
            [
                (["Robot@Example.test", "form@example.test"], "invoice", "sent"),
                (["robot@example.test"], "problems", "pending"),
                (["robot@example.test"], "problems", "suppressed"),
                (["robot@example.test"], "alert", "sent"),
            ]
        ):
            conn.execute(
                outbox_0005.insert().values(
                    dedupe_key=f"k{n}",
                    message_id=f"<{n}@x>",
                    kind=kind,
                    recipients=to,
                    body=b"",
                    status=status,
                    next_attempt_at=now,
                    created_at=now,
                    correlation_id="",
                    subject="",
                    last_error="",
                    attempts=0,
                    lease_owner="",
                )
            )
    upgrade(engine)
    with Session(engine) as session:
        assert replies_since(session, "ROBOT@example.test", now - timedelta(hours=1)) == 2
        assert replies_since(session, "form@example.test", now - timedelta(hours=1)) == 1
        assert replies_since(session, "robot@example.test", now + timedelta(seconds=1)) == 0


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def _take(engine: Engine, n: int) -> list[int]:
    got = []
    for _ in range(n):
        with transaction(engine) as session:
            got.append(next_number(session, "invoice", 2026))
    return got


def test_counter_hands_out_every_number_once_under_concurrent_workers(engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _take(engine, 25), range(8)))
    numbers = sorted(n for chunk in results for n in chunk)
    assert numbers == list(range(1, 201))


def test_a_rolled_back_transaction_gives_its_number_back(engine: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(engine) as session:
        assert next_number(session, "invoice", 2026) == 1
        raise RuntimeError("invoice rendering failed")
    with transaction(engine) as session:
        assert next_number(session, "invoice", 2026) == 1
        assert next_number(session, "invoice", 2027) == 1  # per year


def _application(
    session: Session, clock: FakeClock, number: str = "EAN-2026-000001"
) -> Application:
    app = Application(
        number=number, sender="a@example.test", created_at=clock(), updated_at=clock()
    )
    session.add(app)
    session.flush()
    return app


def test_the_lifecycle_moves_only_along_its_transitions_and_logs_each(
    engine: Engine, clock: FakeClock
) -> None:
    with transaction(engine) as session:
        app = _application(session, clock)
        for event in ("form_valid", "invoice_issued", "payment_matched", "codes_issued"):
            assert transition(session, app, event, now=clock(), correlation_id="m1") is None
        assert app.state == ApplicationState.issued
        error = transition(session, app, "form_valid", now=clock())
        assert error == IllegalTransition("EAN-2026-000001", "issued", "form_valid")
        assert app.state == ApplicationState.issued
    with Session(engine) as session:
        events = session.exec(select(Event).where(Event.entity == "application")).all()
        assert [(e.from_state, e.to_state) for e in events] == [
            ("received", "accepted"),
            ("accepted", "invoiced"),
            ("invoiced", "paid"),
            ("paid", "issued"),
        ]
        assert {e.correlation_id for e in events} == {"m1"}  # the refused event left no trace


def test_a_fix_loop_returns_to_received_and_cancel_is_refused_once_paid(
    engine: Engine, clock: FakeClock
) -> None:
    with transaction(engine) as session:
        app = _application(session, clock)
        assert transition(session, app, "form_invalid", now=clock()) is None
        assert transition(session, app, "correction_received", now=clock()) is None
        assert app.state == ApplicationState.received
        for event in ("form_valid", "invoice_issued", "payment_matched"):
            assert transition(session, app, event, now=clock()) is None
        assert isinstance(transition(session, app, "cancelled", now=clock()), IllegalTransition)


def _rows(session: Session, app: Application, n: int) -> list[ProductRow]:
    rows = [
        ProductRow(
            application_id=app.id or 0,
            row=i + 2,
            name=f"Товар {i}",
            product_type_code="01",
            product_type_name="Продукты питания",
        )
        for i in range(n)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def test_pool_references_are_never_reused_after_a_prefix_is_removed_and_added_again(
    engine: Engine, clock: FakeClock
) -> None:
    first, second = Prefix("4601234", 100_000), Prefix("46099999", 10)
    with transaction(engine) as session:
        sync_prefixes(session, [first], now=clock())
        app = _application(session, clock)
        codes = allocate(session, app.id or 0, _rows(session, app, 3), now=clock())
        assert codes is not None
        assert [c.item_ref for c in codes] == [0, 1, 2]
    with transaction(engine) as session:
        sync_prefixes(session, [second], now=clock())  # first removed from the config
        app = _application(session, clock, "EAN-2026-000002")
        assert allocate(session, app.id or 0, _rows(session, app, 11), now=clock()) is None
        codes = allocate(session, app.id or 0, _rows(session, app, 2), now=clock())
        assert codes is not None and all(c.ean.startswith("46099999") for c in codes)
    with transaction(engine) as session:
        sync_prefixes(session, [first, second], now=clock())
        app = _application(session, clock, "EAN-2026-000003")
        codes = allocate(session, app.id or 0, _rows(session, app, 1), now=clock())
        assert codes is not None and codes[0].ean.startswith("4601234") and codes[0].item_ref == 3
        states = {p.prefix: p for p in pool_states(session)}
        assert states["4601234"].used == 4 and states["46099999"].used == 2


def test_a_dead_workers_lease_is_released_and_a_live_ones_is_kept(
    engine: Engine, clock: FakeClock
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    with transaction(engine) as session:
        for n, owner in enumerate(
            (f"{host}:{dead.stdout.strip()}", f"{host}:{os.getpid()}", "elsewhere:1")
        ):
            session.add(
                InboundMessage(
                    key=f"k{n}",
                    sha256=f"{n}" * 64,
                    archive_path="x",
                    size=1,
                    received_at=clock(),
                    lease_owner=owner,
                    lease_until=clock() + timedelta(minutes=10),
                )
            )
            session.add(Worker(id=owner, reader=n == 0, started_at=clock(), last_pass_at=clock()))
    with transaction(engine) as session:
        assert release_dead_leases(session) == 1
    with Session(engine) as session:  # the dead one's heartbeat row is gone, the others stay
        assert sorted(w.id for w in session.exec(select(Worker))) == sorted(
            [f"{host}:{os.getpid()}", "elsewhere:1"]
        )
    with transaction(engine) as session:
        claimed = claim_inbound(
            session, now=clock(), lease=timedelta(minutes=1), max_attempts=5, limit=10
        )
        assert [m.key for m in claimed] == ["k0"]
