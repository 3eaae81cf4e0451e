"""Log-in: one answer for an unknown login and a wrong password, throttling that slows and
lifts, the log-in form's own CSRF token, argon2 rehash, events."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type
from sqlmodel import select
from starlette.testclient import TestClient

from mailbot.issuance import credentials
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.web import auth, throttle
from tests.conftest import FakeClock
from tests.web.authkit import (
    PASSWORD,
    add_client,
    browser,
    csrf_of,
    events,
    live_sessions,
    log_in,
)
from tests.web.authkit import web as web


def _post(web: TestClient, login: str, password: str) -> tuple[int, str, dict[str, str]]:
    token = csrf_of(web.get("/login").text)
    r = web.post(
        "/login",
        data={"login": login, "password": password, "csrf": token},
        follow_redirects=False,
    )
    return r.status_code, r.text, dict(r.headers)


def test_right_password_starts_a_session_and_goes_home(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    assert log_in(web) == "/"
    assert web.get("/").status_code == 200
    assert len(live_sessions(rt, cid)) == 1
    assert [e.entity_id for e in events(rt, "web_login")] == [cid]


def test_unknown_login_and_wrong_password_get_the_same_answer(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    unknown = _post(web, "7707083894", PASSWORD)
    wrong = _post(web, "7707083893", PASSWORD + "x")
    assert unknown[0] == wrong[0] == 200
    assert unknown[1].replace("7707083894", "LOGIN") == wrong[1].replace("7707083893", "LOGIN")
    assert auth.WRONG in wrong[1]
    assert set(unknown[2]) == set(wrong[2])


def test_unknown_login_is_checked_against_a_dummy_hash(
    rt: Runtime, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = credentials.verify_password

    def spy(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(auth, "verify_password", spy)
    _post(web, "0000000000", PASSWORD)
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")


def test_failures_are_events_of_the_client_or_of_the_web(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    _post(web, "7707083893", "wrong-password")
    _post(web, "5000000000", "wrong-password")
    failed = events(rt, "web_login_failed")
    assert [(e.entity, e.entity_id) for e in failed] == [("client", cid), ("web", 0)]
    assert failed[1].data["login"] == "5000000000"


def test_a_password_typed_as_login_is_not_kept(rt: Runtime, web: TestClient) -> None:
    _post(web, "my secret words", "")
    assert events(rt, "web_login_failed")[0].data["login"] == "(not a login)"


def test_login_form_without_its_csrf_token_is_refused(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    web.get("/login")
    for data in (
        {"login": "7707083893", "password": PASSWORD},
        {"login": "7707083893", "password": PASSWORD, "csrf": "forged-token-forged-token"},
    ):
        r = web.post("/login", data=data, follow_redirects=False)
        assert r.status_code == 403
    assert events(rt, "web_login") == []


def test_login_csrf_cookie_must_match_the_field(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    token = csrf_of(web.get("/login").text)
    web.cookies.clear()
    r = web.post(
        "/login",
        data={"login": "7707083893", "password": PASSWORD, "csrf": token},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_throttling_slows_a_login_down_then_lifts(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    for _ in range(throttle.LOGIN.free):
        assert _post(web, "7707083893", "wrong-password")[0] == 200
    assert _post(web, "7707083893", "wrong-password")[0] == 200  # the first delay starts
    status, html, headers = _post(web, "7707083893", PASSWORD)
    assert status == 429
    assert "Слишком много попыток, попробуйте через 1 секунд" in html
    assert headers["retry-after"] == "1"
    clock.advance(seconds=1)
    assert log_in(web) == "/"


def test_throttling_counts_unknown_logins_alike(rt: Runtime, web: TestClient) -> None:
    for _ in range(throttle.LOGIN.free + 1):
        _post(web, "9999999999", "wrong-password")
    assert _post(web, "9999999999", "wrong-password")[0] == 429


def test_delay_grows_and_is_capped() -> None:
    waits = [throttle.delay(throttle.LOGIN, n) for n in range(1, 30)]
    assert waits[: throttle.LOGIN.free] == [0] * throttle.LOGIN.free
    assert waits[throttle.LOGIN.free : throttle.LOGIN.free + 4] == [1, 2, 4, 8]
    assert max(waits) == throttle.LOGIN.cap_seconds == waits[-1]


def test_success_resets_the_login_counter(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    for _ in range(throttle.LOGIN.free):
        _post(web, "7707083893", "wrong-password")
    assert log_in(web) == "/"
    web.post("/logout", data={"csrf": csrf_of(web.get("/").text)})
    for _ in range(throttle.LOGIN.free):
        assert _post(web, "7707083893", "wrong-password")[0] == 200


def test_address_is_throttled_across_logins(rt: Runtime, web: TestClient) -> None:
    for n in range(throttle.ADDRESS.free + 1):
        _post(web, f"{1000000000 + n}", "wrong-password")
    assert _post(web, "7707083893", PASSWORD)[0] == 429


def test_old_argon2_parameters_are_upgraded_at_log_in(rt: Runtime, web: TestClient) -> None:
    cid = add_client(rt)
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        assert client is not None
        client.password_hash = old.hash(PASSWORD)
        session.add(client)
    assert log_in(web) == "/"
    with transaction(rt.engine) as session:
        stored = session.exec(select(Client.password_hash).where(Client.id == cid)).one()
    assert stored is not None and "m=19456,t=2,p=1" in stored
    assert len(events(rt, "web_password_rehashed")) == 1


def test_current_hash_is_not_rewritten(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    assert log_in(web) == "/"
    assert events(rt, "web_password_rehashed") == []


def test_first_log_in_forces_the_password_change(rt: Runtime, web: TestClient) -> None:
    add_client(rt, must_change=True)
    assert log_in(web) == "/password"
    r = web.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/password"


def test_attackers_failures_do_not_lock_out_a_known_device(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    assert log_in(web) == "/"
    assert web.cookies.get("mb_device")
    web.post("/logout", data={"csrf": csrf_of(web.get("/").text)})
    with browser(rt) as attacker:
        for _ in range(throttle.LOGIN.free + 1):
            _post(attacker, "7707083893", "guess-guess-guess")
        assert _post(attacker, "7707083893", PASSWORD)[0] == 429
    assert log_in(web) == "/"  # the real client's browser has its own count


def test_a_device_cookie_vouches_only_for_its_own_login(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    add_client(rt, login="5001234567")
    assert log_in(web, "5001234567") == "/"
    web.post("/logout", data={"csrf": csrf_of(web.get("/").text)})
    for _ in range(throttle.LOGIN.free + 1):
        _post(web, "7707083893", "guess-guess-guess")
    assert _post(web, "7707083893", PASSWORD)[0] == 429
    web.cookies.set("mb_device", "forged" * 10)
    assert _post(web, "7707083893", PASSWORD)[0] == 429
