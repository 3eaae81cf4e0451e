"""Schema migrations (Alembic), run from code: `mailbot db upgrade`, tests, checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision. Checked against the scripts by a test, so every CLI call
# can verify the schema without importing Alembic (~0.4 s of start-up).
HEAD = "0001"


class NotMigratedError(Exception):
    """The database schema is not at the code's head revision."""


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The head according to the migration scripts themselves (imports Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations shipped"  # noqa: S101 - packaging invariant
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
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
    current, head = current_revision(engine), HEAD
    if current != head:
        have = current or "an empty database"
        raise NotMigratedError(
            f"database schema is at {have}, the code needs {head}: run `mailbot db upgrade`"
        )
