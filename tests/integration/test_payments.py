"""Statement import on SQLite and PostgreSQL: matched, held, credited, idempotent, balances."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from sqlmodel import Session, col, select

from mailbot.billing.invoices import create_invoice, opening_event
from mailbot.billing.payments import (
    apply_held,
    import_file,
    import_statement,
    pay_invoice,
    reject_held,
)
from mailbot.config import Prefix
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Client, Event, Invoice, Payment, ProductRow
from mailbot.storage.queries import next_number
from mailbot.workflow import must, transition
from tests.fixtures.statements import (
    CLIENT_INN,
    CLIENT_NAME,
    OTHER_CLIENT_INN,
    OUR_ACCOUNT,
    incoming,
    outgoing,
    split_purpose,
    statement_bytes,
)


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    """The runtime with our settlement account set to the one the statement fixtures pay."""
    service = dataclasses.replace(rt.settings.service, account=OUR_ACCOUNT)
    rt.settings = dataclasses.replace(rt.settings, service=service)
    return rt


def client(rt: Runtime, *, inn: str = CLIENT_INN, balance: str = "0.00") -> int:
    with transaction(rt.engine) as s:
        row = Client(
            inn=inn,
            kpp="773001001" if len(inn) == 10 else "",
            org_name=CLIENT_NAME,
            email=f"{inn}@client.test",
            login=inn,
            balance=Decimal(balance),
            created_at=rt.clock(),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def invoiced(
    rt: Runtime, *, inn: str = CLIENT_INN, count: int = 3, client_id: int | None = None
) -> Invoice:
    """An application with a valid form and its invoice, as `evaluate` leaves them."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        seq = next_number(s, "application", now.year)
        app = Application(
            number=f"EAN-{now.year}-{seq:06d}",
            kind="order" if client_id else "registration",
            state="accepted",
            client_id=client_id,
            sender="applicant@client.test",
            form={"inn": inn, "kpp": "773001001", "org_name": CLIENT_NAME},
            created_at=now,
            updated_at=now,
        )
        s.add(app)
        s.flush()
        invoice = create_invoice(
            s, app, count=count, new_client=client_id is None, settings=rt.settings, now=now
        )
        must(transition(s, app, opening_event(invoice), now=now))
    return invoice


def state(rt: Runtime, invoice: Invoice) -> tuple[str, str]:
    with Session(rt.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.number == invoice.number)).one()
        app = s.get(Application, inv.application_id)
        assert app is not None
        return inv.status, app.state


def payments(rt: Runtime) -> list[tuple[str, str]]:
    with Session(rt.engine) as s:
        rows = s.exec(select(Payment).order_by(col(Payment.id)))
        return [(p.status, p.reason) for p in rows]


def balance(rt: Runtime, client_id: int) -> Decimal:
    with Session(rt.engine) as s:
        row = s.get(Client, client_id)
        assert row is not None
        return row.balance


def purpose(number: str) -> str:
    return f"Оплата по счёту № {number} от 25.11.2026 за регистрацию штрихкодов. Без НДС"


@pytest.mark.parametrize("encoding", ["cp1251", "cp866"])
def test_statement_applies_the_exact_match_holds_the_rest_and_credits_a_known_client(
    rt: Runtime, encoding: str
) -> None:
    known = client(rt, inn=OTHER_CLIENT_INN)
    paid, partial = invoiced(rt), invoiced(rt)
    data = statement_bytes(
        [
            incoming("1", amount=str(paid.total), purpose=purpose(paid.number)),
            incoming("2", amount="100.00", purpose=purpose(partial.number)),
            incoming("3", amount="500.00", payer_inn="7707083893", purpose="Аванс"),
            incoming("4", amount="700", payer_inn=OTHER_CLIENT_INN, purpose="Аванс без счёта"),
            outgoing("5"),
        ],
        encoding=encoding,
    )
    summary = import_file(rt, data)
    assert summary.error is None
    assert summary.line == "applied 1, held 2, unreadable 0, credited 1, skipped 1, duplicates 0"
    assert state(rt, paid) == ("paid", "paid")
    assert state(rt, partial) == ("issued", "invoiced")
    assert balance(rt, known) == Decimal("700.00")
    assert payments(rt) == [
        ("applied", "exact match"),
        ("held", f"partial payment: 100.00 of {partial.total} RUB due on {partial.number}"),
        ("held", "unknown payer: INN 7707083893 is no client, no invoice number"),
        ("credited", "no invoice number: credited to the client's balance"),
    ]
    with Session(rt.engine) as s:
        events = {e.event for e in s.exec(select(Event))}
    assert {"payment_matched", "invoice_paid", "payment_held", "balance_credited"} <= events


