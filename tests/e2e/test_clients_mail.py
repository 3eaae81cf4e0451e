"""Known clients by e-mail, through the real daemon, Dovecot and SMTP: orders, status,
contact changes, unknown senders. Each test drives `mailbot run --once` against IMAP/SMTP.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlmodel import col, select

from mailbot.cli.demo import sample_message
from mailbot.forms import _products_xlsx, _sample_rows, bundled_product_types
from mailbot.storage.models import Application, Barcode, Client, ClientAddress, Invoice
from mailbot.storage.models_clients import ContactChangeRequest
from tests.e2e.clients_site import (
    CODE,
    INFO,
    Site,
    add_client,
    address,
    clients_stack,  # noqa: F401 - fixture
    confirm_reply,
    confirmation_requests,
    letter,
    site,  # noqa: F401 - fixture
    text_of,
)

pytestmark = [pytest.mark.mail, pytest.mark.timeout(300)]
COOKIE = "Печенье сахарное «Ромашка» 250 г"


def _order_list() -> bytes:
    """Three products: the cookie that already has a code, and two new ones."""
    rows = _sample_rows()
    first, second = list(rows[1]), list(rows[2])
    first[0], second[0] = "Печенье овсяное «Ромашка» 800 г", "Морс брусничный «Ромашка» 1 л"
    return _products_xlsx([rows[0], first, second], bundled_product_types())


def test_order_from_known_client_is_paid_from_balance_first_and_flags_coded_products(
    site: Site,  # noqa: F811
) -> None:
    client_addr = address("client")
    site.receive(sample_message(to=INFO, sender=client_addr))
    site.run("run", "--once")
    with site.session() as s:
        [invoice] = s.exec(select(Invoice)).all()
    site.run("invoices", "pay", invoice.number)
    site.run("run", "--once")  # codes issued, the client registered with its addresses
    with site.session() as s:
        client = s.exec(select(Client)).one()
        cookie_ean = s.exec(select(Barcode.ean).order_by(col(Barcode.id))).first()
        client.balance = Decimal("300.00")
        s.add(client)
        s.commit()

    order, _ = letter(
        client_addr,
        "Заказ штрихкодов",
        "Добрый день, ещё товары.",
        files={"Перечень.xlsx": _order_list()},
    )
    site.receive(order)
    other_addr = address("branch")  # an unregistered address, but the form names the client
    site.receive(sample_message(to=INFO, sender=other_addr))
    site.run("run", "--once")

    with site.session() as s:
        apps = s.exec(select(Application).order_by(col(Application.id))).all()
        by_list, by_form = apps[1], apps[2]
        assert (by_list.kind, by_form.kind) == ("order", "order")
        inv = s.exec(select(Invoice).where(Invoice.application_id == by_list.id)).one()
        assert inv.total == Decimal("1000.00")  # two new products, no registration fee
        # not authenticated: invoiced as usual, the balance waits for the client's confirmation
        assert inv.from_balance == Decimal("0.00")
        assert inv.status == "issued" and by_list.state == "invoiced"
        assert s.exec(select(Client)).one().balance == Decimal("300.00")
        form_inv = s.exec(select(Invoice).where(Invoice.application_id == by_form.id)).one()
        assert form_inv.total == Decimal("2500.00") and form_inv.from_balance == 0
    [reply] = [
        m
        for m in site.mails_to(client_addr)
        if by_list.number in str(m["Subject"]) and not CODE.search(text_of(m))
    ]
    text = text_of(reply)
    assert COOKIE in text and f"уже присвоен {cookie_ean}" in text
    assert any((a.get_filename() or "").endswith(".pdf") for a in reply.iter_attachments())
    [ask] = confirmation_requests(site, client_addr)
    assert by_list.number in text_of(ask)
    confirm_reply(site, ask, client_addr)
    site.run("run", "--once")
    with site.session() as s:
        inv = s.exec(select(Invoice).where(Invoice.application_id == by_list.id)).one()
        assert (inv.from_balance, inv.status) == (Decimal("300.00"), "issued")
        assert s.exec(select(Client)).one().balance == Decimal("0.00")
    assert "к оплате осталось 700,00" in text_of(site.mails_to(client_addr)[-1])


def test_status_request_lists_the_clients_applications_only_to_a_registered_address(
    site: Site,  # noqa: F811
) -> None:
    client_addr, stranger, curious = address("client"), address("stranger"), address("curious")
    add_client(site, client_addr)
    site.receive(sample_message(to=INFO, sender=client_addr))
    site.run("run", "--once")
    with site.session() as s:
        app = s.exec(select(Application)).one()
        inv = s.exec(select(Invoice)).one()
    tagged, _ = letter(stranger, f"Какой статус? [{app.number}]", "Подскажите статус заявки.")
    site.receive(tagged)
    site.receive(letter(curious, "Статус заявки Ромашки", "Какой статус у ООО Ромашка?")[0])
    site.receive(letter(client_addr, "Статус", "Подскажите, какой статус наших заявок?")[0])
    site.run("run", "--once")

    [answer] = [m for m in site.mails_to(client_addr) if "Состояние ваших заявок" in text_of(m)]
    assert app.number in text_of(answer) and inv.number in text_of(answer)
    for outsider in (stranger, curious):
        [reply] = site.mails_to(outsider)
        body = text_of(reply)
        assert inv.number not in body and "Ромашка" not in body and "2 500" not in body
        assert app.number not in body
    assert "Заявление о регистрации" in text_of(site.mails_to(stranger)[0])  # instructions


def test_unknown_sender_gets_instructions_with_blank_forms_once_a_day(
    site: Site,  # noqa: F811
) -> None:
    stranger = address("stranger")
    site.receive(letter(stranger, "Как получить штрихкоды?", "Здравствуйте, что нужно?")[0])
    site.receive(letter(stranger, "Ещё вопрос", "А сколько стоит?")[0])
    site.run("run", "--once")
    [reply] = site.mails_to(stranger)
    names = [str(a.get_filename()) for a in reply.iter_attachments()]
    assert any(n.endswith(".docx") for n in names) and any(n.endswith(".xlsx") for n in names)
    assert "Заявление о регистрации" in text_of(reply)
    assert reply["Auto-Submitted"] == "auto-replied"


def test_contact_change_waits_for_the_admin_and_both_old_and_new_addresses_are_told(
    site: Site,  # noqa: F811
) -> None:
    old, new, spoofer = address("old"), address("new"), address("spoofer")
    client_id = add_client(site, old)
    text = f"Прошу изменить контакты.\nE-mail: {new}\nТелефон: 8 (916) 111-22-33\n"
    site.receive(letter(old, "Смена контактных данных", text)[0])
    site.receive(letter(spoofer, "Смена контактных данных", text)[0])  # not registered
    site.run("run", "--once")
    with site.session() as s:
        [req] = s.exec(select(ContactChangeRequest)).all()
        assert req.status == "unconfirmed"  # not authenticated: the old address confirms first
    assert site.mails_to(new) == []
    [ask] = confirmation_requests(site, old)
    confirm_reply(site, ask, old)
    site.run("run", "--once")
    with site.session() as s:
        [req] = s.exec(select(ContactChangeRequest)).all()
        assert req.status == "pending"
        assert req.changes == {"email": new, "phone": "+79161112233"}
        unchanged = s.get(Client, client_id)
        assert unchanged is not None
        assert unchanged.email == old  # nothing changes before approval
    assert any("Изменения вступят в силу после проверки" in text_of(m) for m in site.mails_to(old))
    assert "указан как новый адрес" in text_of(site.mails_to(new)[0])
    assert "Заявление о регистрации" in text_of(site.mails_to(spoofer)[0])  # instructions

    listing = site.run("requests", "list")
    assert new in listing and re.search(rf"\b{req.id}\b", listing)
    site.run("requests", "approve", str(req.id))
    with site.session() as s:
        client = s.get(Client, client_id)
        assert client is not None
        assert (client.email, client.phone) == (new, "+79161112233")
        assert (
            new
            in s.exec(
                select(ClientAddress.address).where(ClientAddress.client_id == client_id)
            ).all()
        )
    assert "выполнена" in text_of(site.mails_to(old)[-1])
    assert "Изменение подтверждено" in text_of(site.mails_to(new)[-1])
    assert "already approved" in site.run("requests", "reject", str(req.id), check=False)
