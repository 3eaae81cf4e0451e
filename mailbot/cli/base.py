"""The `mailbot` root command, its sub-command groups and what every command shares."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from mailbot.config import ConfigError, Settings, load_settings
from mailbot.logging import configure_logging
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.db import is_outage, missing_database
from mailbot.storage.migrate import NotMigratedError, check_migrated

app = typer.Typer(
    help="mailbot: the barcode registration back office, run by e-mail.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,  # a bug prints a plain traceback, not pages of panels
)


def group(name: str, help_text: str) -> typer.Typer:
    """A sub-command group (`mailbot NAME …`), registered on the root command."""
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


# Piped output (scripts, logs) gets wide lines instead of rich's 80-column wrapping.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="config.toml to use (default: $MAILBOT_CONFIG or ./config.toml)"
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


class _State:
    config: Path | None = None


LOG_LEVELS = ("debug", "info", "warning", "error")


def _print_version(value: bool) -> None:  # noqa: FBT001 - typer passes an option's value
    if value:
        out.print(f"mailbot {version('mailbot')}", highlight=False)
        raise typer.Exit


@app.callback()
def main_options(
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="|".join(LOG_LEVELS))] = "info",
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Global options."""
    del show_version  # handled (eagerly) by its callback
    _State.config = config
    configure_logging(level=one_of(log_level, LOG_LEVELS, what="--log-level"))


def one_of(value: str, allowed: Iterable[str], *, what: str) -> str:
    """`value` when it is one of `allowed`; else one line naming them all, exit 1."""
    names = list(allowed)
    if value not in names:
        fail(f"{what} {value!r} is not one of: {', '.join(names)}")
    return value


def config_path() -> Path | None:
    """The --config given on the command line, if any."""
    return _State.config


def settings() -> Settings:
    """The settings, or exit 2 with one line per bad key."""
    try:
        return load_settings(_State.config)
    except ConfigError as exc:
        err.print("[bold red]configuration error:[/]", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(2) from None


def runtime(*, migrated: bool = True) -> Runtime:
    """The runtime; refuses (exit 2, one line) a database that is missing, unreachable or
    not migrated. Only `migrated=False` (db upgrade) may create a SQLite database file."""
    s = settings()
    if migrated and (missing := missing_database(str(s.database_url))):
        fail(missing, 2)
    rt = build_runtime(s)
    if migrated:
        try:
            check_migrated(rt.engine)
        except NotMigratedError as exc:
            fail(str(exc), 2)
        except SQLAlchemyError as exc:
            fail(database_error(exc), 2)
    return rt


def database_error(exc: SQLAlchemyError) -> str:
    """One line for a database that cannot be reached (no traceback, no SQL)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"database unreachable: {reason[0] if reason else type(exc).__name__}"


def main() -> None:
    """The `mailbot` command: a lost database ends any command with one line, exit 2."""
    try:
        app(prog_name="mailbot")  # also under `python -m mailbot`: completion keys on the name
    except KeyboardInterrupt:
        sys.exit(130)
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise
        err.print(f"[bold red]error:[/] {escape(database_error(exc))}", highlight=False)
        sys.exit(2)


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


def confirm(question: str, *, yes: bool) -> None:
    """Ask before an action that cannot be undone; `--yes` answers for a script.

    Without a terminal and without --yes it refuses (exit 1) rather than guess.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} — not confirmed (no terminal); pass --yes to confirm")
    if not typer.confirm(question, default=False):
        fail("cancelled, nothing changed")


def read_text_file(path: Path) -> str:
    """A UTF-8 text file named on the command line, or one line saying why it cannot be read."""
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")


JsonOpt = Annotated[bool, typer.Option("--json", help="print the rows as a JSON array")]


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], *, as_json: bool) -> None:
    """A list command's output: a rich table for a person, or `--json` for a script.

    JSON keys are the column names; values keep their type where JSON has one (numbers of
    money are strings, so no kopeck is lost to a float).
    """
    if as_json:
        sys.stdout.write(
            json.dumps(
                [dict(zip(columns, map(_jsonable, r), strict=True)) for r in rows],
                ensure_ascii=False,
                indent=1,
                default=str,
            )
            + "\n"
        )
        return
    table = Table(*columns)
    for r in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in r))  # no markup in data
    out.print(table)


def stamp(at: datetime | None, *, as_json: bool, fmt: str = "%Y-%m-%d %H:%M") -> object:
    """A moment for a table (to the minute, UTC) or for --json (ISO 8601, whole)."""
    if at is None or as_json:
        return at
    return at.strftime(fmt)


def clip(text: str, width: int, *, as_json: bool) -> str:
    """A long text cut to `width` for a table; whole for --json (a script wants all of it)."""
    return text if as_json else text[:width]


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | str | dict | list):
        return value  # dict and list: JSON columns (an event's data), already JSON
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # Decimal and anything else: its exact text
