"""`mailbot payments …`: import a 1C bank statement, and decide the payments held for a person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailbot.billing.payments import apply_held, held_payments, import_file, reject_held
from mailbot.cli.base import fail, group, out, runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Invoice

NEEDS_ACCOUNTANT = 3  # exit code of `payments import` when something was held or unreadable

payments_app = group("payments", "Bank statements and payments waiting for the accountant.")


@payments_app.command("import")
def payments_import(
    file: Annotated[Path, typer.Argument(help="1CClientBankExchange file (kl_to_1c.txt)")],
) -> None:
    """Import a bank statement: exact matches pay their invoices, the rest are held.

    Exit code 0: everything applied, credited or already imported; 3: something was held or
    unreadable (see `mailbot payments pending`); 1: the file is not a statement.
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    summary = import_file(runtime(), data)
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
            f"{o.verdict}{target}{why}",
            highlight=False,
        )
    out.print(summary.line, highlight=False)
    if summary.needs_accountant:
        out.print("some payments need the accountant: mailbot payments pending", highlight=False)
        raise typer.Exit(NEEDS_ACCOUNTANT)


@payments_app.command("pending")
def payments_pending() -> None:
    """Payments held for the accountant, with the reason."""
    rt = runtime()
    table = Table("id", "date", "amount", "payer INN", "invoice", "source", "reason", "purpose")
    with transaction(rt.engine) as session:
        rows = held_payments(session)
        for p in rows:
            invoice = session.get(Invoice, p.invoice_id) if p.invoice_id else None
            table.add_row(
                str(p.id),
                p.paid_on.isoformat(),
                str(p.amount),
                p.payer_inn,
                invoice.number if invoice else "",
                p.source,
                p.reason,
                p.purpose[:60],
            )
    if not rows:
        out.print("no payments are held")
        return
    out.print(table)


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
