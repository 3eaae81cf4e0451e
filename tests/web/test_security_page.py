"""The «Безопасность» page: live sessions listed, each can be ended; another client's
session is 404 and stays alive."""

from __future__ import annotations

from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from tests.web.authkit import add_client, browser, live_sessions, log_in, post_form
from tests.web.authkit import web as web


def test_page_lists_live_sessions_and_marks_this_device(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    with browser(rt) as other:
        other.headers["user-agent"] = "Phone Browser 1.0"
        log_in(other)
        web.headers["user-agent"] = "Desk Browser 2.0"
        log_in(web)
        html = web.get("/security").text
    assert "Phone Browser 1.0" in html and "Desk Browser 2.0" in html
    assert html.count("Это устройство.") == 1
    assert html.index("Это устройство.") < html.index("Desk Browser 2.0")
    assert html.index("Desk Browser 2.0") < html.index("Phone Browser 1.0")  # newest first
    assert html.count("Завершить") == len(live_sessions(rt, cid)) == 2


def test_ending_another_session_logs_that_browser_out(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    with browser(rt) as other:
        log_in(other)
        log_in(web)
        theirs = next(ws.id for ws in live_sessions(rt, cid) if ws.id != _mine(rt, cid))
        status, _, location = post_form(web, f"/security/sessions/{theirs}/end", "/security")
        assert (status, location) == (303, "/security")
        r = other.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    assert [ws.id for ws in live_sessions(rt, cid)] == [_mine(rt, cid)]


def test_ending_this_session_is_a_log_out(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    log_in(web)
    mine = _mine(rt, cid)
    status, _, location = post_form(web, f"/security/sessions/{mine}/end", "/security")
    assert (status, location) == (303, "/login")
    assert live_sessions(rt, cid) == []


def test_another_clients_session_is_not_found(rt: Runtime, web: TestClient) -> None:
    a = add_client(rt, login="7707083893")
    add_client(rt, login="5001234567")
    with browser(rt) as alice:
        log_in(alice, "7707083893")
        log_in(web, "5001234567")
        victim = live_sessions(rt, a)[0].id
        status, _, _ = post_form(web, f"/security/sessions/{victim}/end", "/security")
        assert status == 404
        assert alice.get("/", follow_redirects=False).status_code == 200
        status, _, _ = post_form(web, "/security/sessions/999999/end", "/security")
        assert status == 404


def _mine(rt: Runtime, client_id: int) -> int:
    """The newest live session of the client (the one this test logged in last)."""
    ids = [ws.id for ws in live_sessions(rt, client_id) if ws.id is not None]
    return max(ids)
