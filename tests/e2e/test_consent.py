"""Who may do what by e-mail (issue 16, the consent half): each attack through the real
daemon (`mailbot run --once`), real Dovecot (IMAP intake) and the SMTP relay, on SQLite and
PostgreSQL, and the legitimate way of each (a reply with the one-time code).

No Authentication-Results header is added here (the Maildir/IMAP default): nothing is
authenticated, so every action that moves money or changes data waits for a confirmation.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import pytest
from sqlmodel import Session, SQLModel, col, select

from mailbot import forms
from mailbot.billing.money import format_rub
from mailbot.storage.db import make_engine
from mailbot.storage.models import (
    Application,
    Client,
    Invoice,
    OutboxMessage,
    SupportTicket,
)
from mailbot.storage.models_clients import ContactChangeRequest, TicketMessage
from mailbot.storage.models_consent import Confirmation
from tests.e2e.clients_site import (
    INFO,
    Site,
    _config,
    add_client,
    address,
    clients_stack,  # noqa: F401 - fixture
    confirm_reply,
    confirmation_requests,
    letter,
    text_of,
)
from tests.e2e.helpers import mailbot
from tests.e2e.test_mail_edge import set_key
from tests.mailstack import MailStack

_T = TypeVar("_T", bound=SQLModel)

pytestmark = [pytest.mark.mail, pytest.mark.timeout(600)]


@pytest.fixture
def site(tmp_path: Path, clients_stack: MailStack, db_url: str) -> Iterator[Site]:  # noqa: F811
    """A site on the parametrised database (SQLite and PostgreSQL)."""
    d = tmp_path / "site"
    (d / "var").mkdir(parents=True)
    box = f"c{uuid.uuid4().hex[:10]}"
    with clients_stack.imap(INFO) as c:
        c.create_folder(box)
    (d / "config.toml").write_text(_config(clients_stack, box), "utf-8")
    env = {
        "MAILBOT_IMAP_PASSWORD": clients_stack.password,
        "MAILBOT_SMTP_PASSWORD": clients_stack.password,
        "MAILBOT_DATABASE_URL": db_url,
        "COLUMNS": "400",  # `mailbot status` tables unwrapped
    }
    mailbot(d, "db", "upgrade", env=env)
    engine = make_engine(db_url)
    yield Site(d, env, clients_stack, box, engine)
    engine.dispose()
    shutil.rmtree(d / "var" / "archive", ignore_errors=True)


def _files(*, email: str = "", valid: bool = True) -> dict[str, bytes]:
    """An application's two files; `email` goes into the form's E-mail field."""
    values = forms.SAMPLE_APPLICATION | ({"email": email} if email else {})
    if not valid:
        values |= {"inn": "7707083895", "kpp": ""}  # a bad INN checksum: needs fixing
    return {
        "Заявление о регистрации.docx": forms._application_docx(values),
        "Перечень продукции.xlsx": forms.sample_products_xlsx(),
    }


def _app(site: Site, number: str) -> Application:
    with site.session() as s:
        return s.exec(select(Application).where(Application.number == number)).one()


def _apps(site: Site) -> list[Application]:
    with site.session() as s:
        return list(s.exec(select(Application).order_by(col(Application.id))))


def _row(s: Session, model: type[_T], key: object) -> _T:
    """The row that must exist (typed: never None)."""
    row = s.get(model, key)
    assert row is not None
    return row


def test_a_correction_from_another_address_takes_over_nothing(site: Site) -> None:
    """Attack 1: a «corrected» application in the victim's thread, from the attacker."""
    victim, attacker = address("victim"), address("attacker")
    tag = uuid.uuid4().hex[:8]  # the form's E-mail field wants a deliverable-looking domain
    victim_box, attacker_box = f"victim-{tag}@client.example", f"attacker-{tag}@evil.example"
    site.receive(letter(victim, "Заявка", "Заявка во вложении.", files=_files(valid=False))[0])
    site.run("run", "--once")
    [app] = _apps(site)
    assert app.state == "needs_fix"
    subject = f"Re: Заявка [{app.number}]"
    takeover = _files(email=attacker_box)  # the victim's requisites, the attacker's address
    site.receive(letter(attacker, subject, "Исправленные файлы.", files=takeover)[0])
    # the same mail with the victim's address forged in From (not authenticated)
    site.receive(letter(victim, subject, "Исправленные файлы.", files=takeover)[0])
    site.run("run", "--once")

    after = _app(site, app.number)
    assert (after.state, after.form_inbound_id, after.form) == (
        "needs_fix",
        app.form_inbound_id,
        {},
    )
    with site.session() as s:
        assert s.exec(select(Invoice).where(Invoice.application_id == app.id)).all() == []
    others = [a for a in _apps(site) if a.id != app.id]
    assert [a.sender for a in others] == [attacker]  # a new application of its own
    with site.session() as s:
        about_victims = s.exec(
            select(OutboxMessage).where(OutboxMessage.application_id == app.id)
        ).all()
    assert all({attacker, attacker_box}.isdisjoint(o.recipients) for o in about_victims)
    # nothing of the victim's application reaches the attacker (its own subject line aside)
    for mail in site.mails_to(attacker) + site.mails_to(attacker_box):
        assert app.number not in text_of(mail) and others[0].number in str(mail["Subject"])
    [forged_ask] = confirmation_requests(site, victim)  # the code went to the victim only
    assert app.number in text_of(forged_ask)

    # the legitimate way: the victim's own correction, confirmed by a reply with the code
    site.receive(letter(victim, subject, "Исправила.", files=_files(email=victim_box))[0])
    site.run("run", "--once")
    assert _app(site, app.number).state == "needs_fix"
    ask = confirmation_requests(site, victim)[-1]
    assert ask["Message-ID"] != forged_ask["Message-ID"]
    confirm_reply(site, ask, victim)
    site.run("run", "--once")
    fixed = _app(site, app.number)
    assert fixed.state == "invoiced" and fixed.form["email"] == victim_box
    with site.session() as s:
        invoiced = s.exec(
            select(OutboxMessage).where(
                OutboxMessage.application_id == app.id, OutboxMessage.kind == "invoice"
            )
        ).one()
    assert invoiced.recipients == [victim, victim_box]
    assert any(
        app.number in str(m["Subject"]) and m.get_content_type() == "multipart/mixed"
        for m in site.mails_to(victim)
    )  # the invoice, with its PDF
    for mail in site.mails_to(attacker) + site.mails_to(attacker_box):
        assert app.number not in text_of(mail)
    with site.session() as s:
        assert s.exec(select(Application).where(Application.sender == attacker)).one().id != app.id


