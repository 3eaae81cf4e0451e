"""Named queries: every read and write the handlers need, so no SQL lives elsewhere."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, text, update
from sqlmodel import Session, col, select

from mailbot.invariant import InvariantError
from mailbot.storage.models import (
    Application,
    Client,
    ClientAddress,
    Event,
    InboundMessage,
    InboundStatus,
    Invoice,
    OutboxMessage,
    OutboxRecipient,
    OutboxStatus,
)
from mailbot.storage.models_web import WebSession
from mailbot.storage.models_workers import Worker


def record_event(  # noqa: PLR0913 - keyword-only columns of the Event row it writes
    session: Session,
    *,
    entity: str,
    entity_id: int,
    event: str,
    at: datetime,
    from_state: str = "",
    to_state: str = "",
    correlation_id: str = "",
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one fact to the event log, in the caller's transaction."""
    row = Event(
        at=at,
        entity=entity,
        entity_id=entity_id,
        event=event,
        from_state=from_state,
        to_state=to_state,
        correlation_id=correlation_id,
        data=data or {},
    )
    session.add(row)
    return row


def next_number(session: Session, name: str, year: int) -> int:
    """Next value of a gap-free per-year counter, taken in the caller's transaction.

    One upsert row per (name, year): PostgreSQL locks that row until commit, SQLite holds
    the database write lock (BEGIN IMMEDIATE), so concurrent workers queue rather than
    collide, and a rolled-back transaction gives its number back.
    """
    result = session.execute(
        text(
            "INSERT INTO counter (name, year, last) VALUES (:name, :year, 1) "
            "ON CONFLICT (name, year) DO UPDATE SET last = counter.last + 1 RETURNING last"
        ),
        {"name": name, "year": year},
    )
    return int(result.scalar_one())


def application_by_number(session: Session, number: str) -> Application | None:
    return session.exec(select(Application).where(Application.number == number)).first()


def application_by_thread(session: Session, message_ids: Sequence[str]) -> Application | None:
    """The application whose thread holds any of these Message-IDs (ours or the applicant's)."""
    if not message_ids:
        return None
    ids = list(message_ids)
    hit = session.exec(
        select(OutboxMessage.application_id).where(
            col(OutboxMessage.message_id).in_(ids), col(OutboxMessage.application_id).is_not(None)
        )
    ).first()
    if hit is not None:
        return session.get(Application, hit)
    return session.exec(
        select(Application).where(col(Application.root_message_id).in_(ids))
    ).first()


def client_by_address(session: Session, address: str) -> Client | None:
    """The client registered with `address` (oldest first when two share it)."""
    return session.exec(
        select(Client)
        .join(ClientAddress, col(ClientAddress.client_id) == col(Client.id))
        .where(ClientAddress.address == address.lower())
        .order_by(col(Client.id))
    ).first()


def add_client_address(session: Session, client: Client, address: str) -> None:
    address = address.lower()
    exists = session.exec(
        select(ClientAddress).where(
            ClientAddress.client_id == client.id, ClientAddress.address == address
        )
    ).first()
    if exists is None and client.id is not None:
        session.add(ClientAddress(client_id=client.id, address=address))


def client_by_requisites(session: Session, inn: str, kpp: str) -> Client | None:
    return session.exec(select(Client).where(Client.inn == inn, Client.kpp == kpp)).first()


def add_archived(
    session: Session, row: InboundMessage, *, now: datetime, data: dict[str, Any]
) -> int:
    """Insert an archived message's row with its correlation id (`m<id>`, the one id every
    log line and event of this message carries) and its `message_archived` event; its id.
    Mail intake and the web's uploads both arrive here."""
    session.add(row)
    session.flush()
    if row.id is None:
        raise InvariantError("row.id is missing")
    row.correlation_id = f"m{row.id}"
    record_event(
        session,
        entity="inbound",
        entity_id=row.id,
        event="message_archived",
        at=now,
        to_state=row.status,
        correlation_id=row.correlation_id,
        data=data,
    )
    return row.id


def end_web_sessions(
    session: Session, client_id: int, *, now: datetime, reason: str, keep: int | None = None
) -> list[int]:
    """End every open web session of a client but `keep` (a password reset or change, a
    second factor switched), each with the `web_session_ended` event a log-out writes too;
    their ids. The one place sessions are ended in bulk: the CLI and the web both call it."""
    rows = session.exec(
        select(WebSession)
        .where(WebSession.client_id == client_id, col(WebSession.ended_at).is_(None))
        .with_for_update()
    ).all()
    ended: list[int] = []
    for row in rows:
        if row.id is None or row.id == keep:
            continue
        row.ended_at, row.end_reason = now, reason
        session.add(row)
        record_event(
            session,
            entity="client",
            entity_id=client_id,
            event="web_session_ended",
            at=now,
            data={"session": row.id, "reason": reason},
        )
        ended.append(row.id)
    return ended


