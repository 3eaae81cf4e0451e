"""What the web security tests share: a client with a known password, a browser that logs in,
the CSRF token of a page. Imported by tests/web/test_auth*.py, test_sessions*.py,
test_security*.py, test_headers*.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pyotp
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailbot.issuance.credentials import hash_password
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, Event
from mailbot.storage.models_web import WebSession
from mailbot.web.app import create_app
from tests.conftest import FakeClock

PASSWORD = "Kj8-tundra-violet-42"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_client(
    rt: Runtime, *, login: str = "7707083893", password: str = PASSWORD, must_change: bool = False
) -> int:
    """A client who can log in with `password`; returns its id."""
    with transaction(rt.engine) as session:
        client = Client(
            inn=login.split("-")[0],
            kpp=login.split("-")[1] if "-" in login else "",
            org_name=f"ООО «Проба {login}»",
            email=f"c{login}@example.ru",
            login=login,
            password_hash=hash_password(password),
            must_change=must_change,
            created_at=rt.clock(),
        )
        session.add(client)
        session.flush()
        assert client.id is not None
        return client.id


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(web: TestClient, login: str = "7707083893", password: str = PASSWORD) -> str:
    """POST the log-in form as a browser would; returns the redirect target ("" if none)."""
    token = csrf_of(web.get("/login").text)
    r = web.post(
        "/login",
        data={"login": login, "password": password, "csrf": token},
        follow_redirects=False,
    )
    return r.headers.get("location", "") if r.status_code == 303 else ""


def events(rt: Runtime, name: str) -> list[Event]:
    with transaction(rt.engine) as session:
        return list(session.exec(select(Event).where(Event.event == name)).all())


def live_sessions(rt: Runtime, client_id: int) -> list[WebSession]:
    with transaction(rt.engine) as session:
        rows = session.exec(select(WebSession).where(WebSession.client_id == client_id)).all()
        return [ws for ws in rows if ws.ended_at is None]


def secure(rt: Runtime) -> Runtime:
    """The same runtime with the https cookie policy (`__Host-`, Secure)."""
    web = replace(rt.settings.web, secure_cookies=True, base_url="https://lk.example.ru")
    rt.settings = replace(rt.settings, web=web)
    return rt


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as tc:
        yield tc


def browser(rt: Runtime) -> TestClient:
    """Another browser on the same app (its own cookie jar); close it with `with`."""
    return TestClient(create_app(rt))


def post_form(web: TestClient, path: str, page: str, **data: str) -> tuple[int, str, str]:
    """POST a form with the CSRF token read from `page`: (status, body, location)."""
    token = csrf_of(web.get(page).text)
    r = web.post(path, data={"csrf": token, **data}, follow_redirects=False)
    return r.status_code, r.text, r.headers.get("location", "")


PENDING = re.compile(r'name="pending" value="([^"]+)"')
SECRET = re.compile(r'<code class="secret">([A-Z2-7 ]+)</code>')
CODE = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def enable(web: TestClient, clock: FakeClock) -> tuple[str, list[str]]:
    """Turn TOTP on as the page asks; returns the secret and the recovery codes shown."""
    html = web.get("/security/totp").text
    pending = PENDING.search(html)
    secret = SECRET.search(html)
    assert pending and secret and 'src="data:image/svg+xml' in html
    key = secret.group(1).replace(" ", "")
    r = web.post(
        "/security/totp",
        data={"csrf": csrf_of(html), "pending": pending.group(1), "code": code_at(key, clock())},
        follow_redirects=False,
    )
    assert r.status_code == 200, r.text
    return key, CODE.findall(r.text)
