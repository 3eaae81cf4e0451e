"""The outbox: every outgoing mail is a row before it is sent; the sender drains due rows.

Rows are idempotent by `dedupe_key` (e.g. ``application:12:invoice``), carry a random
Message-ID made when the row is inserted and stored with it (a retry, or a pass redone after
a crash, finds the row and sends that same id), and are retried with backoff on transient
failures.

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
from cryptography.fernet import InvalidToken
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot.config import Limits
from mailbot.crashpoints import crash_point
from mailbot.invariant import InvariantError
from mailbot.issuance.vault import Vault
from mailbot.mail.caps import hold_reason
from mailbot.mail.render import SECRET_MASK, Mail, compose, new_message_id
from mailbot.mail.transport import DeliveryError, DeliveryUnknown, Envelope, Transport
from mailbot.storage.db import is_outage, retry_outage, transaction
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


@dataclass(frozen=True)
class Outgoing:
    """What an outbox row records besides the mail: its once-only key, kind and origin.

    With `rate_limit`, a recipient who already got that many replies within the hour gets
    none: the row is kept as `suppressed` so the decision is visible (loop guard).
    `secret` (sealed with `vault`) replaces the mask in the text at delivery.
    With `caps`, mail to others over a cap is kept as `held` for an admin (mail/caps.py).
    """

    dedupe_key: str
    kind: str
    application_id: int | None = None
    inbound_id: int | None = None
    correlation_id: str = ""
    rate_limit: int | None = None
    secret: str | None = None
    vault: Vault | None = None
    caps: Limits | None = None


def enqueue(
    session: Session, mail: Mail, outgoing: Outgoing, *, sender: Sender, now: datetime
) -> OutboxMessage:
    """Store `mail` for sending, once per `outgoing.dedupe_key`; the row (the existing one)."""
    dedupe_key, kind, rate_limit = outgoing.dedupe_key, outgoing.kind, outgoing.rate_limit
    existing = session.exec(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key)
    ).first()
    if existing is not None:
        return existing
    message_id = new_message_id(sender.domain)  # once per row; retries send the stored one
    body = compose(
        mail, message_id=message_id, from_addr=sender.address, from_name=sender.name, date=now
    )
    status = OutboxStatus.pending
    if rate_limit is not None and _over_limit(session, mail, now, rate_limit):
        status = OutboxStatus.suppressed
    held = (
        hold_reason(session, mail.to, outgoing, now=now) if status == OutboxStatus.pending else ""
    )
    status = OutboxStatus.held if held else status
    sealed = None if outgoing.secret is None else _seal(body, outgoing.secret, outgoing.vault)
    row = OutboxMessage(
        dedupe_key=dedupe_key,
        message_id=message_id,
        random_id=True,
        kind=kind,
        application_id=outgoing.application_id,
        inbound_id=outgoing.inbound_id,
        correlation_id=outgoing.correlation_id,
        recipients=list(mail.to),
        subject=mail.subject[:998],  # the column's limit; the header keeps it whole
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
    if status == OutboxStatus.pending and kind != "alert":
        _count_recipients(session, row.id, mail, now)
    record_event(
        session,
        entity="outbox",
        entity_id=row.id,
        event="mail_queued",
        at=now,
        to_state=status,
        correlation_id=outgoing.correlation_id,
        data={"kind": kind, "to": list(mail.to), **({"held": held} if held else {})},
    )
    return row


def _over_limit(session: Session, mail: Mail, now: datetime, rate_limit: int) -> bool:
    """A recipient already got `rate_limit` replies within the hour (loop guard)."""
    since = now - timedelta(hours=1)
    return any(replies_since(session, rcpt, since) >= rate_limit for rcpt in mail.to)


def _seal(body: bytes, secret: str, vault: Vault | None) -> str:
    """The secret sealed for the row; the composed body must carry its mask."""
    if vault is None or SECRET_MASK.encode() not in body:
        raise ValueError("a secret needs a vault and the mask in the text")
    return vault.seal(secret)


def _count_recipients(session: Session, outbox_id: int, mail: Mail, now: datetime) -> None:
    """The loop guard's index: one row per recipient of each mail that counts.

    Alerts to the staff, suppressed and held mails do not count; counting never reads an outbox
    row (their bodies run to megabytes).
    """
    addresses = dict.fromkeys(a.lower() for a in mail.to)
    if addresses:
        session.execute(
            insert(OutboxRecipient),
            [{"outbox_id": outbox_id, "address": a, "created_at": now} for a in addresses],
        )


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, capped at one hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


# Called with (session, the failed row, why) in the transaction that fails the row: the
# daemon and the CLI pass the same hook (mailbot.service.sending), which alerts the admin.
FailedHook = Callable[[Session, OutboxMessage, str], None]
UNSEALABLE = (
    "the password in this mail was sealed with another MAILBOT_SECRET_KEY; every host "
    "needs the same key (README, Several hosts): set it, then `mailbot quarantine retry o{id}`"
)


class Unsendable(Exception):
    """A row that can never go out as it is (not a delivery failure): fail it, keep going."""


@dataclass(frozen=True)
class Delivery:
    """How rows go out, the same for every caller (daemon, CLI, dry run): the next hop, our
    envelope sender, the vault that opens sealed secrets, the clock, and one retry policy."""

    transport: Transport
    sender: Sender
    vault: Vault
    clock: Callable[[], datetime]
    horizon: timedelta = RETRY_HORIZON
    on_failed: FailedHook | None = None


def send_due(engine: Engine, delivery: Delivery) -> SendReport:
    """Deliver every due row; each delivery is committed on its own.

    One policy for every caller: transient failures are retried until `delivery.horizon`
    after queueing. A row that cannot be opened (sealed with another key), rendered or
    handed to the transport for a reason other than delivery is failed with that reason (and
    `on_failed` told) while the rest go out; only the database going away ends the call.
    """
    sent = retried = failed = 0
    while True:
        with transaction(engine) as session:
            batch = claim_outbox(session, now=delivery.clock(), lease=LEASE)
        if not batch:
            return SendReport(sent, retried, failed)
        for row in batch:
            ids = {"msg": row.correlation_id} if row.correlation_id else {}
            with structlog.contextvars.bound_contextvars(**ids):
                outcome = _deliver_one(engine, delivery, row)
            sent += outcome == "sent"
            retried += outcome == "retry"
            failed += outcome == "failed"


def _attempt(row: OutboxMessage, transport: Transport, sender: Sender, vault: Vault) -> None:
    """Open the row's secret and hand the mail over; Unsendable when it never can go."""
    data = row.body
    if row.secret is not None:
        try:
            secret = vault.open(row.secret)
        except InvalidToken:
            raise Unsendable(UNSEALABLE.format(id=row.id)) from None
        data = data.replace(SECRET_MASK.encode(), secret.encode(), 1)
    envelope = Envelope(sender.address, tuple(row.recipients), row.message_id)
    transport.deliver(data, envelope)


