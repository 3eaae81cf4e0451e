"""Caps on mail to others: what a stranger's mail can make us send to third parties.

A reply to the address a message came from is bounded by the loop guard
(`replies_per_sender_per_hour`). Mail that goes to anyone else because of an inbound
message (the invoice to a form's E-mail field, a new address of a contact change) and
blank forms (whose recipient is only what the From header claims) are checked here too:

  * per sender address and per sender domain: applications within the hour;
  * per recipient: mails within a day;
  * globally: addresses we never wrote to before, within the hour.

Over a cap the mail is stored as `held` with the reason: shown by `mailbot status`, sent
by `mailbot outbox release ID` or kept unsent by `mailbot outbox drop ID --reason …`.
Never lost, never sent silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailbot.config import Limits
from mailbot.invariant import InvariantError
from mailbot.storage.models import (
    Application,
    InboundMessage,
    OutboxMessage,
    OutboxRecipient,
    OutboxStatus,
)
from mailbot.storage.models_consent import FirstContact
from mailbot.storage.queries import record_event, replies_since

if TYPE_CHECKING:  # outbox imports this module
    from mailbot.mail.outbox import Outgoing

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
FORMS_KIND = "instructions"  # blank forms go to whatever From claims: a third party, maybe


def targets(session: Session, to: Sequence[str], *, kind: str, inbound_id: int | None) -> list[str]:
    """The recipients the caps guard: everyone but the sender of the inbound message.

    Mail not caused by an inbound message (reminders, credentials after a payment, news,
    alerts) is not a stranger's doing and has no targets.
    """
    if inbound_id is None:
        return []
    inbound = session.get(InboundMessage, inbound_id)
    sender = inbound.from_addr.lower() if inbound is not None else ""
    addresses = list(dict.fromkeys(a.lower() for a in to))
    if kind == FORMS_KIND:
        return addresses
    return [a for a in addresses if a != sender]


def hold_reason(session: Session, to: Sequence[str], outgoing: Outgoing, *, now: datetime) -> str:
    """Why this mail must wait for an admin ("" = send it); remembers new addresses it lets by.

    `outgoing.caps` None: no caps apply (the mail is not a stranger's doing).
    """
    limits, inbound_id = outgoing.caps, outgoing.inbound_id
    guarded = targets(session, to, kind=outgoing.kind, inbound_id=inbound_id) if limits else []
    if limits is None or not guarded:
        return ""
    inbound = session.get(InboundMessage, inbound_id)
    sender = inbound.from_addr.lower() if inbound is not None else ""
    why = _over_sender_caps(session, sender, now, limits) or _over_recipient_caps(
        session, guarded, now, limits
    )
    if not why:
        remember_first_contacts(session, guarded, now)
    return why


def _over_sender_caps(session: Session, sender: str, now: datetime, limits: Limits) -> str:
    if not sender:
        return ""
    since = now - HOUR
    mine = _count_applications(session, col(Application.sender) == sender, since)
    if mine > limits.applications_per_sender_per_hour:
        return (
            f"sender {sender}: {mine} applications within an hour "
            f"(cap applications_per_sender_per_hour = {limits.applications_per_sender_per_hour})"
        )
    domain = sender.rpartition("@")[2]
    theirs = _count_applications(
        session, col(Application.sender).endswith("@" + domain, autoescape=True), since
    )
    if theirs > limits.applications_per_domain_per_hour:
        return (
            f"domain {domain}: {theirs} applications within an hour "
            f"(cap applications_per_domain_per_hour = {limits.applications_per_domain_per_hour})"
        )
    return ""


def _count_applications(session: Session, where: object, since: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(Application)
        .where(where, col(Application.created_at) >= since)  # type: ignore[arg-type]
    )
    return int(session.exec(stmt).one())


def _over_recipient_caps(
    session: Session, guarded: list[str], now: datetime, limits: Limits
) -> str:
    for address in guarded:
        got = replies_since(session, address, now - DAY)
        if got >= limits.mails_per_recipient_per_day:
            return (
                f"recipient {address}: {got} mails within a day "
                f"(cap mails_per_recipient_per_day = {limits.mails_per_recipient_per_day})"
            )
    new = [a for a in guarded if not _written_to(session, a)]
    if not new:
        return ""
    recent = int(
        session.exec(
            select(func.count())
            .select_from(FirstContact)
            .where(col(FirstContact.first_at) >= now - HOUR)
        ).one()
    )
    if recent + len(new) > limits.new_recipients_per_hour:
        return (
            f"{', '.join(new)}: never written to, and {recent} new addresses within an hour "
            f"(cap new_recipients_per_hour = {limits.new_recipients_per_hour})"
        )
    return ""


def _written_to(session: Session, address: str) -> bool:
    if session.get(FirstContact, address) is not None:
        return True
    hit = session.exec(
        select(OutboxRecipient.outbox_id).where(OutboxRecipient.address == address).limit(1)
    ).first()
    return hit is not None


def remember_first_contacts(session: Session, addresses: Sequence[str], now: datetime) -> None:
    """Record the addresses we write to for the first time (the global cap counts these).

    ON CONFLICT DO NOTHING: two workers may write to the same new address at once.
    """
    rows = [
        {"address": a, "first_at": now}
        for a in dict.fromkeys(a.lower() for a in addresses)
        if not _written_to(session, a)
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(make(FirstContact).on_conflict_do_nothing(), rows)


def held(session: Session) -> list[OutboxMessage]:
    """Held mail, oldest first (for `mailbot status` and `mailbot outbox held`)."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.held)
            .order_by(col(OutboxMessage.id))
        )
    )


def release(session: Session, outbox_id: int, *, now: datetime, by: str = "admin") -> str | None:
    """Let a held mail go out now; an error text when it is not held."""
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        return f"outgoing mail {outbox_id} not found"
    if row.status != OutboxStatus.held:
        return f"outgoing mail {outbox_id} is {row.status}, not held"
    row.status, row.next_attempt_at = OutboxStatus.pending, now
    session.add(row)
    addresses = list(dict.fromkeys(a.lower() for a in row.recipients))
    remember_first_contacts(session, addresses, now)
    if addresses:  # from now on it counts for the loop guard and the caps
        session.execute(
            insert(OutboxRecipient),
            [{"outbox_id": outbox_id, "address": a, "created_at": now} for a in addresses],
        )
    _event(session, row, "mail_released", now, {"by": by, "held_reason": row.held_reason})
    return None


def drop(session: Session, outbox_id: int, *, reason: str, now: datetime) -> str | None:
    """Keep a held mail unsent for good, with the admin's reason; an error text otherwise."""
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        return f"outgoing mail {outbox_id} not found"
    if row.status != OutboxStatus.held:
        return f"outgoing mail {outbox_id} is {row.status}, not held"
    if not reason.strip():
        return "a reason is required"
    row.status = OutboxStatus.dropped
    row.held_reason = f"{row.held_reason} | dropped: {reason.strip()}"[:2000]
    session.add(row)
    _event(session, row, "mail_dropped", now, {"reason": reason.strip()})
    return None


def _event(
    session: Session, row: OutboxMessage, event: str, now: datetime, data: dict[str, str]
) -> None:
    if row.id is None:
        raise InvariantError("row.id is missing")
    record_event(
        session,
        entity="outbox",
        entity_id=row.id,
        event=event,
        at=now,
        from_state=OutboxStatus.held,
        to_state=row.status,
        correlation_id=row.correlation_id,
        data=data,
    )
