"""`mailbot run --once --dry-run`: what a pass would do, with nothing committed or sent.

The pass runs unchanged on a *copy* of the SQLite database (SQLite's online backup, so a
running daemon is not disturbed), with a transport that only records what it is handed;
the copy is deleted afterwards. Nothing is acknowledged in the mailbox. The only lasting
trace is raw mail added to the content-addressed archive, which is idempotent.
A rolled-back session would not do: every step commits its own transactions on the
engine. PostgreSQL has no cheap copy of a live database, so it is refused there.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mailbot.issuance.issue import issue_paid
from mailbot.mail.intake.base import Intake
from mailbot.mail.outbox import Delivery, send_due
from mailbot.mail.transport import Envelope
from mailbot.pipeline import process_pending, take_in
from mailbot.runtime import Runtime
from mailbot.storage.db import is_postgres, make_engine


class DryRunUnsupported(Exception):
    """Dry runs need a SQLite database."""


class RecordingTransport:
    """A transport that delivers nothing and remembers what it was handed."""

    def __init__(self) -> None:
        self.mail: list[tuple[bytes, Envelope]] = []

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        self.mail.append((data, envelope))

    def close(self) -> None:
        """Nothing to release."""


def dry_run_pass(rt: Runtime, intake: Intake) -> Iterator[str]:
    """Yield one line per mail the pass would send, then a summary line."""
    if is_postgres(rt.engine):
        raise DryRunUnsupported("--dry-run needs a SQLite database (PostgreSQL: not supported)")
    source = rt.engine.url.database or ""
    with tempfile.TemporaryDirectory(prefix="mailbot-dry-") as tmp:
        copy = Path(tmp) / "copy.db"
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        engine = make_engine(f"sqlite:///{copy}")
        try:
            dry = dataclasses.replace(rt, engine=engine)
            transport = RecordingTransport()
            received = take_in(dry, intake)
            processed = process_pending(dry)
            issued = issue_paid(dry)
            send_due(engine, Delivery(transport, dry.sender, dry.vault, dry.clock))
        finally:
            engine.dispose()
            intake.close()
    for data, env in transport.mail:
        subject = _subject(data)
        yield f"would send to {', '.join(env.recipients)}: {subject} ({len(data)} bytes)"
    yield (
        f"dry run: received {received}, processed {processed}, issued {issued}, "
        f"would send {len(transport.mail)}; nothing committed, nothing sent"
    )


def _subject(data: bytes) -> str:
    from email import policy
    from email.parser import BytesHeaderParser

    msg = BytesHeaderParser(policy=policy.default).parsebytes(data)
    return str(msg.get("Subject", ""))