def unsent_credentials(session: Session, client_id: int, *, now: datetime) -> list[OutboxMessage]:
    """A client's password mails not yet sent nor being sent (pending or held, not leased)."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.dedupe_key).startswith(f"client:{client_id}:credentials:"),
                col(OutboxMessage.status).in_([OutboxStatus.pending, OutboxStatus.held]),
                or_(col(OutboxMessage.lease_until).is_(None), col(OutboxMessage.lease_until) < now),
            )
            .order_by(col(OutboxMessage.id))
            .with_for_update()
        )
    )


def inbound_by_sha(session: Session, sha256: str) -> InboundMessage | None:
    return session.exec(select(InboundMessage).where(InboundMessage.sha256 == sha256)).first()


def inbound_by_key(session: Session, key: str) -> InboundMessage | None:
    return session.exec(select(InboundMessage).where(InboundMessage.key == key)).first()


def worker_id() -> str:
    """This process, as written into the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def release_dead_leases(session: Session) -> int:
    """Free leases held by processes of this host that no longer exist (after a crash).

    Returns how many leases were freed; the dead processes' heartbeat rows go as well.

    Leases of other hosts are left to expire: we cannot see their processes.
    """
    mine = f"{socket.gethostname()}:"
    held: list[InboundMessage | OutboxMessage] = [
        *session.exec(
            select(InboundMessage).where(col(InboundMessage.lease_owner).startswith(mine))
        ),
        *session.exec(select(OutboxMessage).where(col(OutboxMessage.lease_owner).startswith(mine))),
    ]
    freed = 0
    for row in held:
        if not _alive(int(row.lease_owner.rsplit(":", 1)[1])):
            row.lease_until, row.lease_owner = None, ""
            session.add(row)
            freed += 1
    # Their heartbeat rows too, or `mailbot status` would list a killed reader as a daemon.
    for worker in session.exec(select(Worker).where(col(Worker.id).startswith(mine))):
        if not _alive(int(worker.id.rsplit(":", 1)[1])):
            session.delete(worker)
    return freed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


UNFINISHED = "processing did not finish {n} times (killed or timed out)"


def claim_inbound(
    session: Session, *, now: datetime, lease: timedelta, max_attempts: int, limit: int = 1
) -> list[InboundMessage]:
    """Lease messages waiting for processing, counting the attempt in the same UPDATE.

    An attempt counts when work starts, not when Python raises: a process killed by the
    OOM killer, SIGKILL or a time-out has used one too. A message claimed `max_attempts`
    times without finishing is quarantined here instead of being claimed again. A message
    that failed (raised), or whose processing was cut off twice, waits behind the mail
    that came after it; one cut off once keeps its place, oldest first: a single crash
    (a restart, a deploy, another message's fault) leaves the order, hence the numbering,
    as if nothing had happened. On PostgreSQL other workers skip leased rows.
    """
    free = or_(col(InboundMessage.lease_until).is_(None), col(InboundMessage.lease_until) < now)
    waiting = col(InboundMessage.status).in_([InboundStatus.archived, InboundStatus.failed])
    worn_out = list(
        session.exec(
            select(InboundMessage)
            .where(waiting, free, col(InboundMessage.attempts) >= max_attempts)
            .order_by(col(InboundMessage.id))
            .with_for_update(skip_locked=True)
        )
    )
    for row in worn_out:
        _quarantine_unfinished(session, row, now=now)
    suspect = case(
        (
            or_(
                col(InboundMessage.status) == InboundStatus.failed,
                col(InboundMessage.attempts) >= 2,  # cut off twice
            ),
            1,
        ),
        else_=0,
    )
    stmt = (
        select(InboundMessage)
        .where(waiting, free, col(InboundMessage.attempts) < max_attempts)
        .order_by(suspect, col(InboundMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(stmt))
    for row in rows:
        row.lease_until, row.lease_owner = now + lease, worker_id()
        row.attempts += 1
        session.add(row)
    return rows


def _quarantine_unfinished(session: Session, row: InboundMessage, *, now: datetime) -> None:
    reason = UNFINISHED.format(n=row.attempts)
    previous = row.last_error.strip()
    row.last_error = f"{previous}\n{reason}" if previous else reason
    from_state, row.status = row.status, InboundStatus.quarantined
    row.lease_until, row.lease_owner = None, ""
    session.add(row)
    if row.id is None:
        raise InvariantError("row.id is missing")
    record_event(
        session,
        entity="inbound",
        entity_id=row.id,
        event="message_failed",
        at=now,
        from_state=from_state,
        to_state=row.status,
        correlation_id=row.correlation_id,
        data={"error": reason, "attempts": row.attempts},
    )


def claim_outbox(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 20
) -> list[OutboxMessage]:
    """Lease due outgoing mail; on PostgreSQL other workers skip the leased rows."""
    stmt = (
        select(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.pending,
            col(OutboxMessage.next_attempt_at) <= now,
            or_(col(OutboxMessage.lease_until).is_(None), col(OutboxMessage.lease_until) < now),
        )
        .order_by(col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(stmt))
    for row in rows:
        row.lease_until, row.lease_owner = now + lease, worker_id()
        session.add(row)
    return rows


def release_own_leases(session: Session) -> int:
    """Free the leases this process holds (after a database outage broke its pass)."""
    me = worker_id()
    freed = 0
    for model in (InboundMessage, OutboxMessage):
        result = session.execute(
            update(model)
            .where(col(model.lease_owner) == me)
            .values(lease_until=None, lease_owner="")
        )
        freed += int(getattr(result, "rowcount", 0) or 0)
    return freed


def replies_since(session: Session, address: str, since: datetime) -> int:
    """How many replies went (or will go) to `address` since `since` — the loop guard.

    A count over the (address, created_at) index of outboxrecipient, which holds only the
    mails that count (see outbox.enqueue): no outbox row, hence no mail body, is read.
    """
    stmt = (
        select(func.count())
        .select_from(OutboxRecipient)
        .where(OutboxRecipient.address == address.lower(), OutboxRecipient.created_at >= since)
    )
    return int(session.exec(stmt).one())


def invoices_of(session: Session, application_id: int) -> list[Invoice]:
    return list(
        session.exec(
            select(Invoice)
            .where(Invoice.application_id == application_id)
            .order_by(col(Invoice.id))
        )
    )
