"""Client logins and passwords: generated with `secrets`, stored only as argon2id hashes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog
from argon2 import PasswordHasher, Type
from sqlmodel import Session, select

from mailbot.invariant import InvariantError
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import SECRET_MASK, Mail, render_body
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, OutboxStatus
from mailbot.storage.queries import end_web_sessions, record_event, unsent_credentials

log = structlog.get_logger()

# No 0/O, 1/l/I: passwords are read off a mail and typed by hand.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 12
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


def new_password() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PASSWORD_LENGTH))


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except Exception:  # noqa: BLE001 - argon2 raises several types for "does not match"
        return False


def login_for(inn: str, kpp: str, *, taken: bool) -> str:
    """INN, or INN-KPP when another branch already has the INN as its login."""
    return f"{inn}-{kpp}" if taken and kpp else inn


@dataclass(frozen=True)
class PasswordReset:
    """What a reset did: where the new password goes, the waiting mails it voided (outbox
    ids) and the web sessions it ended."""

    email: str
    superseded: list[int]
    sessions_ended: int


def reset_password(rt: Runtime, login: str) -> PasswordReset | None:
    """Give a client a new password and queue it, sealed, to the registered address.

    None when no client has this login. The plain password
    lives only in this call and in the outbox row's vault token until it is sent. In the
    same transaction: an earlier password mail not yet sent is dropped (it holds a void
    password; one being sent right now goes, and the new mail says the old one is void),
    every web session of the client ends, and the client must change the new password.
    """
    now = rt.clock()
    with transaction(rt.engine) as session:
        client = session.exec(select(Client).where(Client.login == login).with_for_update()).first()
        if client is None or client.id is None:
            return None
        password = new_password()
        client.password_hash, client.must_change = hash_password(password), True
        client.password_changed_at = now
        client.credentials_seq += 1
        session.add(client)
        superseded = _supersede_unsent(session, client.id, client.credentials_seq, now=now)
        sessions = end_web_sessions(session, client.id, now=now, reason="reset")
        _queue_password(session, rt, client, password, now=now)
        record_event(
            session,
            entity="client",
            entity_id=client.id,
            event="password_reset",
            at=now,
            data={
                "login": client.login,
                "seq": client.credentials_seq,
                "superseded_mails": superseded,
                "sessions_ended": sessions,
            },
        )
        log.info(
            "password_reset",
            login=client.login,
            seq=client.credentials_seq,
            superseded_mails=superseded,
            sessions_ended=len(sessions),
        )
        return PasswordReset(client.email, superseded, len(sessions))


def _supersede_unsent(session: Session, client_id: int, seq: int, *, now: datetime) -> list[int]:
    """Drop the client's password mails still waiting in the outbox; their ids."""
    dropped = []
    for row in unsent_credentials(session, client_id, now=now):
        if row.id is None:
            raise InvariantError("row.id is missing")
        before = row.status
        reason = f"superseded by password reset #{seq}: the password in it is void"
        row.status, row.secret = OutboxStatus.dropped, None  # the void password is forgotten
        row.held_reason = f"{row.held_reason} | dropped: {reason}" if row.held_reason else reason
        session.add(row)
        record_event(
            session,
            entity="outbox",
            entity_id=row.id,
            event="mail_dropped",
            at=now,
            from_state=before,
            to_state=row.status,
            correlation_id=row.correlation_id,
            data={"reason": reason},
        )
        dropped.append(row.id)
    return dropped


def _queue_password(
    session: Session, rt: Runtime, client: Client, password: str, *, now: datetime
) -> None:
    text = render_body(
        rt.env,
        "password_reset",
        {"client": client, "password_mask": SECRET_MASK, "service": rt.settings.service},
    )
    mail = Mail(to=(client.email,), subject="Новый пароль для входа", text=text)
    enqueue(
        session,
        mail,
        Outgoing(
            dedupe_key=f"client:{client.id}:credentials:{client.credentials_seq}",
            kind="password_reset",
            secret=password,
            vault=rt.vault,
        ),
        sender=rt.sender,
        now=now,
    )
