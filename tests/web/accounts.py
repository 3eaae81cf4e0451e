"""Logged-in clients and their applications for the page tests (status, balance, news).

The data goes through the functions the mail path uses: `create_invoice` and the workflow
file and invoice an order, `pay_invoice` pays it as `mailbot invoices pay` does, and
`issue_paid` gives the codes and writes the issued mail.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlmodel import select
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.x asks for httpx2; httpx (pyproject) still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from mailbot.billing.invoices import create_invoice, opening_event
from mailbot.billing.payments import pay_invoice
from mailbot.issuance.credentials import hash_password
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Client, Invoice
from mailbot.storage.queries import next_number
from mailbot.web.app import create_app
from mailbot.workflow import must, transition
from tests.fixtures.records import juice_rows

PASSWORD = "зелёный-слон-42"
INN_A, INN_B = "7730166139", "7707083893"
SQLITE_ONLY = pytest.mark.parametrize("db_factory", ["sqlite"], indirect=True)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Order:
    application: str
    invoice: str


def add_client(rt: Runtime, inn: str, *, balance: str = "0.00") -> int:
    """A client who has already changed the issued password (login = INN)."""
    with transaction(rt.engine) as s:
        row = Client(
            inn=inn,
            kpp="773001001",
            org_name=f"ООО «Клиент {inn}»",
            email=f"{inn}@client.example.test",
            login=inn,
            password_hash=hash_password(PASSWORD),
            must_change=False,
            balance=Decimal(balance),
            created_at=rt.clock(),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def anonymous(rt: Runtime) -> TestClient:
    """A browser of the app with no session."""
    return TestClient(create_app(rt))


def logged_in(rt: Runtime, login: str) -> TestClient:
    """A browser of the app logged in as `login`."""
    browser = TestClient(create_app(rt))
    form = {"login": login, "password": PASSWORD}
    token = _CSRF.search(browser.get("/login").text)  # the log-in form's own token, if any
    if token is not None:
        form["csrf"] = token.group(1)
    answer = browser.post("/login", data=form)
    assert answer.status_code == 200 and answer.url.path == "/", answer.text[:300]
    return browser


def csrf_of(browser: TestClient, path: str) -> str:
    """The CSRF token of the forms on the page at `path`."""
    found = _CSRF.search(browser.get(path).text)
    assert found is not None
    return found.group(1)


def invoiced_order(rt: Runtime, client_id: int, *, rows: int = 3) -> Order:
    """An order of `rows` products with its invoice (balance first), as the order mail makes."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        client = s.get(Client, client_id)
        assert client is not None
        seq = next_number(s, "application", now.year)
        app = Application(
            number=f"EAN-{now.year}-{seq:06d}",
            kind="order",
            state="accepted",
            client_id=client_id,
            sender=client.email,
            subject="Заказ штрихкодов",
            form={"inn": client.inn, "kpp": client.kpp, "org_name": client.org_name},
            created_at=now,
            updated_at=now,
        )
        s.add(app)
        s.flush()
        assert app.id is not None
        s.add_all(juice_rows(app.id, rows))
        invoice = create_invoice(
            s, app, count=rows, new_client=False, settings=rt.settings, now=now
        )
        must(transition(s, app, opening_event(invoice), now=now, data={"invoice": invoice.number}))
        return Order(app.number, invoice.number)


def issued_order(rt: Runtime, client_id: int, *, rows: int = 3) -> Order:
    """An order invoiced, paid (`invoices pay`) and issued: codes, registry, mail."""
    order = invoiced_order(rt, client_id, rows=rows)
    with transaction(rt.engine) as s:
        sync_prefixes(s, rt.settings.prefixes, now=rt.clock())
        invoice = s.exec(select(Invoice).where(Invoice.number == order.invoice)).one()
        paid = invoice.status == "paid"
    if not paid:
        assert pay_invoice(rt, order.invoice).ok
    assert issue_paid(rt) >= 1  # this one, and any other paid one waiting
    with transaction(rt.engine) as s:
        app = s.exec(select(Application).where(Application.number == order.application)).one()
        assert app.state == "issued"
    return order
