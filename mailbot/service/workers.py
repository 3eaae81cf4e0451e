"""Several daemons, one mailbox: who reads it, and the heartbeat every daemon writes.

Exactly one daemon reads and acknowledges the IMAP mailbox; every daemon processes, issues
and sends (inbound and outbox rows are claimed with leases). The reader is elected by a
lock that dies with its holder:

- PostgreSQL: `pg_try_advisory_lock` on a connection of its own, held for the daemon's
  life. When the reader dies its session ends, the lock is freed, and another daemon takes
  it on its next pass.
- SQLite (one machine): an exclusive `flock` on `var/reader.lock`, freed by the kernel
  when the holder dies.
"""

from __future__ import annotations

import fcntl
from datetime import datetime
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from mailbot.storage.db import is_postgres, transaction
from mailbot.storage.models_workers import Worker
from mailbot.storage.queries import worker_id

log = structlog.get_logger()
READER_LOCK_KEY = 0x6D61696C626F74  # "mailbot"


class ReaderLock:
    """Try to become (and stay) the mailbox reader; `held` says whether we are."""

    def __init__(self, engine: Engine, lock_file: Path) -> None:
        self._engine = engine
        self._lock_file = lock_file
        self._conn: Connection | None = None
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Return True when this daemon holds the lock (now or already)."""
        if is_postgres(self._engine):
            return self._try_postgres()
        return self._try_file()

    def _try_postgres(self) -> bool:
        if self._conn is not None:
            try:  # a broken session has lost the lock with it
                self._conn.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("reader_lock_lost")
                self.release()
        conn = self._engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": READER_LOCK_KEY}
            ).scalar()
            conn.commit()
        except DBAPIError:
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("reader_lock_taken", kind="postgres-advisory")
        return True

    def _try_file(self) -> bool:
        if self._file is not None:
            return True
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        f = self._lock_file.open("a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file = f
        log.info("reader_lock_taken", kind="flock", path=str(self._lock_file))
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ending the session frees the advisory lock
            except DBAPIError:
                log.debug("reader_lock_close_failed")
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None


def heartbeat(
    engine: Engine, *, now: datetime, started_at: datetime, reader: bool, imap_contact: bool
) -> None:
    """Write this daemon's row: last pass, role, and last IMAP contact when it had one."""
    with transaction(engine) as session:
        row = session.get(Worker, worker_id())
        if row is None:
            row = Worker(id=worker_id(), started_at=started_at, last_pass_at=now)
        row.reader, row.last_pass_at = reader, now
        if imap_contact:
            row.last_imap_at = now
        session.add(row)


def forget(engine: Engine) -> None:
    """Remove this daemon's row (clean stop)."""
    with transaction(engine) as session:
        row = session.get(Worker, worker_id())
        if row is not None:
            session.delete(row)