def _deliver_one(engine: Engine, delivery: Delivery, row: OutboxMessage) -> str:
    error: DeliveryError | None = None
    fault = ""
    try:
        _attempt(row, delivery.transport, delivery.sender, delivery.vault)
    except DeliveryError as exc:
        error = exc
    except Unsendable as exc:
        fault = str(exc)
    except Exception as exc:  # the per-row boundary: fail this row, send the rest
        if is_outage(exc):
            raise
        fault = f"cannot be sent: {exc!r}"[:1000]
    crash_point("after_deliver")

    def settle() -> tuple[str, str, bool]:
        with transaction(engine) as session:
            return _settle(session, row, error, fault, delivery)

    # The mail is out: a lost database must not make us send it again, so the commit that
    # says so is retried while the database comes back (a new connection, pre-pinged).
    outcome, event, unknown = retry_outage(settle)
    log.info(
        event,
        outbox_id=row.id,
        kind=row.kind,
        message_id=row.message_id,
        msg=row.correlation_id,
        error=fault or (str(error) if error else None),
        outcome_unknown=unknown,
    )
    return outcome


def _settle(
    session: Session,
    row: OutboxMessage,
    error: DeliveryError | None,
    fault: str,
    delivery: Delivery,
) -> tuple[str, str, bool]:
    """Write the outcome of one delivery attempt; (outcome, event, outcome unknown)."""
    fresh = session.get(OutboxMessage, row.id)
    if fresh is None:
        raise InvariantError("rows are never deleted")
    now = delivery.clock()
    fresh.attempts += 1
    fresh.lease_until, fresh.lease_owner = None, ""
    if fault:
        fresh.status, fresh.last_error = OutboxStatus.failed, fault
        outcome, event = "failed", "mail_failed"
        if delivery.on_failed is not None:
            delivery.on_failed(session, fresh, fault)
    elif error is None:
        fresh.status, fresh.sent_at, fresh.secret = OutboxStatus.sent, now, None
        outcome, event = "sent", "mail_sent"
    elif error.permanent or _exhausted(fresh, now, delivery.horizon):
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
        data={"error": fresh.last_error, "outcome_unknown": unknown} if error or fault else {},
    )
    return outcome, event, unknown


def _exhausted(row: OutboxMessage, now: datetime, horizon: timedelta) -> bool:
    """True when a transient failure should end the row: the horizon is used up."""
    created = row.created_at
    if created.tzinfo is None and now.tzinfo is not None:  # SQLite drops the zone
        created = created.replace(tzinfo=now.tzinfo)
    return now + backoff(row.attempts) > created + horizon
