"""The authorization matrix of the web account (ASVS 8.2.2, 8.4.1, 3.5.1, 7.4.1, 7.4.3).

Two clients, A and B, each with an issued application; A also has an invoice, a ticket and a
second web session. The routes are read from the app itself, so a new route that takes an id
is in the matrix the day it is added — or fails it, when its parameter is one the matrix does
not know. Then: every POST without (or with a wrong) CSRF token is 403 and changes no row;
a session cookie replayed after log-out, a password change and an admin reset is refused.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel, select
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from mailbot.billing.invoices import create_invoice
from mailbot.issuance.credentials import hash_password, reset_password
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Barcode, Client, InvoiceStatus, SupportTicket
from mailbot.storage.models_clients import TicketMessage
from mailbot.storage.models_web import WebSession
from mailbot.web import sessions
from mailbot.web.app import create_app
from tests.conftest import FakeClock
from tests.fixtures.records import paid_application

PASSWORD_A = "a-long-secret-of-client-a"
PASSWORD_B = "b-long-secret-of-client-b"
INN_A, INN_B = "7707083893", "7736207543"
COOKIE = "mb_session"  # http://localhost base_url: no Secure, no __Host- prefix
LOGIN_CSRF = re.compile(r'name="csrf" value="([^"]*)"')

# POST routes that come before a full session exists: they carry the log-in form's own token.
PRE_SESSION = {"/login", "/login/totp"}


@dataclass(frozen=True)
class Scene:
    """A's objects, by kind, and the logged-in browsers of A and B."""

    application: str
    invoice: str
    ticket: str
    other_session: int  # a second session of A, the object of /security/sessions/{id}/…
    a: TestClient
    b: TestClient
    app: Starlette


def _client_with(rt: Runtime, inn: str, number: int, rows: int, password: str) -> str:
    """A paid, invoiced and issued application of a new client; its application number."""
    now = rt.clock()
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=now)
        app = paid_application(session, now, number, rows, inn=inn)
        invoice = create_invoice(
            session, app, count=rows, new_client=True, settings=rt.settings, now=now
        )
        invoice.status, invoice.paid_at = InvoiceStatus.paid, now
        session.add(invoice)
    assert issue_paid(rt) == 1
    with transaction(rt.engine) as session:
        client = session.exec(select(Client).where(Client.inn == inn)).one()
        client.password_hash, client.must_change = hash_password(password), False
        session.add(client)
    return app.number


def web_login(app: Starlette, login: str, password: str) -> TestClient:
    """A browser logged in as `login` (its cookie jar holds the session)."""
    browser = TestClient(app, follow_redirects=False)
    form = LOGIN_CSRF.search(browser.get("/login").text)  # the log-in form's own token
    csrf = {"csrf": html.unescape(form.group(1))} if form else {}
    r = browser.post("/login", data={"login": login, "password": password, **csrf})
    assert r.status_code == 303, r.text
    assert COOKIE in browser.cookies
    return browser


def web_csrf(rt: Runtime, browser: TestClient) -> str:
    """The anti-forgery token of the browser's session (what its forms carry)."""
    return _session_of(rt, browser).csrf


def _session_of(rt: Runtime, browser: TestClient) -> WebSession:
    with transaction(rt.engine) as session:
        ws = session.exec(
            select(WebSession).where(
                WebSession.token_hash == sessions.token_hash(browser.cookies[COOKIE])
            )
        ).one()
        session.expunge(ws)
        return ws


