"""Shared fixtures: databases (SQLite and the real PostgreSQL), settings, runtime, clock."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

from mailbot.config import Settings, load_settings
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.db import make_engine
from mailbot.storage.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("MAILBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database for this test session; dropped at the end."""
    name = f"mailbot_tpl_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN} is not reachable ({exc}); the test command "
            "(.ci/run) installs and starts it"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(_pg_url(name))
        upgrade(engine)
        engine.dispose()
        yield name
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file for this test session (per xdist worker), copied per test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


class DatabaseFactory:
    """Makes fresh migrated databases of one kind; drops them when the test ends.

    Both kinds are copies of a template migrated once per session (a file copy on SQLite,
    CREATE DATABASE ... TEMPLATE on PostgreSQL): migrating per test cost ~0.25 s each.
    """

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self._tmp, self._request = kind, tmp_path, request
        self._dropped: list[str] = []

    def __call__(self) -> str:
        if self.kind == "sqlite":
            path = self._tmp / f"db-{uuid.uuid4().hex[:8]}.sqlite"
            shutil.copyfile(self._request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        template = self._request.getfixturevalue("pg_template")
        name = f"mailbot_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._dropped.append(name)
        return _pg_url(name)

    def close(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            for name in self._dropped:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseFactory]:
    """Fresh databases of one kind (the test runs once per kind: SQLite and PostgreSQL)."""
    factory = DatabaseFactory(request.param, tmp_path, request)
    yield factory
    if factory.kind != "sqlite":
        factory.close()


@pytest.fixture
def db_url(db_factory: DatabaseFactory) -> str:
    """A fresh, migrated database for this test."""
    return db_factory()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    yield e
    e.dispose()


class FakeClock:
    """A clock tests move by hand; starts at 2026-11-25 10:00 UTC."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding a copy of the shipped config.toml, as a user would run mailbot."""
    d = tmp_path / "site"
    d.mkdir()
    shutil.copy(REPO / "config.toml", d / "config.toml")
    return d


@pytest.fixture
def settings(workdir: Path, db_url: str) -> Settings:
    env = {"MAILBOT_DATABASE_URL": db_url, "MAILBOT_SECRET_KEY": ""}
    return load_settings(workdir / "config.toml", env=env)


@pytest.fixture
def rt(settings: Settings, engine: Engine, clock: FakeClock) -> Runtime:
    runtime = build_runtime(settings, engine=engine)
    runtime.clock = clock
    return runtime


from tests.mailstack import mailstack, mailstack_factory  # noqa: E402, F401 - fixtures