def test_importing_the_same_file_twice_changes_nothing(rt: Runtime) -> None:
    known = client(rt, inn=OTHER_CLIENT_INN)
    invoice = invoiced(rt)
    data = statement_bytes(
        [
            incoming("1", amount=str(invoice.total), purpose=purpose(invoice.number)),
            incoming("2", amount="1.00", payer_inn="7707083893", purpose="Аванс"),
            incoming("3", amount="250.00", payer_inn=OTHER_CLIENT_INN, purpose="Аванс"),
        ]
    )
    import_file(rt, data)
    before = (payments(rt), balance(rt, known), state(rt, invoice))
    again = import_file(rt, data)
    assert again.line == "applied 0, held 0, unreadable 0, credited 0, skipped 0, duplicates 3"
    assert (payments(rt), balance(rt, known), state(rt, invoice)) == before


def test_overlapping_statement_with_the_purpose_split_differently_is_a_duplicate(
    rt: Runtime,
) -> None:
    invoice = invoiced(rt)
    doc = incoming("77", amount=str(invoice.total), purpose=purpose(invoice.number))
    import_file(rt, statement_bytes([doc]))
    split = split_purpose(dict(doc))
    again = import_file(rt, statement_bytes([split], encoding="cp866"))
    assert again.line.endswith("duplicates 1")


def test_second_payment_of_a_paid_invoice_is_held_not_applied_twice(rt: Runtime) -> None:
    invoice = invoiced(rt)
    assert pay_invoice(rt, invoice.number).ok
    data = statement_bytes(
        [incoming("9", amount=str(invoice.total), purpose=purpose(invoice.number))]
    )
    summary = import_file(rt, data)
    assert [o.reason for o in summary.outcomes] == [f"invoice {invoice.number} is already paid"]


def test_not_a_statement_is_refused_whole(rt: Runtime) -> None:
    summary = import_file(rt, b"%PDF-1.7 not a statement")
    assert summary.error is not None
    assert payments(rt) == []


def test_unauthenticated_statement_only_holds_even_an_exact_match(rt: Runtime) -> None:
    invoice = invoiced(rt)
    data = statement_bytes(
        [incoming("1", amount=str(invoice.total), purpose=purpose(invoice.number))]
    )
    with transaction(rt.engine) as s:
        summary = import_statement(
            s, rt, data, source="mail", hold_reason="statement not authenticated"
        )
    assert summary.line.startswith("applied 0, held 1")
    assert state(rt, invoice) == ("issued", "invoiced")
    assert payments(rt) == [("held", "statement not authenticated")]
    # the accountant confirms it by hand: the invoice it would have matched is paid
    [pid] = [o.payment_id for o in summary.outcomes]
    assert pid is not None
    assert apply_held(rt, pid).ok
    assert state(rt, invoice) == ("paid", "paid")


def test_accountant_applies_a_partial_payment_to_a_named_invoice(rt: Runtime) -> None:
    invoice = invoiced(rt)
    data = statement_bytes([incoming("1", amount="10.00", purpose="оплата за штрихкоды")])
    [held] = import_file(rt, data).outcomes
    assert held.verdict == "held" and held.payment_id is not None
    refused = apply_held(rt, held.payment_id)
    assert not refused.ok and "--invoice" in refused.message
    assert apply_held(rt, held.payment_id, invoice_number=invoice.number).ok
    assert state(rt, invoice) == ("paid", "paid")
    assert not apply_held(rt, held.payment_id).ok  # no longer held


def test_rejected_payment_stays_on_record_with_the_reason(rt: Runtime) -> None:
    data = statement_bytes(
        [incoming("1", amount="10.00", payer_inn="7707083893", purpose="возврат займа")]
    )
    [held] = import_file(rt, data).outcomes
    assert held.payment_id is not None
    assert reject_held(rt, held.payment_id, reason="loan repayment, not ours").ok
    [(status, reason)] = payments(rt)
    assert status == "rejected" and reason.startswith("loan repayment, not ours")
    assert not reject_held(rt, held.payment_id, reason="again").ok


def test_next_order_is_paid_from_the_balance_first_and_invoiced_for_the_rest(
    rt: Runtime,
) -> None:
    known = client(rt, balance="100.00")
    invoice = invoiced(rt, client_id=known)
    assert invoice.from_balance == Decimal("100.00")
    assert balance(rt, known) == Decimal("0.00")
    assert state(rt, invoice) == ("issued", "invoiced")
    due = invoice.total - invoice.from_balance
    data = statement_bytes([incoming("1", amount=str(due), purpose=purpose(invoice.number))])
    assert import_file(rt, data).line.startswith("applied 1")
    assert state(rt, invoice) == ("paid", "paid")


