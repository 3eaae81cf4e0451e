"""Operator commands: a message's or application's whole story, and the quarantine."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from sqlmodel import Session, col, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from mailbot.cli.base import JsonOpt, app, fail, group, out, print_rows, runtime
from mailbot.guard import GuardedParseError
from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw
from mailbot.mail.reading import Unreadable, read_message
from mailbot.runtime import Runtime
from mailbot.service.scheduler import run_job
from mailbot.service.shunt import NotShunted, retry, shunt_table, shunted
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    Event,
    InboundMessage,
    InboundStatus,
    Invoice,
    OutboxMessage,
    Payment,
)
from mailbot.storage.queries import record_event

quarantine_app = group(
    "quarantine", "Everything set aside (messages, issuance, mail, jobs): look, retry, reject."
)


def _inbound(session: Session, ref: str) -> InboundMessage:
    try:
        row = session.get(InboundMessage, int(ref.lstrip("m")))
    except ValueError:
        row = None
    if row is None:
        fail(f"message {ref} not found (ids look like m12)")
    return row


INVOICE_NUMBER = re.compile(r"\d{4}-\d{5}")


def _story(session: Session, ref: str) -> list[Event]:
    """Every event caused by an inbound message (m12) or concerning an application
    (EAN-…) or an invoice (YYYY-NNNNN: the story of its application)."""
    if ref.upper().startswith("EAN-"):
        app_row = session.exec(select(Application).where(Application.number == ref.upper())).first()
        if app_row is None:
            fail(f"application {ref} not found")
        query = _application_events(session, app_row)
    elif INVOICE_NUMBER.fullmatch(ref):
        invoice = session.exec(select(Invoice).where(Invoice.number == ref)).first()
        if invoice is None:
            fail(f"invoice {ref} not found")
        app_row = session.get(Application, invoice.application_id)
        if app_row is None:
            raise InvariantError("an invoice's application is never deleted")
        query = _application_events(session, app_row)
    elif re.fullmatch(r"m?\d+", ref):
        row = _inbound(session, ref)
        query = select(Event).where(
            or_(
                col(Event.correlation_id) == row.correlation_id,
                (col(Event.entity) == "inbound") & (col(Event.entity_id) == row.id),
            )
        )
    else:
        fail(
            f"{ref!r} names nothing: give a message (m12), an application (EAN-2026-000012) "
            "or an invoice (2026-00012)"
        )
    return list(session.exec(query.order_by(col(Event.at), col(Event.id))))


def _application_events(session: Session, app_row: Application) -> SelectOfScalar[Event]:
    """The application's events, its invoices', their payments', its mails' and those caused
    by its inbound mail."""
    invoices = [
        i.id for i in session.exec(select(Invoice).where(Invoice.application_id == app_row.id))
    ]
    payments = [
        p.id for p in session.exec(select(Payment).where(col(Payment.invoice_id).in_(invoices)))
    ]
    mails = [
        o.id
        for o in session.exec(
            select(OutboxMessage).where(OutboxMessage.application_id == app_row.id)
        )
    ]
    inbound = session.exec(
        select(InboundMessage.correlation_id).where(InboundMessage.application_id == app_row.id)
    ).all()
    return select(Event).where(
        or_(
            (col(Event.entity) == "application") & (col(Event.entity_id) == app_row.id),
            (col(Event.entity) == "invoice") & col(Event.entity_id).in_(invoices),
            (col(Event.entity) == "payment") & col(Event.entity_id).in_(payments),
            (col(Event.entity) == "outbox") & col(Event.entity_id).in_(mails),
            col(Event.correlation_id).in_(inbound),
        )
    )


@app.command("log")
def log_command(
    ref: Annotated[
        str,
        typer.Argument(
            help="an inbound message (m12), an application (EAN-…) or an invoice (2026-00012)"
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """The whole story of a message, an application or an invoice, from the event log."""
    rt = runtime()
    with transaction(rt.engine) as session:
        events = _story(session, ref)
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    if as_json:
        columns = ("at", "entity", "id", "event", "from_state", "to_state", "data")
        rows = [
            (e.at, e.entity, e.entity_id, e.event, e.from_state, e.to_state, e.data) for e in events
        ]
    else:
        columns = ("when (UTC)", "what", "id", "event", "state", "details")
        rows = [
            (
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.entity,
                e.entity_id,
                e.event,
                f"{e.from_state} → {e.to_state}" if e.from_state else e.to_state,
                ", ".join(f"{k}={v}" for k, v in e.data.items() if v not in (None, ""))[:100],
            )
            for e in events
        ]
    print_rows(columns, rows, as_json=as_json)


@quarantine_app.command("list")
def quarantine_list(as_json: JsonOpt = False) -> None:
    """Everything set aside: quarantined messages, failed issuance, failed mail, failing jobs."""
    rt = runtime()
    with transaction(rt.engine) as session:
        items = shunted(session)
    if as_json:
        columns = ("set aside", "ref", "since", "attempts", "why", "about")
        rows = [(i.what, i.ref, i.since, i.attempts, i.reason, i.detail) for i in items]
        print_rows(columns, rows, as_json=True)
    else:
        out.print(shunt_table(items) if items else "quarantine is empty")


@quarantine_app.command("show")
def quarantine_show(ref: str) -> None:
    """Headers, attachments and the full error of one message."""
    rt = runtime()
    with transaction(rt.engine) as session:
        m = _inbound(session, ref)
        out.print(
            f"[bold]{m.correlation_id}[/] status={m.status} kind={m.kind or '-'} "
            f"attempts={m.attempts} key={m.key}",
            highlight=False,
        )
        out.print(
            f"from: {m.from_addr}\nsubject: {m.subject}\nsize: {m.size} bytes\n"
            f"archive: {rt.settings.archive_dir / m.archive_path}",
            highlight=False,
        )
        try:  # bounded like the daemon's read: a quarantined message may be hostile
            parsed = read_message(
                read_raw(rt.settings.archive_dir, m.archive_path), rt.settings.limits
            )
        except OSError as exc:
            out.print(f"archived copy unreadable: {exc}")
        except GuardedParseError:
            out.print("not parsed: the parser failed on it (see the error below)")
        else:
            if isinstance(parsed, Unreadable):
                out.print(f"not parsed: {parsed.reason}", highlight=False)
            else:
                for a in parsed.attachments:
                    out.print(
                        f"attachment: {a.filename} ({a.content_type}, {len(a.data)} bytes)",
                        highlight=False,
                    )
        if m.last_error:
            out.print(m.last_error, highlight=False)


def _move(
    session: Session,
    rt: Runtime,
    m: InboundMessage,
    to: InboundStatus,
    *,
    event: str,
    data: dict[str, Any],
) -> None:
    """An admin moves `m` to state `to`; the event log records it."""
    record_event(
        session,
        entity="inbound",
        entity_id=m.id or 0,
        event=event,
        at=rt.clock(),
        from_state=m.status,
        to_state=to,
        correlation_id=m.correlation_id,
        data=data,
    )
    m.status = to
    session.add(m)


def _requeue(ref: str) -> None:
    rt = runtime()
    try:
        with transaction(rt.engine) as session:
            done = retry(session, ref, now=rt.clock())
    except NotShunted as exc:
        fail(str(exc))
    out.print(done)
    if ref.startswith("job:"):
        name = ref.removeprefix("job:")
        ok = run_job(rt, name)
        out.print(f"job {name} ran now: {'ok' if ok else 'failed again (mailbot quarantine list)'}")


@quarantine_app.command("retry")
def quarantine_retry(
    ref: Annotated[str, typer.Argument(help="m12, EAN-2026-000012, o12 or job:invoice_sweep")],
) -> None:
    """Put one item set aside back to work (a message, an issuance, a mail or a job)."""
    _requeue(ref)


@quarantine_app.command("reject")
def quarantine_reject(
    ref: str, reason: Annotated[str, typer.Option(help="why it is dropped (kept in the log)")]
) -> None:
    """Give up on a quarantined message for good; it stays archived."""
    if not reason.strip():
        fail("--reason must say why (it is kept in the log)")
    reason = reason.strip()
    rt = runtime()
    with transaction(rt.engine) as session:
        m = _inbound(session, ref)
        if m.status != InboundStatus.quarantined:
            fail(f"message {ref} is {m.status}, not quarantined")
        _move(
            session,
            rt,
            m,
            InboundStatus.rejected,
            event="message_rejected",
            data={"reason": reason},
        )
    out.print(f"message {ref} rejected: {reason}")


@app.command("reprocess")
def reprocess(ref: str) -> None:
    """Process a failed or quarantined message again now (after fixing its cause)."""
    _requeue(ref if ref.startswith("m") else f"m{ref}")
