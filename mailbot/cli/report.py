"""`mailbot report`: invoices and payments of a period, for the accountant's reconciliation."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mailbot.cli.base import app, fail, out, runtime
from mailbot.storage.db import transaction


class Format(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


@app.command("report")
def report(
    since: Annotated[str, typer.Option("--from", help="first day: DD.MM.YYYY or YYYY-MM-DD")],
    until: Annotated[str, typer.Option("--to", help="last day, included")],
    fmt: Annotated[Format, typer.Option("--format", help="xlsx or csv")] = Format.xlsx,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="file to write (csv: FILE-invoices.csv and FILE-payments.csv)"),
    ] = None,
) -> None:
    """Invoices issued and payments received in a period, in columns to lay beside a 1C
    statement (xlsx: sheets «Счета» and «Платежи»; csv: two files, «;»-separated)."""
    from mailbot.billing.entry import EntryError, parse_day
    from mailbot.billing.report import period_report, to_csv, to_xlsx

    rt = runtime()
    today = rt.clock().date()
    try:
        first, last = parse_day(since, today=today), parse_day(until, today=today)
    except EntryError as exc:
        fail(str(exc))
    if last < first:
        fail(f"--to {last:%d.%m.%Y} is before --from {first:%d.%m.%Y}")
    with transaction(rt.engine) as session:
        data = period_report(session, first, last)
    stem = out_file or Path(f"report-{first.isoformat()}-{last.isoformat()}.{fmt.value}")
    if fmt is Format.xlsx:
        files = {stem: to_xlsx(data)}
    else:
        base = stem.with_suffix("") if stem.suffix == ".csv" else stem
        invoices, payments = to_csv(data)
        files = {
            base.with_name(f"{base.name}-invoices.csv"): invoices,
            base.with_name(f"{base.name}-payments.csv"): payments,
        }
    for path, content in files.items():
        try:
            path.write_bytes(content)
        except OSError as exc:
            fail(f"cannot write {path}: {exc.strerror}")
    out.print(
        f"{len(data.invoices)} invoices ({data.invoices_total} RUB), "
        f"{len(data.payments)} payments ({data.payments_total} RUB) "
        f"from {first:%d.%m.%Y} to {last:%d.%m.%Y}: {', '.join(map(str, files))}",
        highlight=False,
    )