def test_balance_covering_the_whole_order_pays_it_without_an_invoice_to_pay(
    rt: Runtime,
) -> None:
    known = client(rt, balance="100000.00")
    invoice = invoiced(rt, client_id=known, count=2)
    assert invoice.from_balance == invoice.total
    assert balance(rt, known) == Decimal("100000.00") - invoice.total
    assert state(rt, invoice) == ("paid", "paid")
    with Session(rt.engine) as s:
        events = [e.event for e in s.exec(select(Event).where(Event.entity == "application"))]
    assert "paid_from_balance" in events


def test_every_document_ends_applied_held_or_duplicate_and_no_kopeck_is_lost(
    rt: Runtime,
) -> None:
    """A good payment, an overpayment, an unreadable document and a duplicate."""
    known = client(rt, inn=OTHER_CLIENT_INN)
    good = invoiced(rt)
    over = invoiced(rt, inn=OTHER_CLIENT_INN, client_id=known)  # an order of a known client
    paid_over = over.total + Decimal("500.00")
    overpay = incoming("2", amount=str(paid_over), purpose=purpose(over.number))
    overpay["ПлательщикИНН"] = OTHER_CLIENT_INN
    unreadable = incoming("3", amount="2 500,00 руб.", purpose=purpose(good.number))
    pay_good = incoming("1", amount=str(good.total), purpose=purpose(good.number))
    summary = import_file(rt, statement_bytes([pay_good, overpay, unreadable, pay_good]))
    assert summary.line == "applied 1, held 1, unreadable 1, credited 0, skipped 0, duplicates 1"
    assert summary.needs_accountant
    verdicts = [(o.line > 0, o.verdict) for o in summary.outcomes]
    assert sorted(v for _, v in verdicts) == ["applied", "duplicate", "held", "unreadable"]
    [raw] = [o for o in summary.outcomes if o.verdict == "unreadable"]
    with Session(rt.engine) as s:
        held_raw = s.get(Payment, raw.payment_id)
        assert held_raw is not None
        assert held_raw.status == "held"
        assert "Сумма=2 500,00 руб." in held_raw.purpose  # the raw lines, for the accountant
    refused = apply_held(rt, raw.payment_id or 0)
    assert not refused.ok and "could not be read" in refused.message

    [overpaid] = [o for o in summary.outcomes if o.verdict == "held"]
    result = apply_held(rt, overpaid.payment_id or 0)
    assert result.ok
    assert "surplus 500.00 RUB credited" in result.message
    assert state(rt, over) == ("paid", "paid")
    assert balance(rt, known) == Decimal("500.00")
    with Session(rt.engine) as s:
        moves = [e.data for e in s.exec(select(Event).where(Event.event == "balance_credited"))]
    assert moves == [
        {
            "amount": "500.00",
            "balance": "500.00",
            "surplus_of": over.number,
            "payment": moves[0]["payment"],
        }
    ]


def test_an_overpayment_before_the_client_exists_waits_and_is_credited_at_issuance(
    rt: Runtime,
) -> None:
    rt.settings = dataclasses.replace(rt.settings, prefixes=(Prefix("4601234", 100_000),))
    with transaction(rt.engine) as s:
        sync_prefixes(s, rt.settings.prefixes, now=rt.clock())
    invoice = invoiced(rt)
    with transaction(rt.engine) as s:
        s.add_all(
            ProductRow(
                application_id=invoice.application_id,
                row=2 + i,
                name=f"Сок {i}",
                product_type_code="01",
                product_type_name="Продукты питания",
                brand="Сад",
                net_quantity="1",
                unit="л",
            )
            for i in range(3)
        )
    result = pay_invoice(
        rt, invoice.number, amount=invoice.total + Decimal("300.00"), force_reason="rounded up"
    )
    assert result.ok
    assert "surplus 300.00 RUB goes to the balance when the client is registered" in (
        result.message
    )
    assert issue_paid(rt) == 1
    with Session(rt.engine) as s:
        [registered] = s.exec(select(Client)).all()
        assert registered.balance == Decimal("300.00")
        [payment] = s.exec(select(Payment)).all()
        assert payment.client_id == registered.id
        [move] = s.exec(select(Event).where(Event.event == "balance_credited")).all()
        assert move.entity_id == registered.id
        assert move.data["surplus_of"] == invoice.number
