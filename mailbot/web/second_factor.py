"""The optional second factor (ASVS 6.3.3): TOTP codes of an authenticator app (pyotp), ten
one-time recovery codes for a lost phone.

The secret is stored sealed by the runtime's vault (`Client.totp_secret`, Fernet; every host
needs the same MAILBOT_SECRET_KEY, as for the outbox). Until the client confirms it with a
code, the new secret travels only in the enable form, sealed together with the session's id.
A code is accepted once: the time step of the last accepted code is kept in the event log
(`web_totp_enabled` / `web_totp_passed`), and an older or equal step is refused. Guessing is
throttled per client (`throttle.SECOND_FACTOR`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

import pyotp
import segno
import structlog
from cryptography.fernet import InvalidToken
from sqlmodel import Session, col, delete, select
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.storage.db import transaction
from mailbot.storage.models import Client, Event
from mailbot.storage.models_web import RecoveryCode, WebSession
from mailbot.storage.queries import record_event
from mailbot.web import sessions, throttle
from mailbot.web.auth import recheck_password, set_cookie, too_many
from mailbot.web.notices import notify_change
from mailbot.web.visit import Visit, action, client_ip, field, page, render, secret_field

log = structlog.get_logger()

RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
STEP_EVENTS = ("web_totp_enabled", "web_totp_passed")

# --- pure pieces ---


def matched_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code `code` is (this one or a neighbour: clocks drift), or None."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    here = totp.timecode(now)
    for step in (here, here - 1, here + 1):
        if secrets.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def normalized_recovery(code: str) -> str:
    return "".join(ch for ch in code.casefold() if ch.isalnum())


def recovery_hash(code: str) -> str:
    return hashlib.sha256(normalized_recovery(code).encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7m2q-x9wta` (50 bits each, from `secrets`)."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as an inline SVG image (CSP allows `img-src data:`; no script)."""
    data_uri: str = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return data_uri


def grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- storage ---


def last_step(session: Session, client_id: int) -> int:
    """The time step of the client's last accepted TOTP code (-1: none yet)."""
    row = session.exec(
        select(Event)
        .where(
            Event.entity == "client",
            Event.entity_id == client_id,
            col(Event.event).in_(STEP_EVENTS),
        )
        .order_by(col(Event.id).desc())
        .limit(1)
    ).first()
    step = row.data.get("step") if row is not None else None
    return step if isinstance(step, int) else -1


def _use_recovery_code(session: Session, client_id: int, code: str, now: datetime) -> bool:
    if not normalized_recovery(code):
        return False
    row = session.exec(
        select(RecoveryCode).where(
            RecoveryCode.client_id == client_id,
            RecoveryCode.code_hash == recovery_hash(code),
            col(RecoveryCode.used_at).is_(None),
        )
    ).first()
    if row is None:
        return False
    row.used_at = now
    session.add(row)
    return True


def _opened_secret(v: Visit) -> str:
    try:
        return v.rt.vault.open(v.client.totp_secret or "")
    except (InvalidToken, ValueError):
        log.error("web_totp_secret_unreadable", client=v.client_id)  # another host's key
        return ""


# --- the log-in's second step (/login/totp) ---


def _login_page(v: Visit, *, status: int = 200, errors: dict[str, str] | None = None) -> Response:
    # client=None: half logged in, the page shows no navigation and no name
    return render(v, v.request, "totp-login.html.j2", status, client=None, errors=errors or {})


def _login_form(v: Visit) -> Response:
    return _login_page(v)


def _check_code(session: Session, v: Visit, code: str, now: datetime) -> dict[str, object]:
    """What the code proved: {"kind": "totp", "step": N}, {"kind": "recovery"} or {}."""
    session.get(Client, v.client_id, with_for_update=True)  # one check at a time per client
    secret = _opened_secret(v)
    step = matched_step(secret, code, now) if secret else None
    last = last_step(session, v.client_id)
    if step is not None and step > last:
        return {"kind": "totp", "step": step}
    if step is None and _use_recovery_code(session, v.client_id, code, now):
        return {"kind": "recovery", "step": last}  # keeps the replay guard's step
    return {}


def _login_submit(v: Visit) -> Response:
    code, now = field(v.form, "code", limit=40), v.rt.clock()
    key = throttle.second_factor_key(v.client_id)
    with transaction(v.rt.engine) as session:
        wait = throttle.claim(session, (key,), now)
    if wait:
        errors = {"code": too_many(wait)}
        return _login_page(v, status=429, errors=errors)
    with transaction(v.rt.engine) as session:
        proof = _check_code(session, v, code, now)
        if not proof:
            record_event(
                session,
                entity="client",
                entity_id=v.client_id,
                event="web_totp_failed",
                at=now,
                data={"ip": client_ip(v.request)},
            )
            token = ""
        else:
            throttle.release(session, reset=(key,))
            record_event(
                session,
                entity="client",
                entity_id=v.client_id,
                event="web_totp_passed",
                at=now,
                data=proof,
            )
            token = _full_session(session, v, now)
    if not token:
        errors = {"code": "Код не подошёл. Проверьте время на телефоне или введите резервный код."}
        return _login_page(v, status=400, errors=errors)
    response = RedirectResponse("/password" if v.client.must_change else "/", status_code=303)
    set_cookie(v.request, response, token)
    return response


