"""Schema migrations (Alembic), run from code: `mailbot db upgrade`, tests, checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_REVISION = re.compile(r"^revision(?::\s*str)?\s*=\s*['\"](\w+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:[^=]*)=\s*(.+)$", re.M)


def script_heads(versions: Path = MIGRATIONS / "versions") -> frozenset[str]:
    """Heads of the migration scripts, read from their text without importing Alembic.

    Every CLI call checks the schema; importing Alembic for that costs ~0.4 s of start-up.
    A test checks that this agrees with Alembic's own view.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        text_ = script.read_text(encoding="utf-8")
        found = _REVISION.search(text_)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN.search(text_)
        if down is not None:
            parents.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    return frozenset(revisions - parents)


class NotMigratedError(Exception):
    """The database schema is not at the code's head revision."""


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revisions() -> frozenset[str]:
    """The heads according to the migration scripts themselves (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(_config()).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    """The revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return frozenset()
        return frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to `revision` in one transaction."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the models (developers only)."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def check_migrated(engine: Engine) -> None:
    """Raise NotMigratedError with a clear message unless the schema is current."""
    current, heads = current_revisions(engine), script_heads()
    if current != heads:
        have = ", ".join(sorted(current)) or "an empty database"
        need = ", ".join(sorted(heads))
        raise NotMigratedError(
            f"database schema is at {have}, the code needs {need}: run `mailbot db upgrade`"
        )
