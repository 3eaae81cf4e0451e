"""The shunt: every unit of work that was set aside, in one list, retried by one command.

As Mailman's shunt queue does for messages, an item that fails is marked with its reason
and attempts while the rest goes on. The items, and their references:

  m12               an inbound message quarantined (killed, timed out or failed too often)
  EAN-2026-000012   a paid application whose issuance failed (`Application.issue_error`)
  o12               an outgoing mail that can never go as it is (`OutboxStatus.failed`)
  job:invoice_sweep a scheduled job whose last runs failed (`JobState`)

`mailbot quarantine list` and `mailbot status` show them; `mailbot quarantine retry REF`
puts one back. Pure queries over the caller's session; the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from mailbot.storage.models import (
    Application,
    ApplicationState,
    InboundMessage,
    InboundStatus,
    JobState,
    OutboxMessage,
    OutboxStatus,
)
from mailbot.storage.queries import record_event


@dataclass(frozen=True)
class Shunted:
    """One item set aside: what it is, its reference, since when, attempts and why."""

    what: str  # message | issuance | mail | job
    ref: str
    since: datetime | None
    attempts: int
    reason: str
    detail: str = ""  # from / subject / recipients


class NotShunted(Exception):
    """The reference names nothing that is set aside (the message says why)."""


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def shunted(session: Session) -> list[Shunted]:
    """Everything set aside, by kind then age."""
    items = [
        Shunted(
            "message",
            m.correlation_id,
            m.received_at,
            m.attempts,
            _last_line(m.last_error),
            f"{m.from_addr}: {m.subject[:40]}",
        )
        for m in session.exec(
            select(InboundMessage)
            .where(InboundMessage.status == InboundStatus.quarantined)
            .order_by(col(InboundMessage.id))
        )
    ]
    items += [
        Shunted("issuance", a.number, a.updated_at, a.issue_attempts, a.issue_error, a.sender)
        for a in session.exec(
            select(Application)
            .where(Application.state == ApplicationState.paid, Application.issue_error != "")
            .order_by(col(Application.id))
        )
    ]
    items += [
        Shunted(
            "mail",
            f"o{o.id}",
            o.created_at,
            o.attempts,
            o.last_error,
            f"{o.kind} → {', '.join(o.recipients)}",
        )
        for o in session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.failed)
            .order_by(col(OutboxMessage.id))
        )
    ]
    items += [
        Shunted("job", f"job:{j.name}", j.failed_at, j.failures, _last_line(j.last_error))
        for j in session.exec(
            select(JobState).where(col(JobState.failures) > 0).order_by(col(JobState.name))
        )
    ]
    return items


def shunt_table(items: list[Shunted]) -> Table:
    table = Table("set aside", "ref", "since", "attempts", "why", "about")
    for item in items:
        since = f"{item.since:%Y-%m-%d %H:%M}" if item.since else "—"
        table.add_row(
            item.what, item.ref, since, str(item.attempts), item.reason[:90], item.detail[:60]
        )
    return table


def render_shunt(session: Session, out: Console) -> None:
    """The `mailbot status` section: issuance and jobs set aside (messages and mail are in
    its stuck table already), with the one command that retries them."""
    items = [i for i in shunted(session) if i.what in ("issuance", "job")]
    if items:
        out.print(shunt_table(items))
        out.print("retry one: mailbot quarantine retry REF (all: mailbot quarantine list)")


def retry(session: Session, ref: str, *, now: datetime) -> str:
    """Put the item `ref` back to work, in the caller's transaction; what was done.

    A job is only re-armed here (its failures cleared); the caller runs it.
    """
    if ref.startswith("job:"):
        return _retry_job(session, ref.removeprefix("job:"))
    if ref.upper().startswith("EAN-"):
        return _retry_issuance(session, ref.upper(), now=now)
    if ref.startswith("o") and ref[1:].isdigit():
        return _retry_mail(session, int(ref[1:]), now=now)
    if ref.lstrip("m").isdigit():
        return _retry_message(session, int(ref.lstrip("m")), now=now)
    raise NotShunted(f"{ref}: not a reference (m12, EAN-2026-000012, o12, job:NAME)")


def _retry_message(session: Session, inbound_id: int, *, now: datetime) -> str:
    m = session.get(InboundMessage, inbound_id)
    if m is None:
        raise NotShunted(f"message m{inbound_id} not found (ids look like m12)")
    allowed = (InboundStatus.quarantined, InboundStatus.failed)
    if m.status not in allowed:
        raise NotShunted(
            f"message m{inbound_id} is {m.status}; only {', '.join(allowed)} can be retried"
        )
    record_event(
        session,
        entity="inbound",
        entity_id=inbound_id,
        event="message_requeued",
        at=now,
        from_state=m.status,
        to_state=InboundStatus.archived,
        correlation_id=m.correlation_id,
        data={"by": "admin"},
    )
    m.attempts, m.acknowledged, m.status = 0, False, InboundStatus.archived
    m.lease_until, m.lease_owner = None, ""
    session.add(m)
    return f"message m{inbound_id} will be processed on the next pass"


def _retry_issuance(session: Session, number: str, *, now: datetime) -> str:
    app = session.exec(select(Application).where(Application.number == number)).first()
    if app is None or app.id is None:
        raise NotShunted(f"application {number} not found")
    if not app.issue_error:
        raise NotShunted(f"application {number} is {app.state}; its issuance is not set aside")
    record_event(
        session,
        entity="application",
        entity_id=app.id,
        event="issuance_requeued",
        at=now,
        data={"by": "admin", "error": app.issue_error},
    )
    app.issue_error, app.issue_attempts = "", 0
    session.add(app)
    return f"application {number} will be issued on the next pass"


def _retry_mail(session: Session, outbox_id: int, *, now: datetime) -> str:
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        raise NotShunted(f"mail o{outbox_id} not found")
    if row.status != OutboxStatus.failed:
        raise NotShunted(f"mail o{outbox_id} is {row.status}; only failed mail can be retried")
    record_event(
        session,
        entity="outbox",
        entity_id=outbox_id,
        event="mail_requeued",
        at=now,
        from_state=row.status,
        to_state=OutboxStatus.pending,
        data={"by": "admin", "error": row.last_error},
    )
    row.status, row.next_attempt_at, row.attempts = OutboxStatus.pending, now, 0
    row.created_at = now  # the retry horizon starts again from the admin's retry
    row.lease_until, row.lease_owner = None, ""
    session.add(row)
    return f"mail o{outbox_id} will be sent on the next pass"


def _retry_job(session: Session, name: str) -> str:
    job = session.get(JobState, name)
    if job is None or job.failures == 0:
        raise NotShunted(f"job {name} has not failed")
    job.failures = 0
    session.add(job)
    return f"job {name} re-armed"
