"""Reminders and expiry: once each, whatever the restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from sqlmodel import Session, col, select

from mailbot.billing.payments import pay_invoice
from mailbot.cli.demo import sample_message
from mailbot.mail.intake.base import RawMessage
from mailbot.pipeline import archive_one, process_pending
from mailbot.runtime import Runtime
from mailbot.service.scheduler import start_scheduler, sweep_invoices
from mailbot.storage.models import Application, Invoice, OutboxMessage
from tests.conftest import FakeClock


def _invoiced(rt: Runtime) -> str:
    raw = sample_message(to="info@example.test")
    archive_one(rt, RawMessage("maildir:one", raw, len(raw)))
    assert process_pending(rt) == 1
    with Session(rt.engine) as s:
        return s.exec(select(Invoice.number)).one()


def _kinds(rt: Runtime) -> list[str]:
    with Session(rt.engine) as s:
        return [o.kind for o in s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))]


def test_an_unpaid_invoice_is_reminded_once_then_expires_once(
    rt: Runtime, clock: FakeClock
) -> None:
    number = _invoiced(rt)
    assert sweep_invoices(rt).reminded == 0  # not yet due for a reminder
    clock.advance(days=3)
    assert sweep_invoices(rt).reminded == 1
    assert sweep_invoices(rt).reminded == 0  # a second run (or a restart) repeats nothing
    clock.advance(days=7)
    report = sweep_invoices(rt)
    assert (report.reminded, report.expired) == (0, 1)
    assert sweep_invoices(rt).expired == 0
    assert _kinds(rt) == ["invoice", "invoice_reminder", "invoice_expired"]
    with Session(rt.engine) as s:
        assert s.exec(select(Application.state)).one() == "expired"
    assert pay_invoice(rt, number).ok  # a late payment is still money received
    with Session(rt.engine) as s:
        assert s.exec(select(Application.state)).one() == "paid"


def test_a_sweep_that_missed_the_reminder_day_catches_up_with_one_mail(
    rt: Runtime, clock: FakeClock
) -> None:
    _invoiced(rt)
    clock.advance(days=5)  # the daemon was down on day 3
    assert sweep_invoices(rt).reminded == 1
    assert _kinds(rt).count("invoice_reminder") == 1


def test_the_scheduler_runs_a_sweep_as_soon_as_it_starts(rt: Runtime, clock: FakeClock) -> None:
    _invoiced(rt)
    clock.advance(days=4)
    scheduler = start_scheduler(rt)
    try:
        deadline = time.monotonic() + 20
        while "invoice_reminder" not in _kinds(rt) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition with a deadline, not synchronising
    finally:
        scheduler.shutdown(wait=True)
    assert _kinds(rt).count("invoice_reminder") == 1
