"""Engine and sessions: SQLite (WAL, foreign keys, BEGIN IMMEDIATE) or PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and write-locking transactions."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite opens transactions lazily and only for DML, so two writers can both read
    # then collide on upgrade. We take the write lock at BEGIN (BEGIN IMMEDIATE) instead:
    # every mailbot transaction that reads-then-writes is serialised, like a row lock.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A unit of work that only reads (`read_only`) takes no lock: under WAL a reader
        # never waits for the writer, so a web page does not queue behind the daemon.
        read = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def missing_database(url: str) -> str:
    """Why a command that only reads must not open `url` (empty when it may): SQLite would
    create an empty database file where none is."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return f"no database at {path}: run `mailbot db upgrade` to create it"
    return ""


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database itself is away, not that one item is bad.

    PostgreSQL restarted or our connection terminated, SQLite busy past its timeout or the
    disk full: the driver raises OperationalError (or a DBAPIError flagged as a lost
    connection). Such an error is the daemon's to wait out, never an item's to be failed for.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OperationalError):
            return True
        if isinstance(cur, DBAPIError) and cur.connection_invalidated:
            return True
        cur = cur.__cause__
    return False


_T = TypeVar("_T")
RETRY_WAITS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # seconds, ~16 s in all


def retry_outage(work: Callable[[], _T], waits: Sequence[float] = RETRY_WAITS) -> _T:
    """Run `work` (a whole transaction), again after each wait while the database is away.

    For a write that must not be lost once its effect is outside (a mail handed to the
    server): a terminated connection is replaced by the pool at the next try. Past the
    waits the outage error is raised.
    """
    for wait in waits:
        try:
            return work()
        except DBAPIError as exc:
            if not is_outage(exc):
                raise
            time.sleep(wait)
    return work()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


READ_ONLY = "mailbot_read_only"


@contextmanager
def read_only(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads (a page, a listing). On SQLite it begins without the
    write lock (see `_sqlite_pragmas`); on PostgreSQL it is an ordinary transaction. It ends
    with a commit, so what it loaded stays readable; a write inside it is a bug."""
    with Session(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
