"""CSRF on every POST route of the app (ASVS 3.5.1) and no state change by GET (3.5.3):
the routes are read from the app itself, so a page added later is covered too."""

from __future__ import annotations

import re

import pytest
from sqlmodel import func, select
from starlette.routing import Route
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Event
from mailbot.storage.models_web import WebSession
from mailbot.web.app import page_routes
from tests.web.authkit import add_client, live_sessions, log_in
from tests.web.authkit import web as web

PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
HALF_LOGGED_IN = {"/login/totp"}  # POST only with a session waiting for its second factor
OWN_TOKEN = {"/login"}  # its token is the log-in cookie's (test_auth_login)


def routes_with(method: str) -> list[str]:
    return sorted(
        {
            r.path
            for r in page_routes()
            if isinstance(r, Route) and r.methods and method in r.methods
        }
    )


def concrete(path: str, session_id: int) -> str:
    """The path with a plausible value for each parameter (this client's own session id)."""

    def value(m: re.Match[str]) -> str:
        return (
            str(session_id)
            if m.group(1) == "session_id"
            else ("1" if m.group(2) == "int" else "X-1")
        )

    return PARAM.sub(value, path)


def state(rt: Runtime) -> tuple[int, list[tuple[int | None, object]]]:
    """What a forged request must not change: the event log and the sessions."""
    with transaction(rt.engine) as session:
        count = session.exec(select(func.count()).select_from(Event)).one()
        rows = session.exec(select(WebSession).order_by(WebSession.id)).all()  # type: ignore[arg-type]
        return count, [(ws.id, ws.ended_at) for ws in rows]


def test_every_post_route_is_covered_here() -> None:
    posts = routes_with("POST")
    assert {"/logout", "/password", "/security/totp", "/security/totp/disable"} <= set(posts)
    assert "/security/sessions/{session_id:int}/end" in posts


@pytest.mark.parametrize("forged", [None, "", "wrong-token-wrong-token-wrong"])
def test_post_without_the_right_token_is_403_and_changes_nothing(
    rt: Runtime, web: TestClient, forged: str | None
) -> None:
    cid = add_client(rt)
    log_in(web)
    mine = live_sessions(rt, cid)[0].id
    assert mine is not None
    for path in routes_with("POST"):
        if path in HALF_LOGGED_IN | OWN_TOKEN:
            continue
        before = state(rt)
        data = {"password": "x", "code": "000000", "current": "x", "new": "y", "again": "y"}
        if forged is not None:
            data["csrf"] = forged
        r = web.post(concrete(path, mine), data=data, follow_redirects=False)
        assert r.status_code == 403, path
        assert state(rt) == before, path
    assert web.get("/", follow_redirects=False).status_code == 200  # still logged in


def test_second_factor_post_needs_the_token_too(rt: Runtime, web: TestClient) -> None:
    from mailbot.storage.models import Client

    cid = add_client(rt)
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        assert client is not None
        client.totp_secret = rt.vault.seal("JBSWY3DPEHPK3PXP")
        session.add(client)
    assert log_in(web) == "/login/totp"
    before = state(rt)
    for path in sorted(HALF_LOGGED_IN):
        r = web.post(path, data={"code": "000000"}, follow_redirects=False)
        assert r.status_code == 403
    assert state(rt) == before


def test_get_routes_change_nothing(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    log_in(web)
    mine = live_sessions(rt, cid)[0].id
    assert mine is not None
    before = state(rt)[0]
    for path in routes_with("GET"):
        r = web.get(concrete(path, mine), follow_redirects=False)
        assert r.status_code < 500, path
    assert state(rt)[0] == before
