"""Client logins and passwords: generated with `secrets`, stored only as argon2id hashes."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type

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
