"""«Баланс»: the balance and its movements, the top-up purpose the import credits, the QR."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session

from mailbot.billing.ledger import Movement
from mailbot.billing.money import VatMode
from mailbot.billing.payments import import_file
from mailbot.parsers.bank_statement_1c import find_invoice_numbers
from mailbot.runtime import Runtime
from mailbot.storage.models import Client
from mailbot.web.balance import movement_line, topup_purpose
from tests.fixtures.statements import OUR_ACCOUNT, incoming, statement_bytes
from tests.web.accounts import (
    INN_A,
    INN_B,
    SQLITE_ONLY,
    add_client,
    anonymous,
    invoiced_order,
    logged_in,
)

PURPOSE = re.compile(r'<td class="purpose">([^<]+)</td>')


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    """Our settlement account is the one the statement fixtures pay into."""
    service = dataclasses.replace(rt.settings.service, account=OUR_ACCOUNT)
    rt.settings = dataclasses.replace(rt.settings, service=service)
    return rt


def balance(rt: Runtime, client_id: int) -> Decimal:
    with Session(rt.engine) as s:
        row = s.get(Client, client_id)
        assert row is not None
        return row.balance


def purpose_on_page(page: str) -> str:
    found = PURPOSE.search(page)
    assert found is not None
    return html.unescape(found.group(1))


def test_a_transfer_with_the_shown_purpose_is_credited_to_this_clients_balance(
    rt: Runtime,
) -> None:
    """SQLite and PostgreSQL: the page's purpose, paid from the client's INN, is credited."""
    a = add_client(rt, INN_A)
    add_client(rt, INN_B)
    browser = logged_in(rt, INN_A)
    purpose = purpose_on_page(browser.get("/balance?amount=1500").text)
    assert INN_A in purpose and "счёт" not in purpose.split("ИНН")[0]
    data = statement_bytes([incoming("7", amount="1500.00", payer_inn=INN_A, purpose=purpose)])
    summary = import_file(rt, data)
    assert summary.line.startswith("applied 0, held 0, unreadable 0, credited 1")
    assert balance(rt, a) == Decimal("1500.00")
    page = browser.get("/balance").text
    assert "<strong>1 500,00 руб.</strong>" in page
    assert "Поступление" in page and "+1 500,00" in page


@SQLITE_ONLY
def test_movements_are_newest_first_in_russian_with_their_grounds(rt: Runtime) -> None:
    a = add_client(rt, INN_A)
    import_file(rt, statement_bytes([incoming("8", amount="100000.00", payer_inn=INN_A,
                                              purpose="Аванс")]))  # fmt: skip
    order = invoiced_order(rt, a, rows=2)  # paid from the balance first
    page = logged_in(rt, INN_A).get("/balance").text
    used, credited = page.index("Оплата заявки"), page.index("Поступление")
    assert used < credited
    assert f"заявка {order.application}" in page
    assert "платёж из банковской выписки" in page and "+100 000,00" in page
    assert re.search(r'<td class="num out">−[\d  ]+,\d\d</td>', page)
    assert '<div class="table-wrap">' in page


@SQLITE_ONLY
def test_a_typed_amount_shows_the_qr_and_the_qr_decodes_to_the_gost_payload(
    rt: Runtime, tmp_path: Path
) -> None:
    add_client(rt, INN_A)
    browser = logged_in(rt, INN_A)
    page = browser.get("/balance", params={"amount": "2 500,50"}).text
    assert '<img src="/balance/qr.png?amount=2500.50"' in page
    assert 'class="field-error"' not in page
    image = browser.get("/balance/qr.png?amount=2500.50")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    exe = shutil.which("zbarimg")
    assert exe is not None, "apt-get install zbar-tools"
    (tmp_path / "qr.png").write_bytes(image.content)
    out = subprocess.run([exe, "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True,
                         check=True)  # fmt: skip
    payload = out.stdout.decode().strip()
    assert payload.startswith("ST00012|Name=")
    fields = dict(f.split("=", 1) for f in payload.split("|")[1:])
    assert fields["Sum"] == "250050"
    assert fields["PersonalAcc"] == OUR_ACCOUNT
    assert fields["Purpose"] == purpose_on_page(page)
    assert find_invoice_numbers(fields["Purpose"]) == []


@pytest.mark.parametrize(
    ("typed", "error"),
    [("abc", "Укажите сумму в рублях"), ("-5", "больше нуля"), ("0", "больше нуля")],
)
@SQLITE_ONLY
def test_a_bad_amount_is_an_error_next_to_the_field_and_no_qr(
    rt: Runtime, typed: str, error: str
) -> None:
    add_client(rt, INN_A)
    browser = logged_in(rt, INN_A)
    page = browser.get("/balance", params={"amount": typed}).text
    found = re.search(r'<p class="field-error" id="amount-error">([^<]+)</p>', page)
    assert found is not None and error in found.group(1)
    assert 'aria-describedby="amount-error"' in page
    assert "/balance/qr.png" not in page
    assert browser.get("/balance/qr.png", params={"amount": typed}).status_code == 400


@SQLITE_ONLY
def test_a_client_sharing_its_inn_is_told_the_accountant_credits_by_hand(rt: Runtime) -> None:
    add_client(rt, INN_A)
    with Session(rt.engine) as s:  # a branch: the same INN, another KPP, another client
        s.add(Client(inn=INN_A, kpp="773101001", org_name="Филиал", email="f@x.test",
                     created_at=rt.clock()))  # fmt: skip
        s.commit()
    page = logged_in(rt, INN_A).get("/balance").text
    assert "несколько клиентов" in page


@pytest.mark.parametrize("mode", list(VatMode))
def test_the_topup_purpose_never_names_an_invoice_for_any_vat_mode(mode: VatMode) -> None:
    for amount in (None, Decimal("2026.00"), Decimal("12345.67"), Decimal("99999999.99")):
        purpose = topup_purpose("7730166139", mode, amount)
        assert find_invoice_numbers(purpose) == [], purpose
        assert "ИНН 7730166139" in purpose


@SQLITE_ONLY
def test_the_qr_needs_a_log_in(rt: Runtime) -> None:
    answer = anonymous(rt).get("/balance/qr.png?amount=10", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.mark.parametrize(
    ("event", "amount", "ref", "text", "ground"),
    [
        ("balance_credited", "700.00", "payment 5", "Поступление", "платёж из банковской выписки"),
        ("balance_credited", "50.00", "2026-00012", "Поступление",
         "переплата по счёту № 2026-00012"),
        ("balance_used", "-500.00", "EAN-2026-000003", "Оплата заявки", "заявка EAN-2026-000003"),
        ("balance_returned", "500.00", "2026-00013", "Возврат с аннулированного счёта",
         "счёт № 2026-00013"),
        ("balance_reversed", "-700.00", "payment 5", "Отмена ошибочного платежа",
         "платёж из банковской выписки"),
        ("balance_adjusted", "1.00", "", "balance_adjusted", ""),
    ],
)  # fmt: skip
def test_every_movement_is_said_in_russian_with_its_ground_and_sign(
    event: str, amount: str, ref: str, text: str, ground: str
) -> None:
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    line = movement_line(Movement(at, event, Decimal(amount), Decimal("1000.00"), ref))
    assert (line.text, line.ref, line.balance) == (text, ground, "1 000,00")
    assert line.amount[0] == ("+" if Decimal(amount) > 0 else "−")
    assert line.incoming == (Decimal(amount) > 0)