def test_a_forged_order_spends_no_balance_until_the_client_confirms(site: Site) -> None:
    """Attack 2: an order «from» a client with a positive balance."""
    boss, attacker = address("boss"), address("attacker")
    client_id = add_client(site, boss, balance="5000.00")
    order = {"Перечень.xlsx": forms.sample_products_xlsx()}
    site.receive(letter(boss, "Заказ штрихкодов", "Ещё товары.", files=order)[0])
    site.run("run", "--once")
    [app] = _apps(site)
    with site.session() as s:
        invoice = s.exec(select(Invoice)).one()
        assert (invoice.status, invoice.from_balance) == ("issued", Decimal("0.00"))
        assert _row(s, Client, client_id).balance == Decimal("5000.00")  # invoiced as usual
    assert app.state == "invoiced"
    assert site.mails_to(attacker) == []
    [ask] = confirmation_requests(site, boss)

    # a made-up code from the client's address, and the real code from another address
    site.receive(letter(boss, "Re: код MB-AAAA-BBBB-CCCC-DDDD", "Подтверждаю.")[0])
    confirm_reply(site, ask, attacker)
    site.run("run", "--once")
    with site.session() as s:
        assert _row(s, Client, client_id).balance == Decimal("5000.00")
        assert s.exec(select(Confirmation.status)).all() == ["waiting"]
    assert _app(site, app.number).state == "invoiced"
    assert all(app.number not in text_of(m) for m in site.mails_to(attacker))

    confirm_reply(site, ask, boss)  # the legitimate way
    site.run("run", "--once")
    with site.session() as s:
        invoice = s.exec(select(Invoice)).one()
        assert invoice.status == "paid" and invoice.from_balance == invoice.total
        assert _row(s, Client, client_id).balance == Decimal("5000.00") - invoice.total
    assert _app(site, app.number).state in ("paid", "issued")
    assert "оплачен" in text_of(confirmation_mail(site, boss))

    confirm_reply(site, ask, boss)  # the code works once
    site.run("run", "--once")
    with site.session() as s:
        assert _row(s, Client, client_id).balance == Decimal("5000.00") - invoice.total


