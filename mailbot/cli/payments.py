"""`mailbot payments …`: import a 1C bank statement, and decide the payments held for a person."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress as RichProgress
from sqlmodel import Session, col, select

from mailbot.billing.entry import EntryError, parse_day
from mailbot.billing.payments import (
    Progress,
    apply_held,
    held_payments,
    import_file,
    reject_held,
)
from mailbot.cli.base import JsonOpt, YesOpt, confirm, err, fail, group, out, print_rows, runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Invoice, Payment

NEEDS_ACCOUNTANT = 3  # exit code of `payments import` when something was held or unreadable

payments_app = group("payments", "Bank statements and payments waiting for the accountant.")


@payments_app.command("import")
def payments_import(
    file: Annotated[Path, typer.Argument(help="1CClientBankExchange file (kl_to_1c.txt)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would happen, change nothing")
    ] = False,
) -> None:
    """Import a bank statement: exact matches pay their invoices, the rest are held.

    Exit code 0: everything applied, credited or already imported; 3: something was held or
    unreadable (see `mailbot payments pending`); 1: the file is not a statement. --dry-run
    runs the same import and rolls it back (same output and exit code, nothing changed).
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    with _progress_bar() as progress:
        summary = import_file(runtime(), data, dry_run=dry_run, progress=progress)
    for warning in summary.warnings:
        out.print(f"warning: {warning}", highlight=False)
    if summary.error is not None:
        fail(f"{file}: {summary.error}")
    for o in summary.outcomes:
        target = f" invoice {o.invoice}" if o.invoice else ""
        why = (
            f" ({o.reason})" if o.verdict in ("held", "unreadable", "skipped", "duplicate") else ""
        )
        out.print(
            f"line {o.line}: No {o.number or '-'} {o.amount} RUB from INN {o.payer_inn or '-'}: "
            f"{'would be ' if dry_run else ''}{o.verdict}{target}{why}",
            highlight=False,
        )
    out.print(summary.line, highlight=False)
    if dry_run:
        out.print("dry run: nothing was changed", highlight=False)
    if summary.needs_accountant:
        out.print("some payments need the accountant: mailbot payments pending", highlight=False)
        raise typer.Exit(NEEDS_ACCOUNTANT)


PROGRESS_FROM = 200  # documents: a shorter statement imports in the blink of an eye


@contextmanager
def _progress_bar() -> Iterator[Progress]:
    """A rich progress bar on stderr for a long statement, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    with RichProgress(console=err, transient=True) as bar:
        task = bar.add_task("matching payments", total=None, visible=False)

        def advance(done: int, total: int) -> None:
            if total >= PROGRESS_FROM:
                bar.update(task, completed=done, total=total, visible=True)

        yield advance


@payments_app.command("pending")
def payments_pending(as_json: JsonOpt = False) -> None:
    """Payments held for the accountant, with the reason."""
    rt = runtime()
    with transaction(rt.engine) as session:
        held = held_payments(session)
        numbers = _invoice_numbers(session, {p.invoice_id for p in held})
        rows = [
            (
                p.id,
                p.paid_on,
                p.amount,
                p.payer_inn,
                numbers.get(p.invoice_id or 0, ""),
                p.source,
                p.reason,
                p.purpose[:60],
            )
            for p in held
        ]
    if not rows and not as_json:
        out.print("no payments are held")
        return
    columns = ("id", "date", "amount", "payer INN", "invoice", "source", "reason", "purpose")
    print_rows(columns, rows, as_json=as_json)


@payments_app.command("list")
def payments_list(
    since: Annotated[str | None, typer.Option("--from", help="from this day (DD.MM.YYYY)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="up to this day (DD.MM.YYYY)")] = None,
    inn: Annotated[str | None, typer.Option(help="payer INN")] = None,
    status: Annotated[
        str | None, typer.Option(help="applied | credited | held | rejected | reversed")
    ] = None,
    invoice: Annotated[str | None, typer.Option(help="invoice number it paid or names")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every payment received (not only held ones), oldest first, filtered."""
    rt = runtime()
    if status is not None and status not in STATUSES:
        fail(f"--status {status!r}: one of {', '.join(STATUSES)}")
    today = rt.clock().date()
    try:
        first = None if since is None else parse_day(since, today=today)
        last = None if until is None else parse_day(until, today=today)
    except EntryError as exc:
        fail(str(exc))
    with transaction(rt.engine) as session:
        query = select(Payment).order_by(col(Payment.paid_on), col(Payment.id))
        if first is not None:
            query = query.where(Payment.paid_on >= first)
        if last is not None:
            query = query.where(Payment.paid_on <= last)
        if inn:
            query = query.where(Payment.payer_inn == inn.strip())
        if status:
            query = query.where(Payment.status == status)
        if invoice:
            inv = session.exec(select(Invoice.id).where(Invoice.number == invoice)).first()
            if inv is None:
                fail(f"invoice {invoice} not found")
            query = query.where(Payment.invoice_id == inv)
        found = session.exec(query).all()
        numbers = _invoice_numbers(session, {p.invoice_id for p in found})
        rows = [
            (
                p.id,
                p.paid_on,
                p.amount,
                p.payer_inn,
                p.status,
                numbers.get(p.invoice_id or 0, ""),
                p.source,
                p.reason,
            )
            for p in found
        ]
    columns = ("id", "date", "amount", "payer INN", "status", "invoice", "source", "reason")
    print_rows(columns, rows, as_json=as_json)


STATUSES = ("applied", "credited", "held", "rejected", "reversed")


def _invoice_numbers(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return {}
    query = select(Invoice.id, Invoice.number).where(col(Invoice.id).in_(wanted))
    return {i: n for i, n in session.exec(query) if i is not None}


@payments_app.command("reverse")
def payments_reverse(
    payment_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="why it is reversed (kept in the log)")],
    yes: YesOpt = False,
) -> None:
    """Reverse a mistaken payment: the row stays, marked reversed; its invoice is unpaid again
    (codes already issued stay issued) and what it credited leaves the balance."""
    from mailbot.billing.corrections import reverse_payment

    why = " ".join(reason.split())
    if not why:
        fail("--reason must say why")
    rt = runtime()
    confirm(f"reverse payment {payment_id}?", yes=yes)
    result = reverse_payment(rt, payment_id, reason=why)
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)


@payments_app.command("apply")
def payments_apply(
    payment_id: Annotated[int, typer.Argument(metavar="ID")],
    invoice: Annotated[str | None, typer.Option(help="invoice number it pays (YYYY-NNNNN)")] = None,
) -> None:
    """Apply a held payment: to its (or the given) invoice, else to the payer's balance."""
    result = apply_held(runtime(), payment_id, invoice_number=invoice)
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)


@payments_app.command("reject")
def payments_reject(
    payment_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="why it is not applied")],
) -> None:
    """Reject a held payment (it stays on record with the reason)."""
    if not reason.strip():
        fail("--reason must say why")
    result = reject_held(runtime(), payment_id, reason=reason.strip())
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)
