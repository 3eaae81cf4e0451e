"""A client's password exists in the mail delivered to the client and nowhere else.

The whole path runs through the real CLI (demo → run → pay → run → reset-password → run),
then every log line, every file under var/ and every column of every table is searched.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import sqlmodel
from sqlalchemy import MetaData, select
from sqlmodel import Session

from mailbot.issuance.credentials import ALPHABET, verify_password
from mailbot.storage.db import make_engine
from mailbot.storage.models import Client
from tests.e2e.helpers import body, mailbot, outbox_mails

pytestmark = pytest.mark.timeout(600)


def _forms(secret: str) -> list[bytes]:
    """The password as bytes, plain and base64-encoded at each of the three alignments."""
    forms = [secret.encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + secret.encode())
        forms.append(encoded[4 if pad else 0 : -4])  # the part that depends on the secret only
    return forms


def _found(data: bytes, secret: str) -> bool:
    return any(form in data for form in _forms(secret))


def _database_cells(db_url: str) -> list[tuple[str, bytes]]:
    """(table.column, value as bytes) for every cell of every table."""
    engine = make_engine(db_url)
    meta = MetaData()
    meta.reflect(engine)
    cells = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    cells.append((f"{table.name}.{column}", raw))
    engine.dispose()
    return cells


def test_the_password_is_only_in_the_delivered_mail(workdir: Path, db_url: str) -> None:
    env = {"MAILBOT_DATABASE_URL": db_url}
    logs: list[str] = []

    def cli(*args: str) -> str:
        proc = mailbot(workdir, "--log-level", "debug", *args, env=env)
        logs.extend([proc.stdout, proc.stderr])
        return proc.stdout

    cli("db", "upgrade")
    cli("demo")
    cli("run", "--once")
    [number] = re.findall(r"\b\d{4}-\d{5}\b", cli("invoices", "list"))
    cli("invoices", "pay", number)
    cli("run", "--once")
    issued = body(outbox_mails(workdir)[-1])
    first = issued.split("Пароль:")[1].split()[0]
    login = issued.split("Логин:")[1].split()[0]
    assert "must change" in cli("clients", "show", login)
    assert login in cli("clients", "list")
    assert "queued" in cli("clients", "reset-password", login, "--yes")
    cli("run", "--once")
    reset = body(outbox_mails(workdir)[-1])
    second = reset.split("Пароль:")[1].split()[0]
    assert first != second
    for secret in (first, second):
        assert len(secret) == 12 and set(secret) <= set(ALPHABET)

    delivered = workdir / "var/mail/outbox"
    mails = b"".join(p.read_bytes() for p in delivered.rglob("*") if p.is_file())
    assert _found(mails, first) and _found(mails, second)  # the search can find them

    for secret in (first, second):
        assert not any(_found(line.encode(), secret) for line in logs), "password in a log"
        for path in (workdir / "var").rglob("*"):
            if path.is_file() and delivered not in path.parents:
                assert not _found(path.read_bytes(), secret), f"password in {path}"
        for where, value in _database_cells(db_url):
            assert not _found(value, secret), f"password in {where}"

    engine = make_engine(db_url)
    with Session(engine) as s:
        client = s.exec(sqlmodel.select(Client)).one()
    engine.dispose()
    assert client.password_hash is not None
    assert client.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(client.password_hash, second)
    assert not verify_password(client.password_hash, first)
    assert client.must_change and client.credentials_seq == 2
