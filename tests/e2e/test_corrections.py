"""Corrections through the real daemon, Dovecot and SMTP: one correction path serves an
application (a file replaces its earlier self, the other is read back from the archive) and
an order whose requisites come from the database (whatever it carries is its product list).

The mail here is not authenticated, so every correction takes the confirmation path
(README «What needs what»): the code goes to the sender, whose reply with it applies the
correction as the message that carried the files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlmodel import col, select

from mailbot.forms import sample_application_docx, sample_products_xlsx
from mailbot.storage.db import make_engine
from mailbot.storage.models import Application, InboundMessage, Invoice
from tests.e2e.clients_site import (
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
FORM = "Заявление о регистрации.docx"
PRODUCTS = "Перечень продукции.xlsx"


@pytest.fixture
def each_db(site: Site, db_url: str) -> Iterator[Site]:  # noqa: F811
    """The clients site on a fresh migrated database of each kind (SQLite, PostgreSQL)."""
    engine = make_engine(db_url)
    yield dataclasses.replace(site, env={**site.env, "MAILBOT_DATABASE_URL": db_url}, engine=engine)
    engine.dispose()


def _answer(at: Site, to: str, number: str) -> EmailMessage:
    """Our latest mail to `to` in the thread of application `number` (not a code request)."""
    thread = [m for m in at.mails_to(to) if number in str(m["Subject"])]
    return [m for m in thread if not str(m["Subject"]).startswith("Подтвер")][-1]


def _in_thread(at: Site, sender: str, about: Application, files: dict[str, bytes]) -> None:
    """The sender answers our latest mail about `about` with `files` attached."""
    ours = _answer(at, sender, about.number)
    raw, _ = letter(
        sender,
        f"Re: {ours['Subject']}",
        "Исправили, высылаем.",
        in_reply_to=str(ours["Message-ID"]),
        files=files,
    )
    asked = len(confirmation_requests(at, sender))
    at.receive(raw)
    at.run("run", "--once")
    codes = confirmation_requests(at, sender)
    assert len(codes) == asked + 1  # not authenticated: the correction waits for its code
    confirm_reply(at, codes[-1], sender)
    at.run("run", "--once")


def _app(at: Site) -> Application:
    with at.session() as s:
        return s.exec(select(Application)).one()


def _inbound_ids(at: Site) -> list[int | None]:
    with at.session() as s:
        return list(s.exec(select(InboundMessage.id).order_by(col(InboundMessage.id))))


def test_an_application_missing_its_list_is_invoiced_once_the_list_comes_in_its_thread(
    each_db: Site,
) -> None:
    applicant = address("applicant")
    form_only, _ = letter(
        applicant, "Заявка", "Заявление.", files={FORM: sample_application_docx()}
    )
    each_db.receive(form_only)
    each_db.run("run", "--once")
    app = _app(each_db)
    assert app.state == "needs_fix"
    assert [p["code"] for p in app.problems] == ["file_missing"]
    assert "Перечень продукции" in text_of(_answer(each_db, applicant, app.number))

    _in_thread(each_db, applicant, app, {PRODUCTS: sample_products_xlsx()})

    fixed = _app(each_db)
    form_mail, list_mail, _confirmation = _inbound_ids(each_db)
    assert (fixed.form_inbound_id, fixed.products_inbound_id) == (form_mail, list_mail)
    assert fixed.state == "invoiced" and fixed.problems == []
    with each_db.session() as s:
        invoice = s.exec(select(Invoice).where(Invoice.application_id == fixed.id)).one()
    invoice_mail = _answer(each_db, applicant, app.number)
    assert invoice.number in text_of(invoice_mail)
    assert any(str(a.get_filename()).endswith(".pdf") for a in invoice_mail.iter_attachments())


def test_an_order_takes_whatever_its_correction_carries_as_its_product_list(
    each_db: Site,
) -> None:
    client = address("client")
    add_client(each_db, client)
    each_db.receive(letter(client, "Заказ", "Ещё товары.", files={PRODUCTS: b"not a workbook"})[0])
    each_db.run("run", "--once")
    order = _app(each_db)
    assert (order.kind, order.state, order.form_inbound_id) == ("order", "needs_fix", None)

    _in_thread(each_db, client, order, {FORM: sample_application_docx()})
    form_only = _app(each_db)
    assert form_only.state == "needs_fix" and form_only.form_inbound_id is None
    assert form_only.products_inbound_id == _inbound_ids(each_db)[-2]  # [-1]: the code
    assert [p["code"] for p in form_only.problems] == ["file_missing"]

    _in_thread(each_db, client, order, {PRODUCTS: sample_products_xlsx()})
    fixed = _app(each_db)
    assert fixed.state == "invoiced" and fixed.form_inbound_id is None
    assert fixed.products_inbound_id == _inbound_ids(each_db)[-2]
    with each_db.session() as s:
        invoice = s.exec(select(Invoice).where(Invoice.application_id == fixed.id)).one()
    assert invoice.number in text_of(_answer(each_db, client, order.number))
