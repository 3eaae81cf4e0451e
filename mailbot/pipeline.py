"""The steps of one pass: take in → process → issue → send. Each hands over stored rows.

take_in:  raw bytes archived (fsync) + inbound row committed; the message stays in the
          mailbox. A crash here re-reads it and finds it archived (by intake key).
process:  one transaction per inbound message: classification, records, state changes and
          outbox rows commit together, or not at all (then the message is retried). The
          attempt is counted when the message is claimed, so a process killed while at it
          has used one too; claimed max_attempts times without finishing → quarantined.
release:  processed messages are moved to the processed folder, messages that failed
          limits.max_attempts times to the quarantine folder; then the row says so.
issue:    one transaction per paid application: codes, client, deliverables mail.
send:     one commit per delivered mail (outbox.send_due).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from mailbot.crashpoints import crash_point
from mailbot.forms import blank_form_attachments
from mailbot.guard import GuardedParseError
from mailbot.handlers import (
    applications,
    confirm,
    consent,
    contacts,
    correspondence,
    filing,
    orders,
    statements,
    subscriptions,
    support,
    unreadable,
)
from mailbot.handlers.context import Context, Handler
from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw, store_raw
from mailbot.mail.classify import MessageKind, classify
from mailbot.mail.identity import address_of
from mailbot.mail.intake.base import Intake, OversizedMessage, RawMessage
from mailbot.mail.measure import raw_facts
from mailbot.mail.message import ParsedMessage
from mailbot.mail.outbox import backoff
from mailbot.mail.reading import Unreadable, read_message, unread_message
from mailbot.runtime import Runtime
from mailbot.storage.db import is_outage, transaction
from mailbot.storage.models import Application, InboundMessage, InboundStatus
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.queries import (
    add_archived,
    application_by_number,
    application_by_thread,
    claim_inbound,
    client_by_address,
    inbound_by_key,
    inbound_by_sha,
    record_event,
)

log = structlog.get_logger()
LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class PassReport:
    received: int
    processed: int
    issued: int
    sent: int


def take_in(rt: Runtime, intake: Intake) -> int:
    """Archive and record every message in the mailbox not archived yet; returns how many."""
    with transaction(rt.engine) as session:
        waiting = set(
            session.exec(
                select(InboundMessage.key).where(col(InboundMessage.acknowledged).is_(False))
            )
        )
    count = 0
    for item in intake.fetch_new(known=waiting.__contains__):
        crash_point("after_fetch")
        if _archive(rt, item)[1]:
            crash_point("after_archive")
            count += 1
    return count


DONE = (InboundStatus.processed, InboundStatus.duplicate, InboundStatus.quarantined)


def release_done(rt: Runtime, intake: Intake) -> int:
    """Move handled messages out of the mailbox: processed folder, or quarantine with reason."""
    with transaction(rt.engine) as session:
        rows = list(
            session.exec(
                select(InboundMessage)
                .where(
                    col(InboundMessage.acknowledged).is_(False),
                    col(InboundMessage.status).in_(DONE),
                )
                .order_by(col(InboundMessage.id))
            )
        )
    for row in rows:
        quarantine = row.status == InboundStatus.quarantined
        reason = row.last_error.strip().splitlines()[-1] if quarantine and row.last_error else ""
        with structlog.contextvars.bound_contextvars(msg=row.correlation_id):
            intake.acknowledge(row.key, quarantine=quarantine, reason=reason)
        crash_point("after_move")
        with transaction(rt.engine) as session:
            session.execute(
                update(InboundMessage)
                .where(col(InboundMessage.id) == row.id)
                .values(acknowledged=True)
            )
        crash_point("after_acknowledge")
    return len(rows)


def archive_one(rt: Runtime, item: RawMessage | OversizedMessage) -> InboundMessage:
    """Store the raw bytes and commit the inbound row (idempotent by intake key and hash)."""
    return _archive(rt, item)[0]


def _archive(rt: Runtime, item: RawMessage | OversizedMessage) -> tuple[InboundMessage, bool]:
    """(the inbound row, whether this call created it); the raw bytes are stored first.

    Storing is content-addressed, so a message already archived costs one rewrite of the
    same file, never a second copy; that rare case is cheaper than a lookup per message.
    """
    data = item.headers if isinstance(item, OversizedMessage) else item.data
    sha, rel = store_raw(rt.settings.archive_dir, data)
    head = _head(rt, data) if data else None  # before the write lock
    now = rt.clock()
    with transaction(rt.engine) as session:
        existing = inbound_by_key(session, item.key)
        if existing is not None:
            return existing, False
        twin = inbound_by_sha(session, sha)
        row = InboundMessage(
            key=item.key,
            sha256=sha,
            archive_path=rel,
            size=item.size,
            received_at=now,
            message_id=head.message_id if head else "",
            from_addr=address_of(head) if head else "",
            subject=(head.subject if head else "")[:998],
            status=InboundStatus.duplicate if twin is not None else InboundStatus.archived,
            kind="oversized" if isinstance(item, OversizedMessage) else "",
        )
        add_archived(
            session,
            row,
            now=now,
            data={"key": item.key, "size": item.size, "duplicate_of": twin.id if twin else None},
        )
    log.info(
        "message_archived",
        msg=row.correlation_id,
        key=item.key,
        size=item.size,
        duplicate=twin is not None,
    )
    return row, True


def _head(rt: Runtime, data: bytes) -> ParsedMessage:
    """The header facts for the inbound row, read with bounded work (measured, then parsed in
    the guarded worker). A header block we refuse to parse, or one the parser fails on,
    leaves what the raw lines tell; process_one then refuses or retries the message."""
    try:
        head = read_message(data, rt.settings.limits, headers_only=True)
    except GuardedParseError as exc:  # never stops the intake: the message is still archived
        log.error("message_head_unparsed", error=str(exc).strip().splitlines()[-1][:500])
        head = None
    return head if isinstance(head, ParsedMessage) else unread_message(raw_facts(data))


def process_pending(rt: Runtime, stop: Callable[[], bool] = lambda: False) -> int:
    """Process every archived message, one transaction each; a failure parks the message.

    `stop()` is asked once before each message (and once more when none is left to
    claim): True ends the pass. Messages are claimed one at a time, so a message never
    waits behind another's lease in this process.
    """
    done = 0
    while not stop():
        with transaction(rt.engine) as session:
            batch = claim_inbound(
                session, now=rt.clock(), lease=LEASE, max_attempts=rt.settings.limits.max_attempts
            )
        if not batch:
            return done
        for inbound in batch:
            crash_point("after_claim")
            _process_safely(rt, inbound)
            done += 1
    return done


def _process_safely(rt: Runtime, inbound: InboundMessage) -> None:
    with structlog.contextvars.bound_contextvars(msg=inbound.correlation_id):
        _process_logged(rt, inbound)


def _process_logged(rt: Runtime, inbound: InboundMessage) -> None:
    started = time.perf_counter()
    crash_point("while_processing", about=inbound.subject)
    try:
        with transaction(rt.engine) as session:
            row = session.get(InboundMessage, inbound.id)
            if row is None:
                raise InvariantError("row is missing")
            outcome = process_one(session, rt, row)
            kind = row.kind
    except Exception as exc:  # the per-message boundary: park it, keep going
        if is_outage(exc):
            raise  # the database is away, not this message: the daemon waits and retries
        _park(rt, inbound, exc)
        return
    crash_point("after_process")
    log.info(
        "message_processed",
        kind=kind,
        outcome=outcome,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _park(rt: Runtime, inbound: InboundMessage, exc: Exception) -> None:
    """Record a failed attempt (counted at claim): retry later, or quarantine when used up."""
    with transaction(rt.engine) as session:
        row = session.get(InboundMessage, inbound.id)
        if row is None:
            raise InvariantError("row is missing")
        row.last_error = "".join(traceback.format_exception(exc))[-4000:]
        # The lease doubles as the retry delay: 1, 2, 4 … minutes before the next attempt.
        row.lease_until, row.lease_owner = rt.clock() + backoff(row.attempts), ""
        quarantine = row.attempts >= rt.settings.limits.max_attempts
        row.status = InboundStatus.quarantined if quarantine else InboundStatus.failed
        _settle(session, rt, row, "message_failed", error=repr(exc)[:500], attempts=row.attempts)
    log.error("message_failed", error=repr(exc), attempts=row.attempts, status=row.status)


def _thread_app(session: Session, msg: ParsedMessage) -> Application | None:
    tag = msg.application_tag
    if tag:
        app = application_by_number(session, tag)
        if app is not None:
            return app
    return application_by_thread(session, msg.thread_ids)


def process_one(session: Session, rt: Runtime, inbound: InboundMessage) -> str:
    """Classify one archived message and act on it; all writes in the caller's transaction."""
    raw = read_raw(rt.settings.archive_dir, inbound.archive_path)
    msg = read_message(raw, rt.settings.limits)
    if isinstance(msg, Unreadable):  # quarantined with the reason (and answered if we can)
        outcome = unreadable.refuse(session, rt, inbound, raw, msg)
    else:
        outcome = _dispatch(session, rt, inbound, msg, raw)
        inbound.status = InboundStatus.processed
    finish(session, rt, inbound, outcome)
    return outcome