@pytest.fixture
def scene(rt: Runtime) -> Scene:
    number_a = _client_with(rt, INN_A, 1, 3, PASSWORD_A)
    _client_with(rt, INN_B, 2, 2, PASSWORD_B)
    now = rt.clock()
    with transaction(rt.engine) as session:
        client_a = session.exec(select(Client).where(Client.inn == INN_A)).one()
        assert client_a.id is not None
        ticket = SupportTicket(
            number=f"{now.year}-00001",
            client_id=client_a.id,
            sender=client_a.email,
            subject="Вопрос по кодам",
            created_at=now,
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        session.add(
            TicketMessage(
                ticket_id=ticket.id, direction="in", channel="web", body="Где коды?", created_at=now
            )
        )
        invoice_a = f"{now.year}-00001"  # A's application was invoiced first
        ticket_a = ticket.number
        assert session.exec(select(Barcode).where(Barcode.ean != "")).first() is not None
    app = create_app(rt)
    other = web_login(app, INN_A, PASSWORD_A)
    return Scene(
        application=number_a,
        invoice=invoice_a,
        ticket=ticket_a,
        other_session=_session_of(rt, other).id or 0,
        a=web_login(app, INN_A, PASSWORD_A),
        b=web_login(app, INN_B, PASSWORD_B),
        app=app,
    )


PARAM = re.compile(r"{(\w+)(?::\w+)?}")
NUMBER_BY_PREFIX = {"/applications/": "application", "/invoices/": "invoice", "/tickets/": "ticket"}


def _object_for(path: str, name: str, s: Scene) -> str:
    """The value of A's object for one path parameter; an unknown parameter fails the test."""
    if name == "session_id":
        return str(s.other_session)
    if name == "number":
        kinds = [kind for prefix, kind in NUMBER_BY_PREFIX.items() if path.startswith(prefix)]
        assert len(kinds) == 1, f"{path}: which kind of object does {{number}} name?"
        return str(getattr(s, kinds[0]))
    pytest.fail(f"{path}: path parameter {{{name}}} is not in the authorization matrix")


def _id_routes(routes: list[BaseRoute]) -> list[Route]:
    """Every route that takes a path parameter (static files are no client's object)."""
    found = []
    for r in routes:
        if isinstance(r, Mount):
            assert isinstance(r.app, StaticFiles), f"{r.path}: a mount the matrix cannot walk"
            continue
        assert isinstance(r, Route), f"{r!r}: a route the matrix cannot walk"
        if r.param_convertors:
            found.append(r)
    return found


def _fill(route: Route, s: Scene) -> str:
    return PARAM.sub(lambda m: _object_for(route.path, m.group(1), s), route.path)


def _methods(route: Route) -> list[str]:
    return sorted((route.methods or set()) - {"HEAD"})


def test_b_gets_404_on_every_route_that_takes_an_id_of_a(rt: Runtime, scene: Scene) -> None:
    routes = _id_routes(scene.app.routes)
    csrf_b = web_csrf(rt, scene.b)
    checked: list[str] = []
    before = _snapshot(rt)
    for route in routes:
        url = _fill(route, scene)
        for method in _methods(route):
            if method == "GET":
                r = scene.b.get(url)
            else:
                r = scene.b.post(url, data={"csrf": csrf_b, "body": "чужое", "code": "000000"})
            assert r.status_code == 404, f"B {method} {url}: {r.status_code}"
            checked.append(f"{method} {route.path}")
    assert _snapshot(rt) == before  # B's refused requests changed no row
    # The same URLs are A's own: A reaches them (the matrix names real objects, not misses).
    for route in routes:
        if "GET" in _methods(route):
            url = _fill(route, scene)
            r = scene.a.get(url)
            assert r.status_code == 200, f"A GET {url}: {r.status_code}"
    ended = [r for r in routes if r.path.startswith("/security/sessions/")]
    for route in ended:  # POST-only: A ending its own other session is not a 404
        r = scene.a.post(_fill(route, scene), data={"csrf": web_csrf(rt, scene.a)})
        assert r.status_code in {200, 303}, f"A POST {route.path}: {r.status_code}"
    assert len(checked) >= len(routes)


# The id routes of the contract's route table (/tmp/webcontract.md): the matrix is not empty
# and the pages it was written against are all there.
CONTRACT_ID_ROUTES = {
    ("GET", "/applications/{number}"),
    ("GET", "/applications/{number}/registry.xlsx"),
    ("GET", "/applications/{number}/barcodes.zip"),
    ("GET", "/applications/{number}/certificate.pdf"),
    ("GET", "/invoices/{number}/pdf"),
    ("GET", "/tickets/{number}"),
    ("POST", "/tickets/{number}"),
    ("POST", "/security/sessions/{session_id}/end"),
}


def test_every_id_route_of_the_contract_is_in_the_matrix(scene: Scene) -> None:
    """Each route's parameter is one the matrix maps (else `_object_for` fails the test)."""
    found = set()
    for route in _id_routes(scene.app.routes):
        assert PARAM.search(_fill(route, scene)) is None
        bare = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        found |= {(m, bare) for m in _methods(route)}
    assert found >= CONTRACT_ID_ROUTES, sorted(CONTRACT_ID_ROUTES - found)


def _snapshot(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, as text: what a refused request must leave as it was."""
    with rt.engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(row)) for row in conn.execute(sa_select(t)))
            for t in SQLModel.metadata.sorted_tables
        }


def _post_routes(app: Starlette) -> list[Route]:
    return [r for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or set())]


def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(
    rt: Runtime, scene: Scene
) -> None:
    routes = _post_routes(scene.app)
    assert any(r.path == "/logout" for r in routes)
    before = _snapshot(rt)
    for route in routes:
        url = _fill(route, scene)
        form = {"body": "x", "subject": "x", "phone": "+7 900 000-00-00", "amount": "100"}
        if route.path in PRE_SESSION:  # the right pair, so only the token is wrong
            form |= {"login": INN_A, "password": PASSWORD_A, "code": "000000"}
        for token in (None, "forged-" + "x" * 36, ""):
            data = form if token is None else {**form, "csrf": token}
            r = scene.a.post(url, data=data)
            allowed = {403, 303} if route.path == "/login/totp" else {403}  # full session: sent on
            assert r.status_code in allowed, f"POST {url} csrf={token!r}: {r.status_code}"
    assert _snapshot(rt) == before
    assert scene.a.get("/").status_code == 200  # A's session is alive: no POST ended it


def _refused(browser: TestClient) -> bool:
    r = browser.get("/")
    return r.status_code in {302, 303} and urlsplit(r.headers["location"]).path == "/login"


def _replay(app: Starlette, cookie: str) -> TestClient:
    thief = TestClient(app, follow_redirects=False)
    thief.cookies.set(COOKIE, cookie)
    return thief


def test_the_cookie_replayed_after_logout_is_refused(rt: Runtime, scene: Scene) -> None:
    cookie = scene.a.cookies[COOKIE]
    assert not _refused(_replay(scene.app, cookie))
    r = scene.a.post("/logout", data={"csrf": web_csrf(rt, scene.a)})
    assert r.status_code == 303
    assert _refused(_replay(scene.app, cookie))


def test_the_cookie_replayed_after_a_password_change_is_refused(rt: Runtime, scene: Scene) -> None:
    cookie = scene.a.cookies[COOKIE]
    new = "another-long-secret-of-a"
    r = scene.a.post(
        "/password",
        data={"csrf": web_csrf(rt, scene.a), "current": PASSWORD_A, "new": new, "again": new},
    )
    assert r.status_code == 303, r.text
    assert _refused(_replay(scene.app, cookie))
    assert not _refused(scene.a)  # the browser that changed it got a fresh session
    assert _refused(_replay(scene.app, scene.b.cookies[COOKIE])) is False  # B is untouched


def test_the_cookie_replayed_after_an_admin_reset_is_refused(
    rt: Runtime, scene: Scene, clock: FakeClock
) -> None:
    cookie = scene.a.cookies[COOKIE]
    clock.advance(seconds=1)
    assert reset_password(rt, INN_A) is not None
    assert _refused(_replay(scene.app, cookie))
    assert not _refused(scene.b)
    with transaction(rt.engine) as session:
        client = session.exec(select(Client).where(Client.inn == INN_A)).one()
        assert client.must_change
