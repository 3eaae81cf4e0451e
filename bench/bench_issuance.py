"""Issuing 10,000 codes: end to end and allocation alone, on SQLite and PostgreSQL.

    /tmp/venv/bin/python bench/bench_issuance.py [--codes N] [--pg postgresql://…/db]

End to end = allocation, registry, images, certificate and the (split) mails queued in the
outbox, as `issue_paid` does it; then sending them to a local Maildir, shown apart. Each
figure is measured in a fresh process (peak RSS is that process's) beside a floor from the
same run: the block reserve + DB-API executemany of as many rows, and openpyxl write_only.
Targets: ≤ 15 s end to end, ≤ 0.5 s allocation. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet
from openpyxl import Workbook
from sqlalchemy import insert, text
from sqlmodel import col, select

from mailbot.config import Prefix, load_settings
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import allocate, sync_prefixes
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.mail.outbox import Delivery, send_due
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.db import make_engine, transaction
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import Application, ApplicationState, ProductRow

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _runtime(url: str, var: Path) -> Runtime:
    env = {"MAILBOT_DATABASE_URL": url, "MAILBOT_SECRET_KEY": Fernet.generate_key().decode()}
    settings = load_settings(REPO / "config.toml", env=env)
    settings = dataclasses.replace(settings, var_dir=var, prefixes=(Prefix("4601234", 100_000),))
    rt = build_runtime(settings)
    rt.clock = lambda: NOW
    return rt


def _paid(rt: Runtime, codes: int) -> int:
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=NOW)
        app = Application(
            number="EAN-2026-000001",
            state=ApplicationState.paid,
            sender="buyer@client.example.test",
            form={"inn": "7707083893", "kpp": "773601001", "org_name": "ООО «Покупатель»",
                  "email": "buyer@client.example.test", "legal_address": "г. Москва"},
            created_at=NOW,
            updated_at=NOW,
        )  # fmt: skip
        session.add(app)
        session.flush()
        assert app.id is not None
        session.connection().execute(
            insert(ProductRow.__table__),  # type: ignore[attr-defined]
            [
                {"application_id": app.id, "row": i + 2, "name": f"Сок яблочный осветлённый {i}",
                 "product_type_code": "01", "product_type_name": "Продукты питания",
                 "brand": "Сад", "net_quantity": "1", "unit": "л", "okpd2": "", "tnved": "",
                 "note": ""}
                for i in range(codes)
            ],
        )  # fmt: skip
        return app.id


def _measured(task: Callable[[], object]) -> tuple[float, float]:
    started = time.perf_counter()
    task()
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_to_end(url: str, codes: int) -> tuple[float, float, float, int]:
    """(issue seconds, peak MB, send seconds, mails) for one application of `codes` rows."""
    with tempfile.TemporaryDirectory() as var:
        rt = _runtime(url, Path(var))
        _paid(rt, codes)
        seconds, rss = _measured(lambda: issue_paid(rt))
        transport = MaildirTransport(Path(var) / "outbox")
        started = time.perf_counter()
        report = send_due(rt.engine, Delivery(transport, rt.sender, rt.vault, rt.clock))
        return seconds, rss, time.perf_counter() - started, report.sent


def allocation(url: str, codes: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as var:
        rt = _runtime(url, Path(var))
        app_id = _paid(rt, codes)
        with transaction(rt.engine) as session:
            rows = list(session.exec(select(ProductRow).order_by(col(ProductRow.row))))

        def task() -> None:
            with transaction(rt.engine) as session:
                allocate(session, app_id, rows, now=NOW)

        return _measured(task)


def allocation_floor(url: str, codes: int) -> tuple[float, float]:
    """One counter UPDATE and a DB-API executemany of `codes` rows into a bare table."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE floor_codes (id INTEGER PRIMARY KEY, ean VARCHAR(13))"))
        conn.execute(text("CREATE TABLE floor_counter (n INTEGER)"))
        conn.execute(text("INSERT INTO floor_counter VALUES (0)"))

    def task() -> None:
        raw = engine.raw_connection()
        cur = raw.cursor()
        mark = "?" if url.startswith("sqlite") else "%s"
        cur.execute(f"UPDATE floor_counter SET n = n + {codes}")  # noqa: S608 - an int
        cur.executemany(
            f"INSERT INTO floor_codes (id, ean) VALUES ({mark}, {mark})",  # noqa: S608
            [(i, f"46012345{i:05d}") for i in range(codes)],
        )
        raw.commit()
        raw.close()

    return _measured(task)


def registry_floor(codes: int) -> tuple[float, float]:
    def task() -> None:
        wb = Workbook(write_only=True)
        ws = wb.create_sheet()
        for i in range(codes):
            ws.append([i, f"46012345{i:05d}", "Сок", "Продукты питания", "Сад", "1 л", "25.11"])
        wb.save(Path(tempfile.gettempdir()) / f"floor-{uuid.uuid4().hex}.xlsx")

    return _measured(task)


def _in_child(func: Callable[..., tuple[float, ...]], *args: object) -> tuple[float, ...]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def _databases(pg_admin: str) -> list[tuple[str, str, Callable[[], None]]]:
    folder = Path(tempfile.mkdtemp())
    result = []
    for n in range(3):
        url = f"sqlite:///{folder / f'bench-{n}.db'}"
        upgrade(make_engine(url))
        result.append(("sqlite", url, lambda: None))
    admin = psycopg.connect(pg_admin, autocommit=True)
    base = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    for _ in range(3):
        name = f"mailbot_bench_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(f"{base}/{name}")
        upgrade(engine)
        engine.dispose()

        def drop(name: str = name) -> None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        result.append(("postgresql", f"{base}/{name}", drop))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    n = args.codes
    dbs = _databases(args.pg)
    reg_s, reg_mb = _in_child(registry_floor, n)
    print(f"floor  openpyxl write_only {n} rows: {reg_s * 1000:7.0f} ms  {reg_mb:5.0f} MB")
    try:
        for kind in ("sqlite", "postgresql"):
            e2e_url, alloc_url, floor_url = [u for k, u, _ in dbs if k == kind]
            fs, _ = _in_child(allocation_floor, floor_url, n)
            s, mb = _in_child(allocation, alloc_url, n)
            print(f"{kind:10} allocate {n}: {s * 1000:7.0f} ms  {mb:5.0f} MB peak   "
                  f"floor (UPDATE + executemany) {fs * 1000:5.0f} ms  ratio {s / fs:4.1f}x   "
                  "target ≤ 500 ms")  # fmt: skip
            s, mb, send_s, mails = _in_child(end_to_end, e2e_url, n)
            print(f"{kind:10} issue {n} end to end: {s:6.2f} s  {mb:5.0f} MB peak   "
                  f"(registry floor {reg_s:4.2f} s; {int(mails)} mails, sent to a Maildir in "
                  f"{send_s:4.2f} s)   target ≤ 15 s")  # fmt: skip
    finally:
        for _, _, drop in dbs:
            drop()


if __name__ == "__main__":
    main()
