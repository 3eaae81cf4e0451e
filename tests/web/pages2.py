"""What the page tests of orders, details and support share: a logged-in client's browser.

A client row with a known argon2 hash (must_change off), logged in through POST /login,
and the CSRF token read from a page, as a browser would.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from mailbot.issuance.credentials import hash_password
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, ClientAddress
from mailbot.web.app import create_app

PASSWORD = "correct horse battery"
ON_SQLITE = pytest.mark.parametrize("db_factory", ["sqlite"], indirect=True)
ON_POSTGRESQL = pytest.mark.parametrize(
    "db_factory", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_client(
    rt: Runtime, inn: str = "7707083893", *, email: str = "boss@client.test", balance: str = "0"
) -> int:
    """A client that can log in with its INN and PASSWORD; its id."""
    with transaction(rt.engine) as s:
        row = Client(
            inn=inn,
            org_name=f"ООО «Клиент {inn}»",
            email=email,
            phone="+79161112233",
            contact_name="Иванов Иван",
            login=inn,
            password_hash=hash_password(PASSWORD),
            must_change=False,
            balance=Decimal(balance),
            created_at=rt.clock(),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        s.add(ClientAddress(client_id=row.id, address=email))
        return row.id


def browser(rt: Runtime, login: str) -> TestClient:
    """A TestClient logged in as `login` (redirects are not followed)."""
    web = TestClient(create_app(rt), follow_redirects=False)
    form = {"login": login, "password": PASSWORD}
    token = _CSRF.search(web.get("/login").text)  # the log-in form's own token, if it has one
    if token is not None:
        form["csrf"] = token.group(1)
    r = web.post("/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return web


def csrf(web: TestClient, path: str = "/") -> str:
    """The anti-forgery token of the logged-in session, read from a page's form."""
    found = _CSRF.search(web.get(path).text)
    assert found is not None
    return found.group(1)