def confirmation_mail(site: Site, to: str) -> EmailMessage:
    [mail] = [m for m in site.mails_to(to) if str(m["Subject"]).startswith("Подтверждено")]
    return mail


def test_a_forged_contact_change_reaches_nobody_until_confirmed(site: Site) -> None:
    """Attack 2: a contact change «from» the client's registered address."""
    old, attacker, new = address("old"), address("attacker"), address("new")
    client_id = add_client(site, old)
    text = f"Прошу изменить контакты.\nE-mail: {new}\n"
    site.receive(letter(old, "Смена контактных данных", text)[0])
    site.run("run", "--once")
    with site.session() as s:
        [req] = s.exec(select(ContactChangeRequest)).all()
    assert req.status == "unconfirmed"
    assert "is already unconfirmed" in site.run("requests", "approve", str(req.id), check=False)
    assert site.mails_to(attacker) == [] and site.mails_to(new) == []
    with site.session() as s:
        assert _row(s, Client, client_id).email == old
    [ask] = confirmation_requests(site, old)
    confirm_reply(site, ask, attacker)  # the code from any other address does nothing
    site.run("run", "--once")
    with site.session() as s:
        assert _row(s, ContactChangeRequest, req.id).status == "unconfirmed"

    confirm_reply(site, ask, old)  # the legitimate way: now it waits for the admin
    site.run("run", "--once")
    with site.session() as s:
        assert _row(s, ContactChangeRequest, req.id).status == "pending"
        assert _row(s, Client, client_id).email == old
    site.run("requests", "approve", str(req.id))
    with site.session() as s:
        assert _row(s, Client, client_id).email == new


def test_a_forged_reply_joins_a_support_ticket_only_once_confirmed(site: Site) -> None:
    """Attack 2: messages «from» the client joined its support ticket."""
    client_addr = address("client")
    add_client(site, client_addr)
    site.receive(letter(client_addr, "Вопрос по сертификату", "Где свидетельство?")[0])
    site.run("run", "--once")
    with site.session() as s:
        ticket = s.exec(select(SupportTicket)).one()
    forged, forged_id = letter(client_addr, f"Re: Вопрос [Обращение №{ticket.number}]", "Всё ок")
    site.receive(forged)
    site.run("run", "--once")

    def kept() -> list[str]:
        with site.session() as s:
            rows = s.exec(select(TicketMessage).where(TicketMessage.direction == "in"))
            return [m.message_id for m in rows]

    assert forged_id not in kept() and len(kept()) == 1
    [ask] = confirmation_requests(site, client_addr)
    assert ticket.number in text_of(ask)
    confirm_reply(site, ask, client_addr)
    site.run("run", "--once")
    assert kept()[-1] == forged_id and len(kept()) == 2


