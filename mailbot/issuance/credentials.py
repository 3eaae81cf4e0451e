"""Client logins and passwords: generated with `secrets`, stored only as argon2id hashes."""

from __future__ import annotations

import secrets

import structlog
from argon2 import PasswordHasher, Type
from sqlmodel import select

from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import SECRET_MASK, Mail, render_body
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.queries import record_event

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


def reset_password(rt: Runtime, login: str) -> str | None:
    """Give a client a new password and queue it, sealed, to the registered address.

    Returns that address, or None when no client has this login. The plain password
    lives only in this call and in the outbox row's vault token until it is sent.
    """
    now = rt.clock()
    with transaction(rt.engine) as session:
        client = session.exec(select(Client).where(Client.login == login)).first()
        if client is None or client.id is None:
            return None
        password = new_password()
        client.password_hash, client.must_change = hash_password(password), True
        client.credentials_seq += 1
        session.add(client)
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
        record_event(
            session,
            entity="client",
            entity_id=client.id,
            event="password_reset",
            at=now,
            data={"login": client.login, "seq": client.credentials_seq},
        )
        log.info("password_reset", login=client.login, seq=client.credentials_seq)
        return client.email
