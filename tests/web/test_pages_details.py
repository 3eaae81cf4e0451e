"""«Контакты»: a change request on the mail path's table, decided as `requests approve` does."""

from __future__ import annotations

from sqlmodel import Session, select

from mailbot.handlers import contacts
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, ClientAddress, Event, OutboxMessage
from mailbot.storage.models_clients import ContactChangeRequest
from mailbot.web.details import requested
from tests.web.pages2 import ON_POSTGRESQL, ON_SQLITE, PASSWORD, add_client, browser, csrf


def _approve(rt: Runtime, request_id: int) -> None:
    """What `mailbot requests approve ID` does (without sending)."""
    with transaction(rt.engine) as s:
        req = s.get(ContactChangeRequest, request_id)
        assert req is not None
        assert contacts.decide(s, rt, req, approve=True) is None


def _requests(rt: Runtime) -> list[ContactChangeRequest]:
    with Session(rt.engine) as s:
        return list(s.exec(select(ContactChangeRequest)))


def _request_approve_and_show(rt: Runtime) -> None:
    client_id = add_client(rt)
    web = browser(rt, "7707083893")
    page = web.get("/details").text
    assert 'id="current-phone">+79161112233<' in page and "Иванов Иван" in page
    form = {
        "csrf": csrf(web),
        "phone": "8 (916) 555-44-33",
        "email": "new@client.test",
        "contact_name": "Иванов Иван",  # unchanged: not part of the request
        "address": "",
        "password": PASSWORD,
    }
    r = web.post("/details", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/details?sent=1"
    [req] = _requests(rt)
    assert req.status == "pending" and req.client_id == client_id
    assert req.changes == {"phone": "+79165554433", "email": "new@client.test"}
    assert req.previous == {"phone": "+79161112233", "email": "boss@client.test"}
    assert req.sender == "boss@client.test"  # where the receipt and the decision go
    page = web.get("/details").text
    assert "на рассмотрении" in page and "+79165554433" in page
    assert 'id="current-phone">+79161112233<' in page  # nothing changes before the admin
    with Session(rt.engine) as s:
        assert s.exec(select(Event).where(Event.event == "contact_change_requested")).first()
        kinds = set(s.exec(select(OutboxMessage.kind)).all())
    assert kinds == {"contact_received"}
    assert req.id is not None
    _approve(rt, req.id)
    page = web.get("/details").text
    assert 'id="current-phone">+79165554433<' in page
    assert 'id="current-email">new@client.test<' in page
    assert "на рассмотрении" not in page
    with Session(rt.engine) as s:
        client = s.get(Client, client_id)
        assert client is not None and client.email == "new@client.test"
        addresses = s.exec(select(ClientAddress.address)).all()
    assert "new@client.test" in addresses


@ON_SQLITE
def test_a_change_request_waits_for_the_admin_and_shows_once_approved(rt: Runtime) -> None:
    _request_approve_and_show(rt)


@ON_POSTGRESQL
def test_a_change_request_on_postgresql(rt: Runtime) -> None:
    _request_approve_and_show(rt)


@ON_SQLITE
def test_a_new_email_without_the_right_password_is_refused(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    form = {"csrf": csrf(web), "email": "thief@evil.test"}
    r = web.post("/details", data=form)
    assert r.status_code == 400 and 'id="password-error"' in r.text
    r = web.post("/details", data={**form, "password": "not the password"})
    assert r.status_code == 400 and "Пароль указан неверно" in r.text
    assert 'value="thief@evil.test"' in r.text  # what was typed stays in the form
    assert _requests(rt) == []
    with Session(rt.engine) as s:
        assert s.exec(select(Event).where(Event.event == "web_password_check_failed")).first()
    # a phone alone needs no password
    r = web.post("/details", data={"csrf": csrf(web), "phone": "+7 495 123-45-67"})
    assert r.status_code == 303
    assert [r.changes for r in _requests(rt)] == [{"phone": "+74951234567"}]


@ON_SQLITE
def test_invalid_values_are_named_next_to_their_fields(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    form = {"csrf": csrf(web), "phone": "12-34", "email": "not an address", "password": PASSWORD}
    r = web.post("/details", data=form)
    assert r.status_code == 400
    assert 'id="phone-error"' in r.text and 'id="email-error"' in r.text
    r = web.post("/details", data={"csrf": csrf(web), "phone": "+79161112233"})
    assert r.status_code == 400 and "Измените хотя бы одно поле" in r.text
    assert _requests(rt) == []


@ON_SQLITE
def test_without_the_csrf_token_no_request_is_made(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    assert web.post("/details", data={"phone": "+74951234567"}).status_code == 403
    r = web.post("/details", data={"csrf": "forged", "phone": "+74951234567"})
    assert r.status_code == 403
    assert _requests(rt) == []


def test_the_form_is_checked_as_the_mail_path_checks_a_request() -> None:
    current = {"phone": "+79161112233", "email": "a@b.test", "contact_name": "", "address": ""}
    changes, errors = requested(
        current,
        {"phone": "8 916 111 22 33", "email": "A@B.test", "contact_name": "  Пётр  Петров "},
    )
    assert changes == {"contact_name": "Пётр Петров"} and errors == {}
    changes, errors = requested(current, {"address": "x" * 501, "phone": "abc"})
    assert changes == {} and set(errors) == {"address", "phone"}
