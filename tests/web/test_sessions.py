"""Server-side sessions: new token at log-in, log-out ends it on the server, timeouts with an
injected clock, every session ended by a password change or an admin's reset, the cookie."""

from __future__ import annotations

from sqlmodel import select
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.models_web import WebSession
from mailbot.web import sessions
from tests.conftest import FakeClock
from tests.web.authkit import (
    PASSWORD,
    add_client,
    browser,
    csrf_of,
    events,
    live_sessions,
    log_in,
    post_form,
    secure,
)
from tests.web.authkit import web as web


def _redirected_to_login(web: TestClient, cookie: str) -> bool:
    web.cookies.clear()
    web.cookies.set("mb_session", cookie)
    r = web.get("/", follow_redirects=False)
    return r.status_code == 303 and r.headers["location"] == "/login"


def test_token_is_random_256_bits_and_only_its_hash_is_stored(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    log_in(web)
    token = web.cookies["mb_session"]
    assert len(token) >= 43
    with transaction(rt.engine) as session:
        ws = session.exec(select(WebSession)).one()
    assert ws.token_hash == sessions.token_hash(token) != token


def test_log_in_again_gives_a_new_token_and_ends_the_old_session(
    rt: Runtime, web: TestClient
) -> None:
    cid = add_client(rt)
    log_in(web)
    first = web.cookies["mb_session"]
    # GET /login while logged in goes home: a form kept open in another tab posts again
    assert web.get("/login", follow_redirects=False).headers["location"] == "/"
    web.cookies.set("mb_login", "x" * 30)
    r = web.post(
        "/login",
        data={"login": "7707083893", "password": PASSWORD, "csrf": "x" * 30},
        follow_redirects=False,
    )
    assert r.status_code == 303
    second = web.cookies["mb_session"]
    assert second != first
    assert len(live_sessions(rt, cid)) == 1
    assert _redirected_to_login(web, first)


def test_logout_ends_the_session_on_the_server(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    log_in(web)
    cookie = web.cookies["mb_session"]
    status, _, location = post_form(web, "/logout", "/")
    assert (status, location) == (303, "/login")
    assert live_sessions(rt, cid) == []
    assert _redirected_to_login(web, cookie)
    ended = events(rt, "web_session_ended")
    assert [e.data["reason"] for e in ended] == ["logout"]


def test_idle_timeout_ends_the_session(rt: Runtime, web: TestClient, clock: FakeClock) -> None:
    add_client(rt)
    log_in(web)
    clock.advance(minutes=29)
    assert web.get("/", follow_redirects=False).status_code == 200
    clock.advance(minutes=29)  # the last request moved last_seen
    assert web.get("/", follow_redirects=False).status_code == 200
    clock.advance(minutes=31)
    r = web.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert events(rt, "web_session_ended")[0].data["reason"] == "idle"


def test_absolute_timeout_ends_a_busy_session(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    for _ in range(12 * 3):
        assert web.get("/", follow_redirects=False).status_code == 200
        clock.advance(minutes=20)
    clock.advance(seconds=1)
    r = web.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert events(rt, "web_session_ended")[0].data["reason"] == "expired"


def test_password_change_ends_every_other_session(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    with browser(rt) as other:
        log_in(other)
        other_cookie = other.cookies["mb_session"]
        log_in(web)
        mine_before = web.cookies["mb_session"]
        clock.advance(seconds=5)
        new = "a-much-better-secret-99"
        status, _, location = post_form(
            web, "/password", "/password", current=PASSWORD, new=new, again=new
        )
        assert (status, location) == (303, "/")
        assert web.get("/", follow_redirects=False).status_code == 200  # a fresh session
        assert web.cookies["mb_session"] != mine_before
        assert _redirected_to_login(other, other_cookie)
        assert _redirected_to_login(other, mine_before)
    assert len(live_sessions(rt, cid)) == 1
    assert len(events(rt, "web_password_changed")) == 1


def test_admin_reset_ends_sessions_like_the_cli_does(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    log_in(web)
    cookie = web.cookies["mb_session"]
    clock.advance(seconds=5)
    with transaction(rt.engine) as session:  # what `clients reset-password` writes
        client = session.get(Client, cid)
        assert client is not None
        client.password_changed_at = clock()
        session.add(client)
        for ws in session.exec(select(WebSession)).all():
            ws.ended_at, ws.end_reason = clock(), "reset"
            session.add(ws)
    assert _redirected_to_login(web, cookie)


def test_session_older_than_password_change_is_refused_even_if_not_ended(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    log_in(web)
    cookie = web.cookies["mb_session"]
    clock.advance(seconds=5)
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        assert client is not None
        client.password_changed_at = clock()
        session.add(client)
    assert _redirected_to_login(web, cookie)
    assert events(rt, "web_session_ended")[0].data["reason"] == "password"


def test_cookie_is_host_prefixed_secure_httponly_lax_over_https(rt: Runtime) -> None:
    add_client(rt)
    secure(rt)
    from mailbot.web.app import create_app

    with TestClient(create_app(rt), base_url="https://lk.example.ru") as tc:
        form = tc.get("/login")
        login_cookie = form.headers["set-cookie"]
        assert login_cookie.startswith("__Host-mb_login=")
        token = csrf_of(form.text)
        r = tc.post(
            "/login",
            data={"login": "7707083893", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        set_cookies = r.headers.get_list("set-cookie")
        session_cookie = next(c for c in set_cookies if c.startswith("__Host-mb_session="))
        attrs = {a.strip().lower() for a in session_cookie.split(";")[1:]}
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= attrs
        assert not any(a.startswith("domain") for a in attrs)
        assert tc.get("/", follow_redirects=False).status_code == 200


def test_plain_http_localhost_cookie_is_httponly_lax(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    token = csrf_of(web.get("/login").text)
    r = web.post(
        "/login",
        data={"login": "7707083893", "password": PASSWORD, "csrf": token},
        follow_redirects=False,
    )
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("mb_session="))
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attrs


def test_expired_sessions_are_not_listed_as_live(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    log_in(web)
    clock.advance(minutes=31)
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        assert client is not None
        assert sessions.live(session, rt, client) == []