def finish(
    session: Session, rt: Runtime, inbound: InboundMessage, outcome: str, **data: Any
) -> None:
    """The message is done (mail here, or an upload in the web account): stamped, its lease
    given up, and its `message_processed` event written, in the caller's transaction."""
    inbound.processed_at = rt.clock()
    inbound.lease_until, inbound.lease_owner = None, ""
    _settle(session, rt, inbound, "message_processed", kind=inbound.kind, outcome=outcome, **data)


def _settle(session: Session, rt: Runtime, row: InboundMessage, event: str, **data: Any) -> None:
    """Write the inbound row's new status with its event, in the caller's transaction."""
    session.add(row)
    if row.id is None:
        raise InvariantError("row.id is missing")
    record_event(
        session,
        entity="inbound",
        entity_id=row.id,
        event=event,
        at=rt.clock(),
        to_state=row.status,
        correlation_id=row.correlation_id,
        data=data,
    )


def _dispatch(
    session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage, raw: bytes
) -> str:
    if inbound.kind == "oversized":
        return correspondence.oversized(Context(session, rt, inbound, msg, raw, None, None))
    if msg.message_id:
        twin = session.exec(
            select(InboundMessage).where(
                InboundMessage.message_id == msg.message_id,
                InboundMessage.from_addr == address_of(msg),
                InboundMessage.status == InboundStatus.processed,
                InboundMessage.id != inbound.id,
            )
        ).first()
        if twin is not None:
            inbound.kind, inbound.reason = "duplicate", f"same Message-ID as m{twin.id}"
            return "duplicate"
    app = _thread_app(session, msg)
    sender = address_of(msg)  # the one identity rule; "" is never a known client
    if app is not None and not consent.may_write_in_thread(session, app, sender):
        app = None  # a stranger in an application's thread: a new message, not about it
    client = client_by_address(session, sender) if sender else None
    verdict = classify(
        msg,
        our_addresses=rt.our_addresses,
        accountants=frozenset(rt.settings.accountants),
        authserv_id=rt.settings.authserv_id,
        in_thread=app is not None,
        known_client=client is not None,
        in_ticket=app is None and support.ticket_for(session, msg) is not None,
    )
    inbound.kind, inbound.reason = verdict.kind, verdict.reason
    context = Context(session, rt, inbound, msg, raw, app, client)
    if verdict.kind not in _NEVER_CONFIRMS:
        waiting = consent.waiting_for(session, msg, sender, rt.clock())
        if waiting is not None:
            inbound.kind, inbound.reason = "confirmation", "one-time code from its address"
            return confirm.confirm(context, waiting)
    if app is not None:
        inbound.application_id = app.id
    handler = _HANDLERS.get(verdict.kind)
    if handler is None:
        return f"recorded ({verdict.reason})"
    outcome = handler(context)
    consent.remember_application(session, inbound.application_id)
    return outcome


