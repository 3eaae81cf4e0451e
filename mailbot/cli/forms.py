"""`mailbot forms …`: export our blank forms and samples; check an applicant's files from disk."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from mailbot.cli.base import config_path, fail, group, out, settings
from mailbot.config import DEFAULT_CONFIG
from mailbot.guard import Budget, guarded
from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import Document, Location, ParseResult, Problem
from mailbot.parsers.products_xlsx import ProductRow, parse_products
from mailbot.parsers.schema import APPLICATION_FIELDS, ProductType

forms_app = group("forms", "Our blank forms and samples; check an applicant's files.")
APPLICATION_EXTS = frozenset({"docx", "docm", "doc", "odt", "rtf", "pdf"})
SHOWN_ROWS = 20


@forms_app.command("export")
def forms_export(directory: Path) -> None:
    """Write the blank forms, the product types list and filled samples into DIRECTORY."""
    from mailbot.forms import export_forms
    from mailbot.runtime import shipped_product_types

    for path in export_forms(directory, shipped_product_types()):
        out.print(str(path))


def _limits_and_budget() -> tuple[Limits, Budget]:
    """The daemon's limits when a config is at hand, else the defaults."""
    explicit = config_path() or os.environ.get("MAILBOT_CONFIG")
    if not explicit and not Path(DEFAULT_CONFIG).is_file():
        return Limits(), Budget()
    lim = settings().limits
    return (
        Limits(max_file_bytes=lim.max_attachment_bytes, max_rows=lim.max_product_rows),
        Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb),
    )


def is_application(path: Path) -> bool:
    """True when the file is meant as the application (by its extension)."""
    return path.suffix.lower().lstrip(".") in APPLICATION_EXTS


def _show_form(form: ApplicationForm) -> None:
    for spec in APPLICATION_FIELDS:
        value = getattr(form, spec.key)
        if value is not None:
            out.print(f"  {spec.label}: {value}", highlight=False)
    for note in form.notes:
        out.print(f"  (примечание) {note}", highlight=False)


def _show_rows(rows: Sequence[ProductRow]) -> None:
    out.print(f"  rows: {len(rows)}", highlight=False)
    for r in rows[:SHOWN_ROWS]:
        qty = "" if r.net_quantity is None else f" {r.net_quantity:f} {r.unit or ''}"
        kind = f"{r.product_type_code} {r.product_type_name}" if r.product_type_code else "?"
        out.print(f"  {r.row:>5}  {r.name or '?'} | {kind}{qty.rstrip()}", highlight=False)
    if len(rows) > SHOWN_ROWS:
        out.print(f"  … {len(rows) - SHOWN_ROWS} more", highlight=False)


def check_files(
    paths: Sequence[Path], limits: Limits, budget: Budget, types: Sequence[ProductType]
) -> list[Problem]:
    """Parse each file as the daemon would, print what was read; return every problem."""
    problems: list[Problem] = []
    form: tuple[str, ApplicationForm] | None = None
    products: tuple[str, list[ProductRow]] | None = None
    for path in paths:
        data, name = path.read_bytes(), path.name
        out.print(f"{path}:", highlight=False)
        if is_application(path):
            app = guarded(
                functools.partial(parse_application, data, name, limits=limits),
                Location(file=name, document=Document.application),
                budget,
            )
            problems += app.problems
            if app.value is not None:
                _show_form(app.value)
                form = (name, app.value)
            continue
        result: ParseResult[list[ProductRow]] = guarded(
            functools.partial(parse_products, data, name, limits=limits, product_types=types),
            Location(file=name, document=Document.products),
            budget,
        )
        problems += result.problems
        if result.value is not None:
            _show_rows(result.value)
            products = (name, result.value)
    if form and products and products[1]:
        problems += check_pair(form[1], products[1], form[0], products[0])
    return problems


@forms_app.command("check")
def forms_check(
    files: Annotated[list[Path], typer.Argument(help="application (.docx) and/or product lists")],
) -> None:
    """Read applicants' files as the daemon would; print what was read and every problem.

    Exit code 1 when there is anything to fix.
    """
    from mailbot.mail.problem_text import count_phrase, render_problems
    from mailbot.mail.render import make_env
    from mailbot.runtime import shipped_product_types

    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}", 2)
    limits, budget = _limits_and_budget()
    problems = check_files(files, limits, budget, shipped_product_types())
    if not problems:
        out.print("no problems", highlight=False)
        return
    out.print(f"\nнужно исправить {count_phrase(len(problems))}:", highlight=False)
    out.print(render_problems(problems, make_env()), highlight=False)
    raise typer.Exit(1)
