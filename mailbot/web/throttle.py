"""Guessing throttles (ASVS 6.1.1, 6.3.1): growing delays per login, per client address and per
second-factor, kept in `loginthrottle` so every web process sees the same counts.

An attempt is counted *before* its password is checked (`claim`), under a row lock: parallel
guesses queue on the row and the second one already sees the delay the first one set. A
success then gives the attempt back (`release`). Delays grow as powers of two past a free
allowance and stop at a cap, so an attacker slows the real client down but never locks it
out; a key quiet for `forget` starts again from zero.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, select

from mailbot.storage.models_web import LoginThrottle


@dataclass(frozen=True)
class Policy:
    """How many failures are free, and how the delay grows after them."""

    free: int  # failures with no delay at all (typos)
    cap_seconds: int  # the longest delay: no permanent lock-out of the real client
    forget: timedelta = timedelta(hours=24)


LOGIN = Policy(free=5, cap_seconds=300)  # one login, from anywhere
ADDRESS = Policy(free=20, cap_seconds=900)  # one client address, any login (an office's NAT)
SECOND_FACTOR = Policy(free=5, cap_seconds=300)  # TOTP or recovery codes of one client


@dataclass(frozen=True)
class Key:
    name: str  # "login:<login>", "ip:<address>", "totp:<client id>"
    policy: Policy


def login_keys(login: str, ip: str, *, device: str = "") -> tuple[Key, ...]:
    """The keys a password attempt counts against: the typed login (known or not), the address.

    A browser that already logged in to this login (`device`: its device cookie) counts
    against its own key instead of the login's, so failures elsewhere never slow the real
    client down on its own device (OWASP «device cookies»); the address key still applies.
    """
    if device:
        own = Key("device:" + hashlib.sha256(device.encode()).hexdigest()[:40], LOGIN)
    else:
        own = Key(f"login:{login.casefold()}"[:100], LOGIN)
    return (own, Key(f"ip:{ip}"[:100], ADDRESS))


def second_factor_key(client_id: int) -> Key:
    return Key(f"totp:{client_id}", SECOND_FACTOR)


def delay(policy: Policy, failures: int) -> int:
    """Seconds the next attempt waits after `failures` consecutive failures (pure)."""
    over = failures - policy.free
    if over <= 0:
        return 0
    return min(policy.cap_seconds, 1 << min(over - 1, 30))


def _locked(session: Session, name: str) -> LoginThrottle:
    """The key's row, created if new, locked until the end of the transaction."""
    session.execute(
        text(
            "INSERT INTO loginthrottle (key, failures) VALUES (:k, 0) ON CONFLICT (key) DO NOTHING"
        ),
        {"k": name},
    )
    row = session.exec(
        select(LoginThrottle)
        .where(LoginThrottle.key == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row


def wait_seconds(row: LoginThrottle, now: datetime) -> int:
    """Whole seconds until the key may try again (0: now)."""
    if row.blocked_until is None or row.blocked_until <= now:
        return 0
    return math.ceil((row.blocked_until - now).total_seconds())


def claim(session: Session, keys: tuple[Key, ...], now: datetime) -> int:
    """Count one attempt against every key, or refuse it: returns the seconds to wait (0: go on).

    A refused attempt changes nothing (waiting it out is all it takes). Rows are locked in
    key order, so two claims never deadlock.
    """
    rows = [(k, _locked(session, k.name)) for k in sorted(keys, key=lambda k: k.name)]
    wait = max(wait_seconds(row, now) for _, row in rows)
    if wait:
        return wait
    for key, row in rows:
        if row.last_failure_at is not None and now - row.last_failure_at > key.policy.forget:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        pause = delay(key.policy, row.failures)
        row.blocked_until = now + timedelta(seconds=pause) if pause else None
        session.add(row)
    session.flush()
    return 0


def release(session: Session, *, reset: tuple[Key, ...], give_back: tuple[Key, ...] = ()) -> None:
    """A claimed attempt succeeded: `reset` keys start again from zero; `give_back` keys
    (the address: one success must not wipe an attacker's record there) lose this attempt."""
    for key in reset:
        row = session.get(LoginThrottle, key.name)
        if row is not None:
            session.delete(row)
    for key in give_back:
        row = _locked(session, key.name)
        row.failures = max(0, row.failures - 1)
        row.blocked_until = None
        session.add(row)
    session.flush()
