"""The password rules of the personal account (ASVS 6.2): length only, no composition rules,
no truncation, and no password from the shipped list of the most common ones.

`templates/web/common-passwords.txt` is the public «10k most common» list (SecLists,
Passwords/Common-Credentials/10k-most-common.txt, MIT licence), one password a line; it is
compared case-insensitively, so «Password1» is as refused as «password1».
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from importlib import resources

from mailbot.issuance.credentials import HASHER

MIN_LENGTH, MAX_LENGTH = 8, 128  # ASVS 6.2.1 (≥ 8), 6.2.9 (≥ 64 allowed)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, case-folded (read once per process)."""
    text = resources.files("mailbot.templates").joinpath("web/common-passwords.txt")
    return frozenset(
        line.casefold() for line in text.read_text("utf-8").splitlines() if line.strip()
    )


def password_problem(new: str, *, current: str, login: str, inn: str) -> str:
    """Why `new` cannot be the client's password, in Russian ("" when it can)."""
    if not MIN_LENGTH <= len(new) <= MAX_LENGTH:
        return f"Пароль должен быть от {MIN_LENGTH} до {MAX_LENGTH} символов."
    folded = new.casefold()
    if folded in common_passwords():
        return "Этот пароль слишком распространён и легко угадывается: выберите другой."
    if any(part and part.casefold() in folded for part in (login, inn)):
        return "Пароль не должен содержать логин или ИНН: их знают многие."
    if new == current:
        return "Новый пароль должен отличаться от текущего."
    return ""


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """An argon2id hash of a random password, made with the same parameters as real ones: an
    unknown login is checked against it, so it costs the same time as a wrong password."""
    return HASHER.hash(secrets.token_urlsafe(16))
