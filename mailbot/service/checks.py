"""`mailbot check`: is this installation able to run? Each finding is one line.

Checks config, database reachability and schema, IMAP (connect, TLS, login, select) and
SMTP (connect, TLS, login). A check that cannot run because an earlier one failed is not
reported twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailbot.config import ConfigError, Settings, load_settings
from mailbot.invariant import InvariantError
from mailbot.mail.intake.imap import ImapError, ImapIntake
from mailbot.mail.transport import DeliveryError
from mailbot.storage.db import make_engine, missing_database
from mailbot.storage.migrate import NotMigratedError, check_migrated


@dataclass(frozen=True)
class Finding:
    what: str  # config | database | imap | smtp
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'} {self.what}: {self.message}"


def _ok(what: str, message: str) -> Finding:
    return Finding(what, ok=True, message=message)


def _bad(what: str, message: str) -> Finding:
    return Finding(what, ok=False, message=message)


def run_checks(path: Path | None = None, env: Mapping[str, str] | None = None) -> list[Finding]:
    """Every finding, config first; stops after config problems (nothing else can run)."""
    try:
        settings = load_settings(path, env)
    except ConfigError as exc:
        return [_bad("config", p) for p in exc.problems]
    return [_ok("config", "valid"), check_database(settings), *check_mail(settings)]


def check_database(settings: Settings) -> Finding:
    missing = missing_database(str(settings.database_url))
    if missing:
        return _bad("database", missing)  # not created by a check
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        check_migrated(engine)
    except NotMigratedError as exc:
        return _bad("database", str(exc))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _bad("database", f"cannot connect: {reason}")
    finally:
        engine.dispose()
    return _ok("database", f"{engine.dialect.name}, schema current")


def check_mail(settings: Settings) -> list[Finding]:
    from mailbot.mail.smtp import SmtpTransport
    from mailbot.service.daemon import open_intake, open_transport

    found = []
    if settings.intake == "imap":
        intake = open_intake(settings)
        if not isinstance(intake, ImapIntake):
            raise InvariantError('intake.kind = "imap"')
        try:
            found.append(_ok("imap", intake.check()))
        except ImapError as exc:
            found.append(_bad("imap", str(exc)))
    if settings.outbox == "smtp":
        transport = open_transport(settings)
        if not isinstance(transport, SmtpTransport):
            raise InvariantError('outbox.kind = "smtp"')
        try:
            found.append(_ok("smtp", transport.check()))
        except DeliveryError as exc:
            found.append(_bad("smtp", str(exc)))
        finally:
            transport.close()
    return found
