"""Log-in, log-out and the password change (the first log-in forces one, ASVS 6.4.1).

A log-in costs the same for an unknown login and a wrong password: both are checked against
an argon2 hash (a dummy one for an unknown login), both count against the same throttles and
both get the same page. The log-in form has its own anti-forgery token (there is no session
yet): a random value in a `__Host-` cookie and the same value in a hidden field.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog
from cryptography.fernet import InvalidToken
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.issuance.credentials import HASHER, hash_password, verify_password
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.models_web import WebSession
from mailbot.storage.queries import record_event
from mailbot.web import sessions, throttle
from mailbot.web.notices import notify_change
from mailbot.web.passwords import MAX_LENGTH, dummy_hash, password_problem
from mailbot.web.visit import (
    Visit,
    action,
    client_ip,
    cookie_name,
    page,
    render,
    runtime,
    secret_field,
)

log = structlog.get_logger()

MAX_LOGIN = 40  # Client.login
MIN_PASSWORD, MAX_PASSWORD = 8, MAX_LENGTH  # kept for callers of the skeleton
WRONG = "Неверный логин или пароль."
LOGIN_SHAPE = re.compile(r"[0-9]{10,12}(-[0-9]{9})?")  # INN or INN-KPP


def too_many(seconds: int) -> str:
    return f"Слишком много попыток, попробуйте через {seconds} секунд."


# --- the log-in form's anti-forgery token (there is no session yet) ---


def login_cookie_name(request: Request) -> str:
    secure = runtime(request).settings.web.secure_cookies
    return "__Host-mb_login" if secure else "mb_login"


def _login_token(request: Request) -> str:
    token = request.cookies.get(login_cookie_name(request), "")
    return token if 20 <= len(token) <= 64 else ""


def _with_login_cookie(request: Request, response: Response, token: str) -> Response:
    secure = runtime(request).settings.web.secure_cookies
    response.set_cookie(
        login_cookie_name(request), token, httponly=True, secure=secure, samesite="lax", path="/"
    )
    return response


def check_login_csrf(request: Request, form: FormData) -> None:
    """403 unless the form's token is the one in this browser's log-in cookie (ASVS 3.5.1)."""
    sent, kept = form.get("csrf"), _login_token(request)
    if not (isinstance(sent, str) and kept and secrets.compare_digest(sent, kept)):
        raise HTTPException(403, "csrf")


def login_page(request: Request, *, status: int = 200, **ctx: str) -> Response:
    """The log-in form, with this browser's log-in token (made here when it has none)."""
    token = _login_token(request) or secrets.token_urlsafe(32)
    response = render(None, request, "login.html.j2", status=status, csrf=token, **ctx)
    return _with_login_cookie(request, response, token)


def login_form(request: Request) -> Response:
    rt = runtime(request)
    found = sessions.lookup(rt, request.cookies.get(cookie_name(request), ""))
    if found is not None:  # already in: home, or the second step of this log-in
        return RedirectResponse("/login/totp" if found[0].stage == "totp" else "/", 303)
    return login_page(request)


# --- checking a log-in ---


@dataclass(frozen=True)
class Attempt:
    login: str
    password: str
    ip: str
    user_agent: str
    old_token: str = ""  # the session cookie the browser still had: ended at log-in (7.2.4)
    device: str = ""  # the device cookie, when it vouches for this login (throttle.login_keys)


@dataclass(frozen=True)
class Outcome:
    """What a log-in attempt came to: a session token, a wait, or a wrong pair."""

    token: str = ""
    stage: str = ""
    must_change: bool = False
    wait: int = 0


