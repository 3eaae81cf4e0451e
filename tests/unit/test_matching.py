"""Matching one statement document: exact matches only; everything else is held with why."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from mailbot.billing.matching import InvoiceFacts, Verdict, decide
from mailbot.parsers.bank_statement_1c import StatementDocument
from tests.fixtures.statements import CLIENT_INN, OTHER_CLIENT_INN

BASE = StatementDocument(
    line=20,
    kind="Платежное поручение",
    number="412",
    date=dt.date(2026, 11, 26),
    amount=Decimal("12400.00"),
    payer_inn=CLIENT_INN,
    payer_name='ООО "Ромашка"',
    payer_account="40702810500000012345",
    payee_inn="7701123451",
    payee_account="40702810254000001234",
    purpose="Оплата по счёту № 2026-00123 от 25.11.2026 за регистрацию штрихкодов.",
    received_on=dt.date(2026, 11, 26),
    written_off_on=dt.date(2026, 11, 26),
    incoming=True,
    fingerprint="f" * 64,
)
INVOICE = InvoiceFacts("2026-00123", CLIENT_INN, Decimal("12400.00"), "issued")


def doc(**changes: object) -> StatementDocument:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_exact_number_inn_and_sum_is_applied_to_that_invoice() -> None:
    d = decide(doc(), {INVOICE.number: INVOICE}, {})
    assert (d.verdict, d.invoice) == (Verdict.apply, "2026-00123")


def test_number_written_with_spaces_and_a_dash_still_matches() -> None:
    d = decide(doc(purpose="Оплата сч. 2026 – 00123"), {INVOICE.number: INVOICE}, {})
    assert d.verdict is Verdict.apply


def test_partial_payment_is_held_with_both_amounts() -> None:
    d = decide(doc(amount=Decimal("12000.00")), {INVOICE.number: INVOICE}, {})
    assert d.verdict is Verdict.hold
    assert d.reason == "partial payment: 12000.00 of 12400.00 RUB due on 2026-00123"
    assert d.invoice == "2026-00123"


def test_one_kopeck_too_much_is_an_overpayment_held() -> None:
    d = decide(doc(amount=Decimal("12400.01")), {INVOICE.number: INVOICE}, {})
    assert d.verdict is Verdict.hold
    assert d.reason.startswith("overpayment: 12400.01")


def test_payer_inn_other_than_the_buyer_is_held_as_wrong_payer() -> None:
    d = decide(doc(payer_inn=OTHER_CLIENT_INN), {INVOICE.number: INVOICE}, {})
    assert d.verdict is Verdict.hold
    assert d.reason.startswith(f"wrong payer: INN {OTHER_CLIENT_INN}")


def test_amount_due_after_balance_is_what_must_be_paid() -> None:
    facts = dataclasses.replace(INVOICE, due=Decimal("400.00"))
    assert decide(doc(amount=Decimal("400.00")), {facts.number: facts}, {}).verdict is Verdict.apply
    assert decide(doc(), {facts.number: facts}, {}).verdict is Verdict.hold


def test_two_of_our_invoices_in_one_purpose_are_ambiguous() -> None:
    other = dataclasses.replace(INVOICE, number="2026-00124")
    d = decide(
        doc(purpose="Оплата по счетам 2026-00123 и 2026-00124"),
        {INVOICE.number: INVOICE, other.number: other},
        {},
    )
    assert d.verdict is Verdict.hold
    assert d.reason == "ambiguous: the purpose names invoices 2026-00123, 2026-00124"


def test_paying_an_already_paid_invoice_is_held() -> None:
    paid = dataclasses.replace(INVOICE, status="paid")
    d = decide(doc(), {paid.number: paid}, {})
    assert (d.verdict, d.reason) == (Verdict.hold, "invoice 2026-00123 is already paid")


def test_cancelled_invoice_is_held() -> None:
    gone = dataclasses.replace(INVOICE, status="cancelled")
    assert decide(doc(), {gone.number: gone}, {}).verdict is Verdict.hold


def test_an_invoice_number_we_never_issued_is_held_not_credited() -> None:
    d = decide(doc(purpose="Оплата по счёту 2026-00999"), {}, {CLIENT_INN: [7]})
    assert d.verdict is Verdict.hold
    assert d.reason == "unknown invoice 2026-00999 in the purpose"


def test_known_client_without_invoice_number_is_credited_to_its_balance() -> None:
    d = decide(doc(purpose="Аванс за штрихкоды, без НДС"), {}, {CLIENT_INN: [7]})
    assert (d.verdict, d.client_id) == (Verdict.credit, 7)


def test_unknown_payer_without_invoice_number_is_held() -> None:
    d = decide(doc(purpose="Аванс"), {}, {})
    assert d.verdict is Verdict.hold
    assert d.reason.startswith(f"unknown payer: INN {CLIENT_INN}")


def test_inn_shared_by_two_clients_is_an_ambiguous_payer() -> None:
    d = decide(doc(purpose="Аванс"), {}, {CLIENT_INN: [7, 9]})
    assert d.verdict is Verdict.hold
    assert d.reason.startswith("ambiguous payer")


def test_payment_without_payer_inn_or_number_is_held() -> None:
    assert decide(doc(purpose="Аванс", payer_inn=""), {}, {}).verdict is Verdict.hold


def test_outgoing_payment_is_skipped() -> None:
    d = decide(doc(incoming=False), {INVOICE.number: INVOICE}, {})
    assert d.verdict is Verdict.skip
