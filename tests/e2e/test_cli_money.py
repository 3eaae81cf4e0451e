"""`mailbot invoices pay` through the real CLI on SQLite and PostgreSQL: what it accepts,
what it refuses (one line, exit code 1, nothing changed), and what it keeps."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailbot.billing.invoices import create_invoice, opening_event
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Event, Invoice, Payment
from mailbot.storage.queries import next_number
from mailbot.workflow import must, transition
from tests.e2e.helpers import mailbot


def invoiced(rt: Runtime) -> Invoice:
    now = rt.clock()
    with transaction(rt.engine) as s:
        seq = next_number(s, "application", now.year)
        app = Application(
            number=f"EAN-{now.year}-{seq:06d}",
            kind="registration",
            state="accepted",
            sender="applicant@client.test",
            form={"inn": "7707083893", "kpp": "773001001", "org_name": "ООО «Ромашка»"},
            created_at=now,
            updated_at=now,
        )
        s.add(app)
        s.flush()
        invoice = create_invoice(s, app, count=2, new_client=True, settings=rt.settings, now=now)
        must(transition(s, app, opening_event(invoice), now=now))
    return invoice


def pay(workdir: Path, db_url: str, *args: str) -> tuple[int, str, str]:
    proc = mailbot(
        workdir, "invoices", "pay", *args, env={"MAILBOT_DATABASE_URL": db_url}, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def payments(rt: Runtime) -> list[Payment]:
    with Session(rt.engine) as s:
        return list(s.exec(select(Payment).order_by(col(Payment.id))))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--amount", "-2500", "--force", "test"), "negative"),
        (("--amount", "0", "--force", "x"), "zero"),
        (("--amount", "NaN", "--force", "x"), "not a sum"),
        (("--amount", "Infinity", "--force", "x"), "not a sum"),
        (("--amount", "1e30", "--force", "x"), "not a sum"),
        (("--amount", "1e3", "--force", "x"), "not a sum"),
        (("--amount", "12,345", "--force", "x"), "more than 2 decimals"),
        (("--amount", "1", "--force", "   "), "--force needs a reason"),
        (
            (
                "--date",
                "2030-01-01",
            ),
            "in the future",
        ),
        (
            (
                "--date",
                "31.02.2026",
            ),
            "does not exist",
        ),
    ],
)
def test_refusals_print_one_line_exit_1_and_change_nothing(
    rt: Runtime, workdir: Path, db_url: str, args: tuple[str, ...], says: str
) -> None:
    invoice = invoiced(rt)
    code, out, err = pay(workdir, db_url, invoice.number, *args)
    assert code == 1
    assert says in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out
    assert payments(rt) == []
    with Session(rt.engine) as s:
        assert (
            s.exec(select(Invoice).where(Invoice.number == invoice.number)).one().status == "issued"
        )


def test_russian_amount_and_date_are_accepted_and_the_reason_is_kept(
    rt: Runtime, workdir: Path, db_url: str
) -> None:
    invoice = invoiced(rt)
    partial = invoice.total - Decimal("1000")
    typed = f"{partial:,.2f}".replace(",", " ").replace(".", ",")  # «N NNN,00»
    code, out, err = pay(
        workdir,
        db_url,
        invoice.number,
        "--amount",
        typed,
        "--date",
        "26.11.2026",
        "--force",
        "  paid  in two parts ",
    )
    assert code == 0, err
    assert f"paid: {partial}" in out
    [payment] = payments(rt)
    assert payment.amount == partial
    assert payment.paid_on.isoformat() == "2026-11-26"
    assert payment.reason == "paid in two parts"
    with Session(rt.engine) as s:
        event = s.exec(select(Event).where(Event.event == "invoice_paid")).one()
    assert event.data["reason"] == "paid in two parts"


def test_a_payment_dated_before_its_invoice_is_accepted_with_a_warning(
    rt: Runtime, workdir: Path, db_url: str
) -> None:
    invoice = invoiced(rt)  # issued on the test clock's day, 25.11.2026
    code, out, _ = pay(workdir, db_url, invoice.number, "--date", "2026-11-20")
    assert code == 0
    assert "warning: paid on 20.11.2026, before the invoice was issued (25.11.2026)" in out
    [payment] = payments(rt)
    assert payment.amount == invoice.total
