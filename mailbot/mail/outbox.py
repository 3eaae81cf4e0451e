"""The outbox: every outgoing mail is a row before it is sent; the sender drains due rows.

Rows are idempotent by `dedupe_key` (e.g. ``application:12:invoice``), carry a
deterministic Message-ID, and are retried with backoff on transient failures.

Delivery outcomes, and what the row ends as:
  * accepted (250)                       → `sent`, once.
  * 5xx to MAIL/RCPT/DATA                → `failed` at once, never retried.
  * 4xx, connection refused/dropped before the data went out, TLS/AUTH trouble
                                         → retried with backoff (1, 2, 4 … 60 min) until
                                           `horizon` (default 4 days) has passed since the
                                           row was queued, then `failed`.
  * outcome unknown: the connection broke after the message data was sent, before the
    server's answer (`DeliveryUnknown`) → retried like a 4xx, and the event records
    ``outcome_unknown``. This is the ONE case where a mail may arrive twice: the server
    may have accepted the first copy. Both copies carry the same Message-ID, so the
    receiving side (and the recipient's client) can drop the duplicate. A crash between
    a delivery and its commit (crash point ``after_deliver``) is the same case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot.config import Limits
from mailbot.crashpoints import crash_point
from mailbot.invariant import InvariantError
from mailbot.issuance.vault import Vault
from mailbot.mail.caps import hold_reason
from mailbot.mail.render import SECRET_MASK, Mail, compose, message_id_for
from mailbot.mail.transport import DeliveryError, DeliveryUnknown, Envelope, Transport
from mailbot.storage.db import transaction
from mailbot.storage.models import OutboxMessage, OutboxRecipient, OutboxStatus
from mailbot.storage.queries import claim_outbox, record_event, replies_since

log = structlog.get_logger()
LEASE = timedelta(minutes=5)
RETRY_HORIZON = timedelta(days=4)


@dataclass(frozen=True)
class Sender:
    """Who our mail comes from."""

    address: str
    name: str
    domain: str


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def enqueue(
    session: Session,
    mail: Mail,
    *,
    dedupe_key: str,
    kind: str,
    sender: Sender,
    now: datetime,
    application_id: int | None = None,
    inbound_id: int | None = None,
    correlation_id: str = "",
    secret: str | None = None,
    vault: Vault | None = None,
    rate_limit: int | None = None,
    caps: Limits | None = None,
) -> OutboxMessage:
    """Store `mail` for sending (once per dedupe_key); `secret` replaces the mask at delivery.

    With `rate_limit`, a recipient who already got that many replies within the hour gets
    none: the row is kept as `suppressed` so the decision is visible (loop guard).
    With `caps`, mail to others over a cap is kept as `held` for an admin (mail/caps.py).
    """
    existing = session.exec(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
    ).first()
    if existing is not None:
        return existing
    message_id = message_id_for(dedupe_key, sender.domain)
    body = compose(
        mail, message_id=message_id, from_addr=sender.address, from_name=sender.name, date=now
    )
    status = OutboxStatus.pending
    if rate_limit is not None and any(
        replies_since(session, rcpt, now - timedelta(hours=1)) >= rate_limit for rcpt in mail.to
    ):
        status = OutboxStatus.suppressed
    live = caps if status == OutboxStatus.pending else None
    held = hold_reason(session, mail.to, kind=kind, inbound_id=inbound_id, now=now, limits=live)
    status = OutboxStatus.held if held else status
    sealed = None
    if secret is not None:
        if vault is None or SECRET_MASK.encode() not in body:
            raise ValueError("a secret needs a vault and the mask in the text")
        sealed = vault.seal(secret)
    row = OutboxMessage(
        dedupe_key=dedupe_key,
        message_id=message_id,
        kind=kind,
        application_id=application_id,
        inbound_id=inbound_id,
        correlation_id=correlation_id,
        recipients=list(mail.to),
        subject=mail.subject,
        body=body,
        secret=sealed,
        status=status,
        held_reason=held,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    if row.id is None:
        raise InvariantError("flushed")
    # The loop guard's index: one row per recipient of each mail that counts (alerts to the
    # staff and suppressed mails do not), so counting never reads an outbox row (their
    # bodies run to megabytes).
    addresses = dict.fromkeys(a.lower() for a in mail.to)
    if addresses and status == OutboxStatus.pending and kind != "alert":
        session.execute(
            insert(OutboxRecipient),
            [{"outbox_id": row.id, "address": a, "created_at": now} for a in addresses],
        )
    record_event(
        session,
        entity="outbox",
        entity_id=row.id,
        event="mail_queued",
        at=now,
        to_state=status,
        correlation_id=correlation_id,
        data={"kind": kind, "to": list(mail.to), **({"held": held} if held else {})},
    )
    return row


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, capped at one hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def send_due(
    engine: Engine,
    transport: Transport,
    *,
    sender: Sender,
    vault: Vault,
    clock: Callable[[], datetime],
    max_attempts: int | None = None,
    horizon: timedelta = RETRY_HORIZON,
) -> SendReport:
    """Deliver every due row; each delivery is committed on its own.

    Transient failures are retried until `horizon` after queueing (or `max_attempts`).
    """
    sent = retried = failed = 0
    while True:
        with transaction(engine) as session:
            batch = claim_outbox(session, now=clock(), lease=LEASE)
        if not batch:
            return SendReport(sent, retried, failed)
        for row in batch:
            ids = {"msg": row.correlation_id} if row.correlation_id else {}
            with structlog.contextvars.bound_contextvars(**ids):
                outcome = _deliver_one(
                    engine,
                    transport,
                    row,
                    sender=sender,
                    vault=vault,
                    clock=clock,
                    max_attempts=max_attempts,
                    horizon=horizon,
                )
            sent += outcome == "sent"
            retried += outcome == "retry"
            failed += outcome == "failed"


def _deliver_one(
    engine: Engine,
    transport: Transport,
    row: OutboxMessage,
    *,
    sender: Sender,
    vault: Vault,
    clock: Callable[[], datetime],
    max_attempts: int | None,
    horizon: timedelta,
) -> str:
    data = row.body
    if row.secret is not None:
        data = data.replace(SECRET_MASK.encode(), vault.open(row.secret).encode(), 1)
    envelope = Envelope(sender.address, tuple(row.recipients), row.message_id)
    error: DeliveryError | None = None
    try:
        transport.deliver(data, envelope)
    except DeliveryError as exc:
        error = exc
    crash_point("after_deliver")
    with transaction(engine) as session:
        fresh = session.get(OutboxMessage, row.id)
        if fresh is None:
            raise InvariantError("rows are never deleted")
        now = clock()
        fresh.attempts += 1
        fresh.lease_until, fresh.lease_owner = None, ""
        if error is None:
            fresh.status, fresh.sent_at, fresh.secret = OutboxStatus.sent, now, None
            outcome, event = "sent", "mail_sent"
        elif error.permanent or _exhausted(fresh, now, max_attempts, horizon):
            fresh.status, fresh.last_error = OutboxStatus.failed, str(error)
            outcome, event = "failed", "mail_failed"
        else:
            fresh.last_error = str(error)
            fresh.next_attempt_at = now + backoff(fresh.attempts)
            outcome, event = "retry", "mail_deferred"
        unknown = isinstance(error, DeliveryUnknown)
        session.add(fresh)
        if fresh.id is None:
            raise InvariantError("fresh.id is missing")
        record_event(
            session,
            entity="outbox",
            entity_id=fresh.id,
            event=event,
            at=now,
            to_state=fresh.status,
            correlation_id=fresh.correlation_id,
            data={"error": fresh.last_error, "outcome_unknown": unknown} if error else {},
        )
    log.info(
        event,
        outbox_id=row.id,
        kind=row.kind,
        message_id=row.message_id,
        msg=row.correlation_id,
        error=str(error) if error else None,
        outcome_unknown=unknown,
    )
    return outcome


def _exhausted(
    row: OutboxMessage, now: datetime, max_attempts: int | None, horizon: timedelta
) -> bool:
    """True when a transient failure should end the row: attempts or horizon used up."""
    if max_attempts is not None and row.attempts >= max_attempts:
        return True
    created = row.created_at
    if created.tzinfo is None and now.tzinfo is not None:  # SQLite drops the zone
        created = created.replace(tzinfo=now.tzinfo)
    return now + backoff(row.attempts) > created + horizon