# Robots and statements never carry a confirmation (an auto-reply quoting our code is not one).
_NEVER_CONFIRMS = (
    MessageKind.automatic,
    MessageKind.bounce,
    MessageKind.statement,
    MessageKind.statement_unverified,
)


def _thread_reply(c: Context) -> str:
    app = c.require_app()
    has_files = any(a for a in filing.pick(c.msg)[:2])
    if app.state == S.needs_fix and has_files and not _proven_for(c, app):
        return consent.ask(c, action="correction", entity_id=app.id or 0, ref=app.number)
    if app.state == S.needs_fix and has_files:
        return applications.correction(c)
    if has_files and app.state in (S.issued, S.cancelled, S.expired):
        return _application(c)
    return correspondence.status_reply(c)


def _proven_for(c: Context, app: Application) -> bool:
    return consent.proven(c.rt, c.msg, consent.application_addresses(c.session, app))


def _application(c: Context) -> str:
    """A product list alone from a registered address is an order; the rest, applications."""
    if c.client is not None and orders.is_order(c.msg, c.client):
        return orders.new_order(c)
    return applications.new_application(c)


def _contact_change(c: Context) -> str:
    """A contact change request; a mail naming no field we know becomes a support ticket."""
    client = c.require_client()
    outcome = contacts.request_change(c, client)
    return outcome or support.open_ticket(c.session, c.rt, c.inbound, c.msg, client)


def _ticket_reply(c: Context) -> str:
    return support.ticket_reply(c)


def _client_mail(c: Context) -> str:
    return support.open_ticket(c.session, c.rt, c.inbound, c.msg, c.require_client())


def _unknown_sender(c: Context) -> str:
    """Instructions and forms; an applicant asking for status gets its applications' state."""
    if consent.asks_status(c.msg) and consent.applications_of(c.session, address_of(c.msg)):
        return correspondence.status_reply(c)
    return correspondence.instructions(c, blank_form_attachments(c.rt.product_types))


_HANDLERS: dict[MessageKind, Handler] = {
    MessageKind.bounce: correspondence.bounce,
    MessageKind.statement: statements.statement,
    MessageKind.statement_unverified: statements.unverified,
    MessageKind.thread_reply: _thread_reply,
    MessageKind.application: _application,
    MessageKind.ticket_reply: _ticket_reply,
    MessageKind.contact_change: _contact_change,
    MessageKind.unsubscribe: subscriptions.unsubscribe,
    MessageKind.status_request: correspondence.status_reply,
    MessageKind.client_mail: _client_mail,
    MessageKind.unknown_sender: _unknown_sender,
}
