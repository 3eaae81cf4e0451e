"""Invoice numbers under concurrent workers on the real PostgreSQL: 1..N, no gap, no duplicate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot.billing.invoices import create_invoice
from mailbot.config import Settings, load_settings
from mailbot.runtime import utcnow
from mailbot.storage.db import make_engine, transaction
from mailbot.storage.models import Application, Invoice
from mailbot.storage.queries import next_number
from tests.conftest import DatabaseFactory

WORKERS = 8
pytestmark = pytest.mark.pg


@pytest.fixture
def pg_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    factory = DatabaseFactory("postgresql", tmp_path, request)
    yield factory()
    factory.close()


def _worker(url: str, settings: Settings, count: int, start: threading.Barrier) -> None:
    """Create `count` applications with their invoices, one transaction each, own engine."""
    engine = make_engine(url)
    start.wait()
    try:
        for _ in range(count):
            now = utcnow()
            with transaction(engine) as s:
                seq = next_number(s, "application", now.year)
                app = Application(
                    number=f"EAN-{now.year}-{seq:06d}",
                    state="accepted",
                    sender="applicant@client.test",
                    form={"inn": "7707083893", "kpp": "773601001", "org_name": "ООО «Тест»"},
                    created_at=now,
                    updated_at=now,
                )
                s.add(app)
                s.flush()
                create_invoice(s, app, count=1, new_client=True, settings=settings, now=now)
    finally:
        engine.dispose()


def _create_concurrently(url: str, workdir: Path, total: int) -> list[str]:
    settings = load_settings(workdir / "config.toml", env={"MAILBOT_DATABASE_URL": url})
    start = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _worker(url, settings, total // WORKERS, start)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    engine = make_engine(url)
    with Session(engine) as s:
        numbers = list(s.exec(select(Invoice.number)))
    engine.dispose()
    return numbers


def _check(numbers: list[str], total: int) -> None:
    year = utcnow().year
    seqs = sorted(int(n.split("-")[1]) for n in numbers if n.startswith(f"{year}-"))
    assert len(numbers) == total
    assert seqs == list(range(1, total + 1))


def test_eight_workers_creating_200_invoices_get_numbers_1_to_200(
    pg_url: str, workdir: Path
) -> None:
    _check(_create_concurrently(pg_url, workdir, 200), 200)


@pytest.mark.slow
def test_eight_workers_creating_2000_invoices_get_numbers_1_to_2000(
    pg_url: str, workdir: Path
) -> None:
    _check(_create_concurrently(pg_url, workdir, 2000), 2000)
