"""Server-side sessions (ASVS 7.x): a random token in the cookie, its SHA-256 in `websession`.

A session ends on the server: at log-out, after `idle_minutes` without a request, after
`absolute_hours` in all, and when the client's password changes or an admin resets it
(`Client.password_changed_at` later than the session's start). `last_seen_at` is written at
most once a minute, so a busy page does not write on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import text, update
from sqlmodel import Session, col, select

from mailbot.runtime import Runtime
from mailbot.storage.db import is_postgres, read_only, transaction
from mailbot.storage.models import Client
from mailbot.storage.models_web import WebSession
from mailbot.storage.queries import end_web_sessions, record_event

TOUCH_EVERY = timedelta(seconds=60)


def touch_after(ws: WebSession) -> timedelta:
    """How long a session's last-seen stamp may age: 60 s plus up to 59 s by its id, so that
    sessions started in the same second are not all stamped in the same second a minute
    later (bench_web: 50 such stamps at once put that phase's p99 at 120-160 ms; whichever
    page ran then). The idle timeout is measured to within two minutes."""
    return TOUCH_EVERY + timedelta(seconds=(ws.id or 0) % 60)


# A session waiting for its second factor (stage "totp") lives this long at most.
SECOND_FACTOR_WINDOW = timedelta(minutes=10)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start(  # noqa: PLR0913 - the columns of the session row, keyword-only
    session: Session, *, client_id: int, now: datetime, ip: str, user_agent: str, stage: str
) -> str:
    """A new session (a new token at every log-in, ASVS 7.2.4); returns the cookie's token."""
    token = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG (ASVS 7.2.3)
    ws = WebSession(
        token_hash=token_hash(token),
        client_id=client_id,
        stage=stage,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        ip=ip,
        user_agent=user_agent[:300],
    )
    session.add(ws)
    session.flush()
    record_event(
        session,
        entity="client",
        entity_id=client_id,
        event="web_login",
        at=now,
        data={"session": ws.id, "ip": ip, "stage": stage},
    )
    return token


def expiry_reason(rt: Runtime, ws: WebSession, client: Client, now: datetime) -> str:
    """Why the session is over now ("" while it is alive)."""
    web = rt.settings.web
    if ws.ended_at is not None:
        return ws.end_reason or "ended"
    if client.password_changed_at is not None and client.password_changed_at > ws.created_at:
        return "password"
    if now - ws.created_at > timedelta(hours=web.absolute_hours):
        return "expired"
    if ws.stage == "totp" and now - ws.created_at > SECOND_FACTOR_WINDOW:
        return "expired"
    if now - ws.last_seen_at > timedelta(minutes=web.idle_minutes):
        return "idle"
    return ""


def lookup(rt: Runtime, token: str) -> tuple[WebSession, Client] | None:
    """The live session of this cookie and its client, or None (ending a dead one on the way).

    Read without a lock (every page asks this first; on SQLite a page must not queue behind
    the daemon's write); only ending a dead session or the once-a-minute stamp writes.
    """
    if not token or len(token) > 100:
        return None
    now = rt.clock()
    with read_only(rt.engine) as session:
        row = session.exec(  # one round trip for both
            select(WebSession, Client)
            .join(Client, col(Client.id) == col(WebSession.client_id))
            .where(WebSession.token_hash == token_hash(token))
        ).first()
    if row is None:
        return None
    ws, client = row
    reason = expiry_reason(rt, ws, client, now)
    if reason:
        if ws.ended_at is None:
            _end_dead(rt, ws, reason, now)
        return None
    if now - ws.last_seen_at >= touch_after(ws):
        _stamp(rt, ws, now)
    return ws, client


def _end_dead(rt: Runtime, ws: WebSession, reason: str, now: datetime) -> None:
    with transaction(rt.engine) as session:
        locked = session.get(WebSession, ws.id, with_for_update=True)
        if locked is not None and locked.ended_at is None:  # not ended meanwhile by another
            end(session, locked, reason, now)


def _stamp(rt: Runtime, ws: WebSession, now: datetime) -> None:
    """Write the last-seen stamp the idle timeout is measured from."""
    with transaction(rt.engine) as session:
        if is_postgres(rt.engine):
            # A stamp lost in a crash costs at most two minutes of idle time: its commit need
            # not wait for the WAL flush.
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        session.execute(
            update(WebSession).where(col(WebSession.id) == ws.id).values(last_seen_at=now)
        )
    ws.last_seen_at = now


def end(session: Session, ws: WebSession, reason: str, now: datetime) -> None:
    """End one session on the server, with its event."""
    ws.ended_at, ws.end_reason = now, reason
    session.add(ws)
    record_event(
        session,
        entity="client",
        entity_id=ws.client_id,
        event="web_session_ended",
        at=now,
        data={"session": ws.id, "reason": reason},
    )


def end_token(session: Session, token: str, reason: str, now: datetime) -> None:
    """End the session of this cookie value, if it is a live one."""
    if not token or len(token) > 100:
        return
    ws = session.exec(
        select(WebSession).where(WebSession.token_hash == token_hash(token)).with_for_update()
    ).first()
    if ws is not None and ws.ended_at is None:
        end(session, ws, reason, now)


def end_all(
    session: Session, client_id: int, reason: str, now: datetime, *, keep: int | None = None
) -> int:
    """End every live session of the client but `keep`; returns how many were ended."""
    return len(end_web_sessions(session, client_id, now=now, reason=reason, keep=keep))


def live(session: Session, rt: Runtime, client: Client) -> list[WebSession]:
    """The client's sessions that are alive now, newest first (the «Безопасность» list)."""
    now = rt.clock()
    rows = session.exec(
        select(WebSession)
        .where(WebSession.client_id == client.id, col(WebSession.ended_at).is_(None))
        .order_by(col(WebSession.id).desc())
    ).all()
    return [ws for ws in rows if not expiry_reason(rt, ws, client, now)]