def _full_session(session: Session, v: Visit, now: datetime) -> str:
    """Both factors passed: the half-way session ends, a new one (new token) starts."""
    half = session.get(WebSession, v.session.id, with_for_update=True)
    if half is not None and half.ended_at is None:
        sessions.end(session, half, "second_factor", now)
    return sessions.start(
        session,
        client_id=v.client_id,
        now=now,
        ip=client_ip(v.request),
        user_agent=v.request.headers.get("user-agent", ""),
        stage="full",
    )


# --- turning it on and off (/security/totp) ---


def _setup_page(v: Visit, *, secret: str = "", status: int = 200, error: str = "") -> Response:
    """The enable form with a new secret (or the same one again after a wrong code)."""
    secret = secret or pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=v.client.login or v.client.inn, issuer_name=v.rt.settings.service.name
    )
    return render(
        v,
        v.request,
        "totp.html.j2",
        status=status,
        enabled=False,
        secret=grouped(secret),
        pending=v.rt.vault.seal(f"{v.session.id}:{secret}"),
        qr=qr_data_uri(uri),
        errors={"code": error} if error else {},
    )


def _status_page(v: Visit, *, status: int = 200, error: str = "") -> Response:
    return render(
        v,
        v.request,
        "totp.html.j2",
        status=status,
        enabled=True,
        errors={"password": error} if error else {},
    )


def _totp_page(v: Visit) -> Response:
    return _status_page(v) if v.client.totp_secret else _setup_page(v)


def _pending_secret(v: Visit) -> str:
    """The secret the enable form was made with, if it was made for this session ("" if not)."""
    try:
        sid, _, secret = v.rt.vault.open(field(v.form, "pending", limit=1000)).partition(":")
    except (InvalidToken, ValueError):
        return ""
    return secret if sid == str(v.session.id) else ""


def _enable(v: Visit) -> Response:
    if v.client.totp_secret:
        return RedirectResponse("/security/totp", status_code=303)
    secret, now = _pending_secret(v), v.rt.clock()
    if not secret:
        return _setup_page(v, status=400, error="Форма устарела: отсканируйте новый QR-код.")
    step = matched_step(secret, field(v.form, "code", limit=40), now)
    if step is None:
        return _setup_page(
            v, secret=secret, status=400, error="Код не подошёл: введите код из приложения."
        )
    codes = new_recovery_codes()
    with transaction(v.rt.engine) as session:
        client = session.get(Client, v.client_id, with_for_update=True)
        if client is None or client.totp_secret:
            return RedirectResponse("/security/totp", status_code=303)
        client.totp_secret = v.rt.vault.seal(secret)
        session.add(client)
        session.execute(delete(RecoveryCode).where(col(RecoveryCode.client_id) == v.client_id))
        for code in codes:
            session.add(RecoveryCode(client_id=v.client_id, code_hash=recovery_hash(code)))
        record_event(
            session,
            entity="client",
            entity_id=v.client_id,
            event="web_totp_enabled",
            at=now,
            data={"step": step},
        )
        notify_change(session, v.rt, client, change="totp_on", ip=client_ip(v.request), now=now)
        sessions.end_all(session, v.client_id, "factor", now, keep=v.session.id)
    return render(v, v.request, "totp-codes.html.j2", codes=codes)


def _disable(v: Visit) -> Response:
    if not v.client.totp_secret:
        return RedirectResponse("/security/totp", status_code=303)
    ok, wait = recheck_password(v, secret_field(v.form, "password", limit=129))
    if not ok:
        error = too_many(wait) if wait else "Пароль указан неверно."
        return _status_page(v, status=429 if wait else 400, error=error)
    now = v.rt.clock()
    with transaction(v.rt.engine) as session:
        client = session.get(Client, v.client_id, with_for_update=True)
        if client is not None:
            client.totp_secret = None
            session.add(client)
            notify_change(
                session, v.rt, client, change="totp_off", ip=client_ip(v.request), now=now
            )
        session.execute(delete(RecoveryCode).where(col(RecoveryCode.client_id) == v.client_id))
        record_event(
            session, entity="client", entity_id=v.client_id, event="web_totp_disabled", at=now
        )
        sessions.end_all(session, v.client_id, "factor", now, keep=v.session.id)
    return RedirectResponse("/security", status_code=303)


routes: list[BaseRoute] = [
    Route("/login/totp", page(_login_form, stages=("totp",)), methods=["GET"]),
    Route("/login/totp", action(_login_submit, stages=("totp",)), methods=["POST"]),
    Route("/security/totp", page(_totp_page), methods=["GET"]),
    Route("/security/totp", action(_enable), methods=["POST"]),
    Route("/security/totp/disable", action(_disable), methods=["POST"]),
]