@pytest.mark.parametrize(("cap", "count"), [(4, 10), pytest.param(10, 25, marks=pytest.mark.slow)])
def test_applications_to_many_strangers_are_held_over_the_caps_and_released_by_command(
    site: Site, cap: int, count: int
) -> None:
    """Attack 4: `count` applications from as many senders name victim+N@third.example in
    the form; new_recipients_per_hour = `cap` (10 as shipped under `-m slow`)."""
    config = site.dir / "config.toml"
    config.write_text(
        set_key(config.read_text("utf-8"), "limits", "new_recipients_per_hour", str(cap)), "utf-8"
    )
    tag = uuid.uuid4().hex[:6]
    victims = [f"victim+{tag}{n}@third.example" for n in range(count)]
    for n, victim in enumerate(victims):
        sender = f"s{n}-{tag}@d{n}.example.test"
        site.receive(letter(sender, f"Заявка {n}", "Заявка.", files=_files(email=victim))[0])
    site.run("run", "--once")

    with site.session() as s:
        invoices = list(
            s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "invoice")
                .order_by(col(OutboxMessage.id))
            )
        )
    held = [o for o in invoices if o.status == "held"]
    sent = [o for o in invoices if o.status == "sent"]
    assert (len(sent), len(held)) == (cap, count - cap)
    assert all("new_recipients_per_hour" in o.held_reason for o in held)
    delivered = [v for v in victims if site.mails_to(v)]
    assert len(delivered) == cap
    status = site.run("status")
    assert "mail held" in status and str(held[0].id) in status
    listing = site.run("outbox", "held")
    assert all(str(o.id) in listing for o in held)

    released, dropped = held[0], held[1]
    site.run("outbox", "release", str(released.id))
    site.run("outbox", "drop", str(dropped.id), "--reason", "not the applicant's address")
    assert "not held" in site.run("outbox", "release", str(dropped.id), check=False)
    site.run("run", "--once")
    with site.session() as s:
        assert _row(s, OutboxMessage, released.id).status == "sent"
        gone = _row(s, OutboxMessage, dropped.id)
        assert gone.status == "dropped" and "not the applicant's address" in gone.held_reason
        still_held = s.exec(select(OutboxMessage).where(OutboxMessage.status == "held")).all()
        assert len(still_held) == count - cap - 2
    assert site.mails_to(released.recipients[1])
    assert site.mails_to(dropped.recipients[1]) == []


def test_blank_forms_go_to_an_address_once_a_day_and_count_in_the_caps(site: Site) -> None:
    """Attack 4: a one-line mail from any (forged) sender earns ~95 KB of forms."""
    tag = uuid.uuid4().hex[:6]
    strangers = [f"x{n}-{tag}@forged{n}.example.test" for n in range(12)]
    for stranger in strangers:
        site.receive(letter(stranger, "Вопрос", "Здравствуйте.")[0])
    site.receive(letter(strangers[0], "Ещё вопрос", "Здравствуйте ещё раз.")[0])
    site.run("run", "--once")
    with site.session() as s:
        rows = list(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "instructions")))
    assert len(rows) == 12  # the second mail of strangers[0] earns nothing
    assert sorted(o.status for o in rows) == ["held"] * 2 + ["sent"] * 10
    assert len([s for s in strangers if site.mails_to(s)]) == 10


def test_an_applicant_asking_for_status_before_issuance_gets_state_invoice_and_amount(
    site: Site,
) -> None:
    """Attack 6 (the other way round): applicants are known by their application's addresses."""
    applicant, stranger = address("applicant"), address("stranger")
    form_email = f"form-{uuid.uuid4().hex[:8]}@client.example"  # the form checks the domain
    site.receive(letter(applicant, "Заявка", "Во вложении.", files=_files(email=form_email))[0])
    site.run("run", "--once")
    [app] = _apps(site)
    with site.session() as s:
        invoice = s.exec(select(Invoice)).one()
    for who in (applicant, form_email, stranger):
        site.receive(letter(who, "Статус заявки", "Подскажите статус заявки.")[0])
    site.run("run", "--once")

    for who in (applicant, form_email):
        [answer] = [m for m in site.mails_to(who) if "Состояние ваших заявок" in text_of(m)]
        text = text_of(answer)
        assert app.number in text and "выставлен счёт" in text
        assert invoice.number in text and f"к оплате {format_rub(invoice.total)}" in text
    [reply] = site.mails_to(stranger)
    text = text_of(reply)
    assert "Заявление о регистрации" in text  # the general instructions, no data
    assert app.number not in text and invoice.number not in text
