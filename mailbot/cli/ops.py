"""Operator commands: a message's or application's whole story, and the quarantine."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlmodel import Session, col, or_, select

from mailbot.cli.base import app, fail, group, out, runtime
from mailbot.guard import GuardedParseError
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


def _story(session: Session, ref: str) -> list[Event]:
    """Every event caused by an inbound message (m12) or concerning an application (EAN-…)."""
    if ref.upper().startswith("EAN-"):
        app_row = session.exec(select(Application).where(Application.number == ref.upper())).first()
        if app_row is None:
            fail(f"application {ref} not found")
        invoices = [
            i.id for i in session.exec(select(Invoice).where(Invoice.application_id == app_row.id))
        ]
        mails = [
            o.id
            for o in session.exec(
                select(OutboxMessage).where(OutboxMessage.application_id == app_row.id)
            )
        ]
        inbound = list(
            session.exec(select(InboundMessage).where(InboundMessage.application_id == app_row.id))
        )
        correlation = [m.correlation_id for m in inbound]
        query = select(Event).where(
            or_(
                (col(Event.entity) == "application") & (col(Event.entity_id) == app_row.id),
                (col(Event.entity) == "invoice") & col(Event.entity_id).in_(invoices),
                (col(Event.entity) == "outbox") & col(Event.entity_id).in_(mails),
                col(Event.correlation_id).in_(correlation),
            )
        )
    else:
        row = _inbound(session, ref)
        query = select(Event).where(
            or_(
                col(Event.correlation_id) == row.correlation_id,
                (col(Event.entity) == "inbound") & (col(Event.entity_id) == row.id),
            )
        )
    return list(session.exec(query.order_by(col(Event.at), col(Event.id))))


@app.command("log")
def log_command(
    ref: Annotated[str, typer.Argument(help="an inbound message (m12) or an application (EAN-…)")],
) -> None:
    """The whole story of a message or an application, from the event log."""
    rt = runtime()
    table = Table("when (UTC)", "what", "id", "event", "state", "details")
    with transaction(rt.engine) as session:
        for e in _story(session, ref):
            state = f"{e.from_state} → {e.to_state}" if e.from_state else e.to_state
            details = ", ".join(f"{k}={v}" for k, v in e.data.items() if v not in (None, ""))
            table.add_row(
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.entity,
                str(e.entity_id),
                e.event,
                state,
                details[:100],
            )
    out.print(table)


@quarantine_app.command("list")
def quarantine_list() -> None:
    """Everything set aside: quarantined messages, failed issuance, failed mail, failing jobs."""
    rt = runtime()
    with transaction(rt.engine) as session:
        items = shunted(session)
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