def authenticate(rt: Runtime, attempt: Attempt) -> Outcome:
    """Check one log-in (throttled; the same work for an unknown login and a wrong password)."""
    now = rt.clock()
    keys = throttle.login_keys(attempt.login, attempt.ip, device=attempt.device)
    with transaction(rt.engine) as session:
        wait = throttle.claim(session, keys, now)
        client = None
        if not wait and attempt.login:
            client = session.exec(select(Client).where(Client.login == attempt.login)).first()
            if client is not None:
                session.expunge(client)
    if wait:
        log.warning("web_login_throttled", ip=attempt.ip, wait=wait)
        return Outcome(wait=wait)
    stored = client.password_hash if client is not None else None
    ok = verify_password(stored or dummy_hash(), attempt.password) and stored is not None
    if client is None or client.id is None or not ok:
        _failed(rt, attempt, client, now)
        return Outcome()
    rehash = hash_password(attempt.password) if HASHER.check_needs_rehash(stored or "") else ""
    stage = "totp" if client.totp_secret else "full"
    with transaction(rt.engine) as session:
        throttle.release(session, reset=keys[:1], give_back=keys[1:])
        if rehash:
            _store_rehash(session, client.id, rehash, now)
        sessions.end_token(session, attempt.old_token, "relogin", now)
        token = sessions.start(
            session,
            client_id=client.id,
            now=now,
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            stage=stage,
        )
    return Outcome(token=token, stage=stage, must_change=client.must_change)


def _failed(rt: Runtime, attempt: Attempt, client: Client | None, now: datetime) -> None:
    with transaction(rt.engine) as session:
        if client is not None and client.id is not None:
            record_event(
                session,
                entity="client",
                entity_id=client.id,
                event="web_login_failed",
                at=now,
                data={"ip": attempt.ip},
            )
        else:  # an unknown login: the event log's "web" entity (id 0) keeps what was typed,
            # unless it is no login at all (a password typed into the wrong field)
            typed = attempt.login if LOGIN_SHAPE.fullmatch(attempt.login) else "(not a login)"
            record_event(
                session,
                entity="web",
                entity_id=0,
                event="web_login_failed",
                at=now,
                data={"ip": attempt.ip, "login": typed},
            )
    log.info("web_login_failed", ip=attempt.ip, known=client is not None)


def recheck_password(v: Visit, password: str) -> tuple[bool, int]:
    """Re-authentication inside a session (password change, second factor off, e-mail change):
    (the password is right, seconds to wait). Throttled and counted like a log-in."""
    now = v.rt.clock()
    keys = throttle.login_keys(v.client.login or f"id:{v.client_id}", client_ip(v.request))
    with transaction(v.rt.engine) as session:
        wait = throttle.claim(session, keys, now)
    if wait:
        return False, wait
    ok = verify_password(v.client.password_hash or dummy_hash(), password)
    ok = ok and v.client.password_hash is not None
    with transaction(v.rt.engine) as session:
        if ok:
            throttle.release(session, reset=keys[:1], give_back=keys[1:])
        else:
            record_event(
                session,
                entity="client",
                entity_id=v.client_id,
                event="web_recheck_failed",
                at=now,
                data={"ip": client_ip(v.request), "path": v.request.url.path},
            )
    return ok, 0


def _store_rehash(session: Session, client_id: int, new_hash: str, now: datetime) -> None:
    """The stored hash, upgraded to the current argon2 parameters (ASVS 6.2.x, 11.4.2)."""
    row = session.get(Client, client_id, with_for_update=True)
    if row is None:
        return
    row.password_hash = new_hash
    session.add(row)
    record_event(
        session, entity="client", entity_id=client_id, event="web_password_rehashed", at=now
    )


# --- the device cookie: this browser logged in to this login before ---

DEVICE_DAYS = 180


def device_cookie_name(request: Request) -> str:
    secure = runtime(request).settings.web.secure_cookies
    return "__Host-mb_device" if secure else "mb_device"


def vouched_device(rt: Runtime, cookie: str, login: str) -> str:
    """The device cookie if it was issued by us for this very login ("" otherwise)."""
    if not cookie or not login or len(cookie) > 500:
        return ""
    try:
        return cookie if rt.vault.open(cookie) == f"device:{login}" else ""
    except (InvalidToken, ValueError):
        return ""


def _with_device_cookie(request: Request, response: Response, login: str) -> None:
    rt = runtime(request)
    response.set_cookie(
        device_cookie_name(request),
        rt.vault.seal(f"device:{login}"),
        max_age=DEVICE_DAYS * 86400,
        httponly=True,
        secure=rt.settings.web.secure_cookies,
        samesite="lax",
        path="/",
    )


