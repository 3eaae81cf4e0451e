"""The second factor: enabling with a confirmed code, recovery codes shown once and stored
hashed, log-in in two steps, one-time codes, throttled guessing, disabling needs the password."""

from __future__ import annotations

import hashlib

import pyotp
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.models_web import RecoveryCode
from mailbot.web import second_factor, throttle
from tests.conftest import FakeClock
from tests.web.authkit import (
    PASSWORD,
    PENDING,
    SECRET,
    add_client,
    code_at,
    csrf_of,
    enable,
    events,
    log_in,
    post_form,
)
from tests.web.authkit import web as web


def test_enabling_shows_ten_codes_once_and_stores_only_sealed_and_hashed(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    log_in(web)
    key, codes = enable(web, clock)
    assert len(codes) == 10 == len(set(codes))
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        stored = session.exec(select(RecoveryCode.code_hash)).all()
    assert client is not None and client.totp_secret and key not in client.totp_secret
    assert rt.vault.open(client.totp_secret) == key
    assert sorted(stored) == sorted(
        hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes
    )
    assert "Резервных кодов осталось: 10" in web.get("/security").text
    assert len(events(rt, "web_totp_enabled")) == 1


def test_wrong_confirmation_code_keeps_it_off(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    cid = add_client(rt)
    log_in(web)
    html = web.get("/security/totp").text
    pending = PENDING.search(html)
    assert pending
    r = web.post(
        "/security/totp",
        data={"csrf": csrf_of(html), "pending": pending.group(1), "code": "000000"},
    )
    assert r.status_code == 400 and 'id="code-error"' in r.text
    assert PENDING.search(r.text) is not None
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        assert client is not None and client.totp_secret is None


def test_a_pending_secret_of_another_session_is_refused(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    html = web.get("/security/totp").text
    pending, secret = PENDING.search(html), SECRET.search(html)
    assert pending and secret
    key = secret.group(1).replace(" ", "")
    post_form(web, "/logout", "/")
    log_in(web)
    status, body, _ = post_form(
        web,
        "/security/totp",
        "/security/totp",
        pending=pending.group(1),
        code=code_at(key, clock()),
    )
    assert status == 400 and "Форма устарела" in body


def _login_with_totp(web: TestClient, code: str) -> tuple[int, str]:
    assert log_in(web) == "/login/totp"
    status, _, location = post_form(web, "/login/totp", "/login/totp", code=code)
    return status, location


def test_log_in_asks_for_the_code_and_then_starts_a_full_session(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    key, _ = enable(web, clock)
    post_form(web, "/logout", "/")
    clock.advance(seconds=60)
    assert log_in(web) == "/login/totp"
    half = web.cookies["mb_session"]
    r = web.get("/", follow_redirects=False)
    assert r.headers["location"] == "/login/totp"
    assert "Шестизначный код" in web.get("/login/totp").text
    status, _, location = post_form(web, "/login/totp", "/login/totp", code="123 456")
    assert status == 400
    status, _, location = post_form(web, "/login/totp", "/login/totp", code=code_at(key, clock()))
    assert (status, location) == (303, "/")
    assert web.cookies["mb_session"] != half
    assert web.get("/", follow_redirects=False).status_code == 200
    assert len(events(rt, "web_totp_passed")) == 1


def test_a_code_is_accepted_once(rt: Runtime, web: TestClient, clock: FakeClock) -> None:
    add_client(rt)
    log_in(web)
    key, _ = enable(web, clock)
    post_form(web, "/logout", "/")
    clock.advance(seconds=60)
    code = code_at(key, clock())
    assert _login_with_totp(web, code) == (303, "/")
    post_form(web, "/logout", "/")
    assert _login_with_totp(web, code)[0] == 400


def test_the_confirmation_code_cannot_log_in(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    key, _ = enable(web, clock)
    post_form(web, "/logout", "/")
    assert _login_with_totp(web, code_at(key, clock()))[0] == 400


def test_recovery_code_works_once(rt: Runtime, web: TestClient, clock: FakeClock) -> None:
    add_client(rt)
    log_in(web)
    _, codes = enable(web, clock)
    post_form(web, "/logout", "/")
    assert _login_with_totp(web, codes[3].upper()) == (303, "/")
    post_form(web, "/logout", "/")
    assert _login_with_totp(web, codes[3])[0] == 400
    post_form(web, "/logout", "/login/totp")  # «Отменить вход»
    assert "Резервных кодов осталось: 8" in _full_login(web, codes[4])


def _full_login(web: TestClient, code: str) -> str:
    assert _login_with_totp(web, code) == (303, "/")
    return web.get("/security").text


def test_code_guessing_is_throttled(rt: Runtime, web: TestClient, clock: FakeClock) -> None:
    add_client(rt)
    log_in(web)
    key, _ = enable(web, clock)
    post_form(web, "/logout", "/")
    clock.advance(seconds=60)
    assert log_in(web) == "/login/totp"
    for _ in range(throttle.SECOND_FACTOR.free + 1):
        assert post_form(web, "/login/totp", "/login/totp", code="000000")[0] == 400
    status, body, _ = post_form(web, "/login/totp", "/login/totp", code=code_at(key, clock()))
    assert status == 429 and "Слишком много попыток" in body
    clock.advance(seconds=2)
    status, _, _ = post_form(web, "/login/totp", "/login/totp", code=code_at(key, clock()))
    assert status == 303


def test_half_logged_in_session_expires_in_ten_minutes(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    enable(web, clock)
    post_form(web, "/logout", "/")
    assert log_in(web) == "/login/totp"
    clock.advance(minutes=11)
    r = web.get("/login/totp", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.mark.parametrize("password", ["wrong-password", PASSWORD])
def test_disabling_needs_the_password(
    rt: Runtime, web: TestClient, clock: FakeClock, password: str
) -> None:
    cid = add_client(rt)
    log_in(web)
    enable(web, clock)
    status, _, _ = post_form(web, "/security/totp/disable", "/security/totp", password=password)
    with transaction(rt.engine) as session:
        client = session.get(Client, cid)
        left = session.exec(select(RecoveryCode)).all()
    assert client is not None
    if password == PASSWORD:
        assert status == 303 and client.totp_secret is None and left == []
        assert len(events(rt, "web_totp_disabled")) == 1
    else:
        assert status == 400 and client.totp_secret and len(left) == 10


def test_matched_step_accepts_a_neighbouring_step_only(clock: FakeClock) -> None:
    key = pyotp.random_base32()
    totp = pyotp.TOTP(key)
    here = totp.timecode(clock())
    for offset, expected in ((-1, here - 1), (0, here), (1, here + 1)):
        code = totp.generate_otp(here + offset)
        assert second_factor.matched_step(key, code, clock()) == expected
    assert second_factor.matched_step(key, totp.generate_otp(here + 3), clock()) is None
    assert second_factor.matched_step(key, "12ab56", clock()) is None
