"""Schema migrations (Alembic), run from code: `mailbot db upgrade`, tests, checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest migrations' revisions (several while branches are not merged yet). A test checks
# them against the scripts, so every CLI call can verify the schema without importing Alembic
# (~0.4 s of start-up).
HEADS = frozenset({"0001"})


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
    current = current_revisions(engine)
    if current != HEADS:
        have = ", ".join(sorted(current)) or "an empty database"
        need = ", ".join(sorted(HEADS))
        raise NotMigratedError(
            f"database schema is at {have}, the code needs {need}: run `mailbot db upgrade`"
        )
