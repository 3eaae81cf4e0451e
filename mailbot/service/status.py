"""`mailbot status`: counts by state and what is stuck, with the reason, at a glance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, func, select

from mailbot.issuance.pool import pool_states
from mailbot.runtime import Runtime
from mailbot.service.shunt import render_shunt
from mailbot.storage.models import (
    Application,
    ApplicationState,
    InboundMessage,
    InboundStatus,
    Invoice,
    OutboxMessage,
    OutboxStatus,
)
from mailbot.storage.models_workers import Worker

STALE = timedelta(minutes=15)


def _counts(session: Session, column: object, model: type) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).select_from(model).group_by(column))  # type: ignore[call-overload]
    return {str(k): int(v) for k, v in rows}


def render_status(session: Session, rt: Runtime, out: Console) -> None:
    """Counts by state, what is stuck and why, the barcode pools, then the daemons' health."""
    now = rt.clock()
    table = Table("what", "counts")
    for title, column, model in (
        ("applications", Application.state, Application),
        ("inbound mail", InboundMessage.status, InboundMessage),
        ("outgoing mail", OutboxMessage.status, OutboxMessage),
        ("invoices", Invoice.status, Invoice),
    ):
        counts = _counts(session, column, model)
        table.add_row(title, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "—")
    out.print(table)
    stuck = Table("stuck", "id", "since", "why")
    for row in stuck_rows(session, now):
        stuck.add_row(*row)
    out.print(stuck if stuck.row_count else "nothing is stuck")
    render_shunt(session, out)
    for p in pool_states(session):
        low = " [bold red]LOW[/]" if p.active and p.free < rt.settings.pool_low_threshold else ""
        fill = 100 * p.used / (p.used + p.free) if p.used + p.free else 0.0
        out.print(f"pool {p.prefix}: {p.used} used, {p.free} free ({fill:.1f}% full){low}")
    render_health(session, now, out)


Row = tuple[str, str, str, str]  # what, id, since, why


def stuck_rows(session: Session, now: datetime) -> Iterator[Row]:
    """Everything that waits on a person or on a daemon, one kind after the other."""
    yield from _inbound_failed(session)
    yield from _inbound_waiting(session, now)
    yield from _mail_failed(session)
    yield from _mail_held(session)
    yield from _mail_retrying(session)
    yield from _paid_waiting(session)
    yield from _invoices_overdue(session, now)


def _inbound_failed(session: Session) -> Iterator[Row]:
    for m in session.exec(
        select(InboundMessage).where(
            col(InboundMessage.status).in_([InboundStatus.failed, InboundStatus.quarantined])
        )
    ):
        why = m.last_error.strip().splitlines()[-1] if m.last_error else m.status
        yield (
            f"inbound {m.status}",
            m.correlation_id,
            f"{m.received_at:%Y-%m-%d %H:%M}",
            f"{why[:90]} (retry: mailbot messages retry {m.correlation_id})",
        )


def _inbound_waiting(session: Session, now: datetime) -> Iterator[Row]:
    for m in session.exec(
        select(InboundMessage).where(
            InboundMessage.status == InboundStatus.archived,
            InboundMessage.received_at < now - STALE,
        )
    ):
        yield (
            "inbound waiting",
            m.correlation_id,
            f"{m.received_at:%Y-%m-%d %H:%M}",
            "archived but not processed: is the daemon running?",
        )


def _mail_failed(session: Session) -> Iterator[Row]:
    for o in session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.status).in_([OutboxStatus.failed, OutboxStatus.bounced])
        )
    ):
        yield (
            f"mail {o.status}",
            str(o.id),
            f"{o.created_at:%Y-%m-%d %H:%M}",
            f"{o.kind} → {', '.join(o.recipients)}: {o.last_error[:80]}",
        )


def _mail_held(session: Session) -> Iterator[Row]:
    for o in session.exec(select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.held)):
        yield (
            "mail held",
            str(o.id),
            f"{o.created_at:%Y-%m-%d %H:%M}",
            f"{o.kind} → {', '.join(o.recipients)}: {o.held_reason[:120]} "
            f"(mailbot outbox release {o.id} / drop {o.id} --reason …)",
        )


def _mail_retrying(session: Session) -> Iterator[Row]:
    for o in session.exec(
        select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.pending, OutboxMessage.attempts > 0
        )
    ):
        yield (
            "mail retrying",
            str(o.id),
            f"{o.created_at:%Y-%m-%d %H:%M}",
            f"attempt {o.attempts}: {o.last_error[:80]}",
        )


def _paid_waiting(session: Session) -> Iterator[Row]:
    for a in session.exec(
        select(Application).where(
            Application.state == ApplicationState.paid, Application.waiting_reason != ""
        )
    ):
        yield "application paid", a.number, f"{a.updated_at:%Y-%m-%d %H:%M}", a.waiting_reason


def _invoices_overdue(session: Session, now: datetime) -> Iterator[Row]:
    for inv in session.exec(
        select(Invoice).where(Invoice.status == "issued", Invoice.due_on < now.date())
    ):
        yield (
            "invoice overdue",
            inv.number,
            inv.issued_on.isoformat(),
            f"due {inv.due_on.isoformat()}, {inv.total} RUB unpaid",
        )


def render_health(session: Session, now: datetime, out: Console) -> None:
    """Oldest unprocessed message, unpaid invoices, and the daemons' heartbeats."""
    oldest = session.exec(
        select(func.min(InboundMessage.received_at)).where(
            InboundMessage.status == InboundStatus.archived
        )
    ).one()
    out.print(
        f"oldest unprocessed message: {_ago(now, oldest)}" if oldest else "nothing unprocessed"
    )
    count, total = session.exec(
        select(func.count(), func.coalesce(func.sum(Invoice.total), 0)).where(
            Invoice.status == "issued"
        )
    ).one()
    out.print(f"unpaid invoices: {count}, {total} RUB")
    workers = Table("daemon", "role", "last pass", "last IMAP contact", "state")
    for w in session.exec(select(Worker).order_by(col(Worker.id))):
        silent = now - w.last_pass_at > SILENT_AFTER
        workers.add_row(
            w.id,
            "reader" if w.reader else "worker",
            _ago(now, w.last_pass_at),
            _ago(now, w.last_imap_at) if w.last_imap_at else "never",
            "SILENT: stuck, or killed on another host" if silent else "ok",
        )
    if workers.row_count:
        out.print(workers)
    else:
        out.print("no daemon has run a pass (is `mailbot run` started?)")


# A daemon writes its row after every pass and waits at most 30 s between passes (IDLE or
# poll); a row older than this belongs to a daemon that is stuck in a pass or gone. Dead
# daemons of this host are removed at the next start of any daemon (release_dead_leases).
SILENT_AFTER = timedelta(minutes=5)


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    return f"{then:%Y-%m-%d %H:%M:%S} ({seconds // 60} min {seconds % 60} s ago)"
