"""`mailbot invoices …`: the accountant's view of invoices and what can be done to one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import col, select

from mailbot.cli.base import JsonOpt, YesOpt, confirm, fail, group, out, print_rows, runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Event, Invoice, Payment

invoices_app = group("invoices", "Invoices: list, show, pay, cancel, PDF and re-send (YYYY-NNNNN).")


@invoices_app.command("list")
def invoices_list(
    unpaid: Annotated[bool, typer.Option(help="only unpaid")] = False,
    plain: Annotated[bool, typer.Option(help="numbers only, one per line")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List invoices (YYYY-NNNNN), newest first."""
    rt = runtime()
    with transaction(rt.engine) as session:
        query = (
            select(Invoice, Application.number)
            .join(Application, col(Application.id) == col(Invoice.application_id))
            .order_by(col(Invoice.id).desc())
        )
        if unpaid:
            query = query.where(Invoice.status == "issued")
        rows = [
            (inv.number, app_number, inv.total, inv.status, inv.issued_on, inv.due_on)
            for inv, app_number in session.exec(query)
        ]
    if plain:
        for r in rows:
            print(r[0])  # noqa: T201 - machine-readable output for scripts
        return
    columns = ("number", "application", "total", "status", "issued", "due")
    print_rows(columns, rows, as_json=as_json)


@invoices_app.command("pay")
def invoices_pay(
    number: str,
    amount: Annotated[
        str | None, typer.Option(help="amount received, RUB: 2 500,00 or 2500.00")
    ] = None,
    paid_on: Annotated[
        str | None, typer.Option("--date", help="day received: DD.MM.YYYY or YYYY-MM-DD")
    ] = None,
    force: Annotated[
        str | None, typer.Option(help="reason to accept a different amount (kept in the log)")
    ] = None,
    from_balance: Annotated[
        bool,
        typer.Option("--from-balance", help="pay it from the client's balance, as far as it goes"),
    ] = False,
) -> None:
    """Mark an invoice paid (idempotent); its codes go out on the next pass."""
    from mailbot.billing.entry import EntryError, parse_amount, parse_day, parse_reason
    from mailbot.billing.payments import pay_invoice

    rt = runtime()
    if from_balance:
        from mailbot.billing.corrections import pay_from_balance

        if amount is not None or paid_on is not None or force is not None:
            fail("--from-balance takes no --amount, --date or --force: the balance decides")
        result = pay_from_balance(rt, number)
    else:
        try:
            money = None if amount is None else parse_amount(amount)
            day = None if paid_on is None else parse_day(paid_on, today=rt.clock().date())
            reason = "" if force is None else parse_reason(force)
        except EntryError as exc:
            fail(str(exc))
        result = pay_invoice(rt, number, amount=money, paid_on=day, force_reason=reason)
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)


@invoices_app.command("cancel")
def invoices_cancel(
    number: str,
    reason: Annotated[str, typer.Option(help="why it is cancelled (kept in the log)")],
    yes: YesOpt = False,
) -> None:
    """Cancel an unpaid invoice: its number stays used, it is never paid, its application is
    cancelled; what the client's balance had covered goes back to the balance."""
    from mailbot.billing.corrections import cancel_invoice

    why = " ".join(reason.split())
    if not why:
        fail("--reason must say why")
    rt = runtime()
    confirm(f"cancel invoice {number}?", yes=yes)
    result = cancel_invoice(rt, number, reason=why)
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)


@invoices_app.command("show")
def invoices_show(number: str) -> None:
    """One invoice: buyer, lines, what paid it (payments, balance), status and due date."""
    from mailbot.billing.invoice_mail import find

    rt = runtime()
    with transaction(rt.engine) as session:
        found = find(session, number)
        if found is None:
            fail(f"invoice {number} not found")
        inv, app = found
        buyer = inv.buyer
        say = out.print
        say(f"[bold]invoice {inv.number}[/] {inv.status}", highlight=False)
        say(f"  issued {inv.issued_on:%d.%m.%Y}, due {inv.due_on:%d.%m.%Y}", highlight=False)
        say(f"  application {app.number} ({app.state})", highlight=False)
        say(
            f"  buyer {buyer.get('name') or '—'}, INN {buyer.get('inn') or '—'}"
            f"{', KPP ' + buyer['kpp'] if buyer.get('kpp') else ''}",
            highlight=False,
        )
        for ln in inv.lines:
            say(f"  line: {ln['name']}: {ln['qty']} {ln['unit']} × {ln['price']}", highlight=False)
        say(f"  total {inv.total} RUB (VAT {inv.vat_mode}: {inv.vat_amount})", highlight=False)
        say(f"  from the balance {inv.from_balance} RUB", highlight=False)
        say(f"  still due {_due(inv)} RUB", highlight=False)
        payments = session.exec(
            select(Payment).where(Payment.invoice_id == inv.id).order_by(col(Payment.id))
        )
        for p in payments:
            say(
                f"  payment {p.id}: {p.amount} RUB on {p.paid_on:%d.%m.%Y} from "
                f"INN {p.payer_inn or '—'} ({p.source}), {p.status}"
                f"{': ' + p.reason if p.reason else ''}",
                highlight=False,
            )
        events = session.exec(
            select(Event)
            .where(Event.entity == "invoice", Event.entity_id == inv.id)
            .order_by(col(Event.id))
        )
        for e in events:
            why = e.data.get("reason") or ""
            say(f"  {e.at:%Y-%m-%d %H:%M} {e.event}{': ' + why if why else ''}", highlight=False)


def _due(inv: Invoice) -> object:
    return inv.total - inv.from_balance if inv.status == "issued" else "0.00"


@invoices_app.command("pdf")
def invoices_pdf(
    number: str,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="where to write it (default: invoice-N.pdf)")
    ] = None,
) -> None:
    """Save the invoice PDF: the same document the invoice mail carries."""
    from mailbot.billing.invoice_mail import find, pdf_of

    rt = runtime()
    with transaction(rt.engine) as session:
        found = find(session, number)
        if found is None:
            fail(f"invoice {number} not found")
        pdf = pdf_of(*found, rt.settings)
    target = out_file or Path(f"invoice-{number}.pdf")
    try:
        target.write_bytes(pdf.data)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}")
    out.print(f"invoice {number} saved to {target} ({len(pdf.data)} bytes)", highlight=False)


@invoices_app.command("resend")
def invoices_resend(number: str) -> None:
    """Mail the invoice again (with its PDF) to the application's addresses."""
    from mailbot.billing.invoice_mail import resend

    result = resend(runtime(), number)
    if not result.ok:
        fail(result.message)
    out.print(result.message, highlight=False)
