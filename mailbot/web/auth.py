"""Log-in, log-out and the password change (the first log-in forces one, ASVS 6.4.1)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.issuance.credentials import hash_password, verify_password
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.models_web import WebSession
from mailbot.storage.queries import record_event
from mailbot.web import sessions
from mailbot.web.visit import Visit, action, client_ip, cookie_name, field, page, render, runtime

MIN_PASSWORD, MAX_PASSWORD = 8, 128


def login_form(request: Request) -> Response:
    return render(None, request, "login.html.j2")


async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    login = str(form.get("login") or "").strip()[:40]
    password = str(form.get("password") or "")[: MAX_PASSWORD + 1]
    rt = runtime(request)
    now = rt.clock()
    with transaction(rt.engine) as session:
        client = (
            session.exec(select(Client).where(Client.login == login)).first() if login else None
        )
        ok = bool(
            client and client.password_hash and verify_password(client.password_hash, password)
        )
        if not ok or client is None or client.id is None:
            return render(
                None,
                request,
                "login.html.j2",
                status=200,
                error="Неверный логин или пароль.",
                login=login,
            )
        token = sessions.start(
            session,
            client_id=client.id,
            now=now,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            stage="full",
        )
    target = "/password" if client.must_change else "/"
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, token)
    return response


def set_cookie(request: Request, response: Response, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure and `__Host-` where served by https."""
    secure = runtime(request).settings.web.secure_cookies
    response.set_cookie(
        cookie_name(request), token, httponly=True, secure=secure, samesite="lax", path="/"
    )


def _logout(v: Visit) -> Response:
    with transaction(v.rt.engine) as session:
        ws = session.get(WebSession, v.session.id)
        if ws is not None and ws.ended_at is None:
            sessions.end(session, ws, "logout", v.rt.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie_name(v.request), path="/")
    return response


def _password_form(v: Visit) -> Response:
    return render(v, v.request, "password.html.j2", forced=v.client.must_change)


def _password_submit(v: Visit) -> Response:
    current, new, again = (
        field(v.form, n, limit=MAX_PASSWORD + 1) for n in ("current", "new", "again")
    )
    errors: dict[str, str] = {}
    if not (v.client.password_hash and verify_password(v.client.password_hash, current)):
        errors["current"] = "Текущий пароль указан неверно."
    if not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
        errors["new"] = f"Пароль должен быть от {MIN_PASSWORD} до {MAX_PASSWORD} символов."
    elif new == current:
        errors["new"] = "Новый пароль должен отличаться от текущего."
    elif new != again:
        errors["again"] = "Пароли не совпадают."
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
    """Store the new hash, end every session (this one too), start a fresh one for this browser."""
    client = session.get(Client, v.client_id)
    if client is None:
        raise RuntimeError("client vanished")
    client.password_hash = hash_password(new)
    client.must_change = False
    client.password_changed_at = now
    session.add(client)
    record_event(
        session, entity="client", entity_id=v.client_id, event="web_password_changed", at=now
    )
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
    Route("/logout", action(_logout), methods=["POST"]),
    Route("/password", page(_password_form), methods=["GET"]),
    Route("/password", action(_password_submit), methods=["POST"]),
]