async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    check_login_csrf(request, form)
    login = form.get("login")
    typed = login.strip()[:MAX_LOGIN] if isinstance(login, str) else ""
    rt = runtime(request)
    attempt = Attempt(
        login=typed,
        password=secret_field(form, "password", limit=MAX_PASSWORD + 1),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        old_token=request.cookies.get(cookie_name(request), ""),
        device=vouched_device(rt, request.cookies.get(device_cookie_name(request), ""), typed),
    )
    outcome = await run_in_threadpool(authenticate, rt, attempt)
    if outcome.wait:
        response = login_page(
            request, status=429, error=too_many(outcome.wait), login=attempt.login
        )
        response.headers["retry-after"] = str(outcome.wait)
        return response
    if not outcome.token:
        return login_page(request, error=WRONG, login=attempt.login)
    if outcome.stage == "totp":
        target = "/login/totp"
    else:
        target = "/password" if outcome.must_change else "/"
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, outcome.token)
    response.delete_cookie(login_cookie_name(request), path="/")
    _with_device_cookie(request, response, attempt.login)
    return response


def set_cookie(request: Request, response: Response, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure and `__Host-` where served by https."""
    secure = runtime(request).settings.web.secure_cookies
    response.set_cookie(
        cookie_name(request), token, httponly=True, secure=secure, samesite="lax", path="/"
    )


def _logout(v: Visit) -> Response:
    with transaction(v.rt.engine) as session:
        ws = session.get(WebSession, v.session.id, with_for_update=True)
        if ws is not None and ws.ended_at is None:
            sessions.end(session, ws, "logout", v.rt.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie_name(v.request), path="/")
    return response


# --- the password change ---


def _password_form(v: Visit) -> Response:
    return render(v, v.request, "password.html.j2", forced=v.client.must_change)


def password_errors(v: Visit, current: str, new: str, again: str) -> dict[str, str]:
    """Field → what is wrong with it (ASVS 6.2.3: the current password is asked for)."""
    errors: dict[str, str] = {}
    ok, wait = recheck_password(v, current)
    if wait:
        errors["current"] = too_many(wait)
    elif not ok:
        errors["current"] = "Текущий пароль указан неверно."
    problem = password_problem(new, current=current, login=v.client.login or "", inn=v.client.inn)
    if problem:
        errors["new"] = problem
    elif new != again:
        errors["again"] = "Пароли не совпадают."
    return errors


def _password_submit(v: Visit) -> Response:
    current, new, again = (
        secret_field(v.form, n, limit=MAX_PASSWORD + 1) for n in ("current", "new", "again")
    )
    errors = password_errors(v, current, new, again)
    if errors:
        return render(
            v, v.request, "password.html.j2", status=400, errors=errors, forced=v.client.must_change
        )
    now = v.rt.clock()
    with transaction(v.rt.engine) as session:
        token = change_password(session, v, new, now)
    response = RedirectResponse("/", status_code=303)
    set_cookie(v.request, response, token)
    return response


def change_password(session: Session, v: Visit, new: str, now: datetime) -> str:
    """Store the new hash, end every session (this one too, ASVS 7.4.3), start a fresh one for
    this browser; returns its token."""
    client = session.get(Client, v.client_id, with_for_update=True)
    if client is None:
        raise RuntimeError("client vanished")
    client.password_hash = hash_password(new)
    client.must_change = False
    client.password_changed_at = now
    session.add(client)
    record_event(
        session, entity="client", entity_id=v.client_id, event="web_password_changed", at=now
    )
    notify_change(session, v.rt, client, change="password", ip=client_ip(v.request), now=now)
    sessions.end_all(session, v.client_id, "password", now)
    return sessions.start(
        session,
        client_id=v.client_id,
        now=now,
        ip=client_ip(v.request),
        user_agent=v.request.headers.get("user-agent", ""),
        stage="full",
    )


routes: list[BaseRoute] = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", action(_logout, stages=("full", "totp")), methods=["POST"]),
    Route("/password", page(_password_form), methods=["GET"]),
    Route("/password", action(_password_submit), methods=["POST"]),
]
