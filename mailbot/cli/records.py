"""Core commands: run, demo, status, schema, and the records admins look at."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import col, select

from mailbot.cli.base import (
    JsonOpt,
    app,
    clip,
    fail,
    group,
    one_of,
    out,
    print_rows,
    runtime,
    settings,
    stamp,
)
from mailbot.storage.db import transaction
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import (
    Application,
    ApplicationState,
    Barcode,
    InboundMessage,
    InboundStatus,
    Invoice,
    OutboxMessage,
    OutboxStatus,
    ProductRow,
)

applications_app = group("applications", "Applications and their states.")
outbox_app = group("outbox", "Outgoing mail.")
db_app = group("db", "Database schema.")
messages_app = group("messages", "Inbound messages.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the current version."""
    rt = runtime(migrated=False)
    upgrade(rt.engine)
    out.print("database schema is current")


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="with --once: process and render, send nothing")
    ] = False,
) -> None:
    """Run the daemon: take in mail, process, issue, send."""
    from mailbot.service.daemon import open_intake, open_transport, prepare, run_forever, run_pass
    from mailbot.service.scheduler import run_job

    rt = runtime()
    if dry_run:
        from mailbot.service.dryrun import DryRunUnsupported, dry_run_pass

        if not once:
            fail("--dry-run needs --once")
        try:
            for line in dry_run_pass(rt, open_intake(rt.settings)):
                out.print(line, highlight=False, markup=False)
        except DryRunUnsupported as exc:
            fail(str(exc))
        return
    prepare(rt)
    intake, transport = open_intake(rt.settings), open_transport(rt.settings)
    if not once:
        metrics = None
        if rt.settings.metrics_port:
            from mailbot.service.metrics import Metrics

            metrics = Metrics(rt.engine)
            metrics.serve(rt.settings.metrics_port)
        code = run_forever(rt, intake, transport, idle_timeout=5.0, metrics=metrics)
        if code:
            raise typer.Exit(code)  # systemd (Restart=on-failure) starts a fresh daemon
        return
    try:
        run_job(rt, "invoice_sweep")  # reminders and expiry are due on a one-shot pass too
        report = run_pass(rt, intake, transport)
    finally:
        intake.close()
        transport.close()
    out.print(
        f"received {report.received}, processed {report.processed}, "
        f"issued {report.issued}, sent {report.sent}"
    )
    if rt.settings.outbox == "maildir":
        out.print(f"outgoing mail: {rt.settings.maildir.outbox / 'new'}")


@app.command()
def demo() -> None:
    """Put a realistic sample application into the embedded inbox (then: mailbot run --once)."""
    from mailbot.cli.demo import drop_sample

    s = settings()
    if s.intake != "maildir":
        fail('demo needs intake.kind = "maildir"')
    path = drop_sample(s.maildir.inbox, to=s.service.email)
    out.print(f"sample application from demo@client.example.test placed in {path}")


@app.command()
def status() -> None:
    """Counts by state, and what is stuck and why."""
    from mailbot.service.status import render_status

    rt = runtime()
    with transaction(rt.engine) as session:
        render_status(session, rt, out)


@applications_app.command("list")
def applications_list(
    state: Annotated[
        str | None, typer.Option(help=f"only this state: {', '.join(ApplicationState)}")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List applications, newest first."""
    if state is not None:
        one_of(state, ApplicationState, what="state")
    rt = runtime()
    with transaction(rt.engine) as session:
        query = select(Application).order_by(col(Application.id).desc()).limit(limit)
        if state:
            query = query.where(Application.state == state)
        rows = [
            (
                a.number,
                a.state,
                a.kind,
                a.sender,
                a.form.get("org_name") or "",
                stamp(a.created_at, as_json=as_json),
            )
            for a in session.exec(query)
        ]
    print_rows(("number", "state", "kind", "sender", "org", "created"), rows, as_json=as_json)


@applications_app.command("show")
def applications_show(number: str) -> None:
    """Everything about one application: form, products, problems, invoices, codes, mail."""
    rt = runtime()
    with transaction(rt.engine) as session:
        a = session.exec(select(Application).where(Application.number == number)).first()
        if a is None:
            fail(f"application {number} not found")
        out.print(f"[bold]{a.number}[/] state={a.state} kind={a.kind} sender={a.sender}")
        if a.waiting_reason:
            out.print(f"waiting: {a.waiting_reason}")
        for key, value in a.form.items():
            if value:
                out.print(f"  {key}: {value}", highlight=False)
        for p in a.problems:
            out.print(f"  problem {p['code']}: {p['location']} {p.get('value') or ''}")
        rows = session.exec(select(ProductRow).where(ProductRow.application_id == a.id))
        codes = {
            b.product_row_id: b.ean
            for b in session.exec(select(Barcode).where(Barcode.application_id == a.id))
        }
        for r in rows:
            out.print(f"  row {r.row}: {r.name} [{r.product_type_code}] {codes.get(r.id or 0, '')}")
        for inv in session.exec(select(Invoice).where(Invoice.application_id == a.id)):
            out.print(f"  invoice {inv.number}: {inv.total} RUB, {inv.status}")
        for m in session.exec(select(OutboxMessage).where(OutboxMessage.application_id == a.id)):
            out.print(f"  mail {m.kind} → {', '.join(m.recipients)}: {m.status}")


@outbox_app.command("list")
def outbox_list(
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 50,
    status: Annotated[
        str | None, typer.Option(help=f"only this status: {', '.join(OutboxStatus)}")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Outgoing mail, newest first."""
    if status is not None:
        one_of(status, OutboxStatus, what="status")
    rt = runtime()
    with transaction(rt.engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
        if status:
            query = query.where(OutboxMessage.status == status)
        rows = [
            (
                m.id,
                m.kind,
                ", ".join(m.recipients),
                m.status,
                m.attempts,
                clip(m.subject, 60, as_json=as_json),
                clip(m.last_error, 60, as_json=as_json),
            )
            for m in session.exec(query)
        ]
    columns = ("id", "kind", "to", "status", "attempts", "subject", "error")
    print_rows(columns, rows, as_json=as_json)


@messages_app.command("list")
def messages_list(
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 50,
    status: Annotated[
        str | None, typer.Option(help=f"only this status: {', '.join(InboundStatus)}")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Inbound messages, newest first."""
    if status is not None:
        one_of(status, InboundStatus, what="status")
    rt = runtime()
    with transaction(rt.engine) as session:
        query = select(InboundMessage).order_by(col(InboundMessage.id).desc()).limit(limit)
        if status:
            query = query.where(InboundMessage.status == status)
        rows = [
            (
                m.correlation_id,
                m.from_addr,
                clip(m.subject, 50, as_json=as_json),
                m.kind,
                m.status,
                m.attempts,
                _last_line(m.last_error, 60, as_json=as_json),
            )
            for m in session.exec(query)
        ]
    columns = ("id", "from", "subject", "kind", "status", "attempts", "error")
    print_rows(columns, rows, as_json=as_json)


def _last_line(error: str, width: int, *, as_json: bool) -> str:
    """The table shows the last line of a traceback; --json gives it whole."""
    if as_json or not error:
        return error
    return error.strip().splitlines()[-1][:width]


@messages_app.command("retry")
def messages_retry(message: Annotated[str, typer.Argument(help="id, e.g. m12 or 12")]) -> None:
    """Re-run a failed or quarantined message (the same as `quarantine retry`)."""
    from mailbot.cli.ops import quarantine_retry

    quarantine_retry(message)
