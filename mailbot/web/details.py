"""«Контакты»: the client's phone, e-mail, contact person and address, and a change request.

A change is a `ContactChangeRequest` on the mail path's table, checked by the mail path's
`contacts.checked_value` and decided by `mailbot requests approve|reject` as a mailed one;
nothing changes until then, and the page shows the request as pending. The log-in proves
the client (no confirmation code); a new e-mail needs the current password as well
(ASVS 7.5.1: the address is where a reset password would go). The request's sender is
the registered address: the receipt and the decision are mailed there (and, for a new
address, to it).
"""

from __future__ import annotations

from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.handlers import contacts
from mailbot.storage.db import read_only, transaction
from mailbot.storage.models import Client
from mailbot.storage.models_clients import ContactChangeRequest
from mailbot.web.auth import MAX_PASSWORD, recheck_password
from mailbot.web.visit import Visit, action, field, not_found, page, render, secret_field

FIELDS = ("phone", "email", "contact_name", "address")
MAX_LENGTH = {"phone": 40, "email": 320, "contact_name": 200, "address": 500}
INVALID = {
    "phone": "Телефон не распознан. Укажите его в виде +7 916 123-45-67.",
    "email": "Адрес электронной почты указан неверно.",
    "contact_name": "Укажите контактное лицо.",
    "address": "Укажите адрес.",
}
WAITING = {"pending": "на рассмотрении", "unconfirmed": "ждёт подтверждения кодом из письма"}


def _pending(session: Session, client_id: int) -> list[dict[str, object]]:
    rows = session.exec(
        select(ContactChangeRequest)
        .where(
            ContactChangeRequest.client_id == client_id,
            col(ContactChangeRequest.status).in_(list(WAITING)),
        )
        .order_by(col(ContactChangeRequest.id))
    )
    return [
        {
            "id": r.id,
            "status": WAITING[r.status],
            "created_at": r.created_at,
            "changes": [(contacts.FIELD_NAMES.get(k, k), v) for k, v in r.changes.items()],
        }
        for r in rows
    ]


def _page(v: Visit, status: int = 200, **ctx: object) -> Response:
    with read_only(v.rt.engine) as session:
        client = session.get(Client, v.client_id)
        if client is None:
            raise not_found()
        pending = _pending(session, v.client_id)
    current = {name: str(getattr(client, name) or "") for name in FIELDS}
    base: dict[str, object] = {"errors": {}, "values": current, "sent": False}
    return render(
        v,
        v.request,
        "details.html.j2",
        status=status,
        current=current,
        labels=contacts.FIELD_NAMES,
        pending=pending,
        **(base | ctx),
    )


def _show(v: Visit) -> Response:
    return _page(v, sent=v.request.query_params.get("sent") == "1")


def requested(
    current: dict[str, str], sent: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(changes, errors) of the form against the current values (pure).

    An empty field or the value already on file is no change; a value the mail path would
    not accept is an error next to its field.
    """
    changes: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in FIELDS:
        value = " ".join(sent.get(name, "").split())
        if not value or value == current.get(name, ""):
            continue
        if len(value) > MAX_LENGTH[name]:
            errors[name] = f"Не больше {MAX_LENGTH[name]} символов."
            continue
        checked = contacts.checked_value(name, value)
        if checked is None:
            errors[name] = INVALID[name]
        elif checked != current.get(name, ""):
            changes[name] = checked
    return changes, errors


def _submit(v: Visit) -> Response:
    sent = {name: field(v.form, name, limit=1000) for name in FIELDS}
    # A new e-mail needs the password, checked (and throttled like a log-in) before the
    # request's transaction: the client as read at the start of this request decides.
    recheck = _password_error(v) if sent["email"] and sent["email"] != v.client.email else {}
    with transaction(v.rt.engine) as session:
        client = session.get(Client, v.client_id, with_for_update=True)
        if client is None:
            raise not_found()
        current = {name: str(getattr(client, name) or "") for name in FIELDS}
        changes, errors = requested(current, sent)
        if not changes and not errors:
            errors["form"] = "Измените хотя бы одно поле."
        if "email" in changes and not errors:
            errors.update(recheck)
        if errors:
            refused = errors
        else:
            contacts.request_web_change(session, v.rt, client, changes)
            refused = {}
    if refused:  # what was typed stays; a field left empty shows the value on file
        values = {name: sent[name] or current[name] for name in FIELDS}
        return _page(v, 400, errors=refused, values=values)
    return RedirectResponse("/details?sent=1", status_code=303)


def _password_error(v: Visit) -> dict[str, str]:
    """{} when the current password was given right; else the error for its field.

    The same re-check as every other in-session password (auth.recheck_password): throttled
    per login and address, a wrong one is an event.
    """
    password = secret_field(v.form, "password", limit=MAX_PASSWORD + 1)
    if not password:
        return {"password": "Чтобы сменить e-mail, введите текущий пароль."}
    ok, wait = recheck_password(v, password)
    if wait:
        return {"password": f"Слишком много попыток, попробуйте через {wait} с."}
    return {} if ok else {"password": "Пароль указан неверно."}


routes: list[BaseRoute] = [
    Route("/details", page(_show), methods=["GET"]),
    Route("/details", action(_submit), methods=["POST"]),
]
