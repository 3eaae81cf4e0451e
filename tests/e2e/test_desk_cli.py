"""The accountant's desk through the real `mailbot` command, on SQLite and PostgreSQL:
payments list, invoices show/pdf/resend/cancel, payments reverse, clients balance,
invoices pay --from-balance; every refusal is one line, exit 1, nothing changed."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.billing.invoices import create_invoice, opening_event
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    Client,
    Event,
    Invoice,
    OutboxMessage,
    Payment,
)
from mailbot.storage.queries import next_number
from mailbot.workflow import must, transition
from tests.e2e.helpers import mailbot
from tests.fixtures.statements import CLIENT_INN, incoming, statement_bytes
from tests.integration.test_payments import client, invoiced, purpose

pytestmark = pytest.mark.timeout(600)


class Desk:
    """The accountant at the terminal: runs `mailbot …` against the test's database."""

    def __init__(self, workdir: Path, db_url: str) -> None:
        self.workdir, self.env = workdir, {"MAILBOT_DATABASE_URL": db_url}

    def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = mailbot(self.workdir, *args, env=self.env, check=False)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        return proc.returncode, proc.stdout, proc.stderr

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def refused(self, *args: str) -> str:
        """The command fails with exit 1 and one line on stderr; return that line."""
        code, _, err = self(*args)
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        return lines[0]

    def rows(self, *args: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.ok(*args, "--json"))
        return data


@pytest.fixture
def desk(workdir: Path, db_url: str) -> Desk:
    return Desk(workdir, db_url)


def snapshot(rt: Runtime) -> tuple[list[tuple[Any, ...]], ...]:
    """Everything money touches, to prove a refusal changed nothing."""
    with Session(rt.engine) as s:
        return (
            [(p.id, p.status, p.amount, p.invoice_id) for p in s.exec(select(Payment))],
            [(i.number, i.status, i.from_balance) for i in s.exec(select(Invoice))],
            [(a.number, a.state) for a in s.exec(select(Application))],
            [(c.id, c.balance) for c in s.exec(select(Client))],
            [(e.id,) for e in s.exec(select(Event))],
        )


def row(rt: Runtime, number: str) -> tuple[Invoice, Application]:
    with Session(rt.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.number == number)).one()
        app = s.get(Application, inv.application_id)
        assert app is not None
        return inv, app


def balance_of(rt: Runtime, client_id: int) -> Decimal:
    with Session(rt.engine) as s:
        c = s.get(Client, client_id)
        assert c is not None
        return c.balance


def open_order(rt: Runtime, client_id: int) -> Invoice:
    """An order of a known client whose invoice did not touch the balance (not yet confirmed)."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        seq = next_number(s, "application", now.year)
        app = Application(
            number=f"EAN-{now.year}-{seq:06d}",
            kind="order",
            state="accepted",
            client_id=client_id,
            sender="buyer@client.test",
            form={"inn": CLIENT_INN, "kpp": "773001001", "org_name": "ООО «Ромашка»"},
            created_at=now,
            updated_at=now,
        )
        s.add(app)
        s.flush()
        invoice = create_invoice(
            s, app, count=2, new_client=False, settings=rt.settings, now=now, use_balance=False
        )
        must(transition(s, app, opening_event(invoice), now=now))
    return invoice


def set_balance(rt: Runtime, client_id: int, amount: str) -> None:
    with transaction(rt.engine) as s:
        c = s.get(Client, client_id)
        assert c is not None
        c.balance = Decimal(amount)
        s.add(c)


def test_payments_list_filters_by_period_inn_status_and_invoice(rt: Runtime, desk: Desk) -> None:
    paid, other = invoiced(rt), invoiced(rt)
    desk.ok("invoices", "pay", paid.number, "--date", "26.11.2026")
    file = desk.workdir / "kl_to_1c.txt"
    account = rt.settings.service.account
    held = incoming("7", amount="100.00", purpose=purpose(other.number), our_account=account)
    file.write_bytes(statement_bytes([held], our_account=account))
    assert desk("payments", "import", str(file))[0] == 3

    everything = desk.rows("payments", "list")
    assert [(r["status"], r["invoice"]) for r in everything] == [
        ("applied", paid.number),
        ("held", other.number),
    ]
    assert everything[0]["amount"] == str(paid.total)
    assert [r["status"] for r in desk.rows("payments", "list", "--status", "held")] == ["held"]
    by_invoice = desk.rows("payments", "list", "--invoice", paid.number)
    assert [r["invoice"] for r in by_invoice] == [paid.number]
    assert [r["amount"] for r in desk.rows("payments", "list", "--inn", CLIENT_INN)] == ["100.00"]
    assert desk.rows("payments", "list", "--from", "27.11.2026") == []
    assert len(desk.rows("payments", "list", "--from", "2026-11-26", "--to", "26.11.2026")) == 2
    assert "in the future" in desk.refused("payments", "list", "--from", "01.01.2030")
    assert "one of applied" in desk.refused("payments", "list", "--status", "bogus")
    assert "not found" in desk.refused("payments", "list", "--invoice", "2026-99999")
    table = desk.ok("payments", "list")
    assert paid.number in table and "held" in table
    [held_row] = desk.rows("payments", "list", "--status", "held")
    before = snapshot(rt)
    line = desk.refused("payments", "reverse", str(held_row["id"]), "--reason", "x", "--yes")
    assert "is held, not applied: reject it instead" in line
    assert "not found" in desk.refused("invoices", "resend", "2026-99999")
    assert snapshot(rt) == before


def test_cancelled_invoice_keeps_its_number_and_is_never_paid(rt: Runtime, desk: Desk) -> None:
    invoice = invoiced(rt)
    before = snapshot(rt)
    assert "--yes" in desk.refused("invoices", "cancel", invoice.number, "--reason", "dup")
    assert "--reason must say why" in desk.refused(
        "invoices", "cancel", invoice.number, "--reason", "  ", "--yes"
    )
    assert "not found" in desk.refused("invoices", "cancel", "2026-99999", "--reason", "x", "--yes")
    assert snapshot(rt) == before

    said = desk.ok("invoices", "cancel", invoice.number, "--reason", "sent twice", "--yes")
    assert f"invoice {invoice.number} cancelled" in said
    inv, app = row(rt, invoice.number)
    assert (inv.status, app.state) == ("cancelled", "cancelled")
    listed = desk.rows("invoices", "list")
    assert [(r["number"], r["status"]) for r in listed] == [(invoice.number, "cancelled")]
    assert "cancelled" in desk.ok("invoices", "show", invoice.number)

    after = snapshot(rt)
    assert "is cancelled" in desk.refused("invoices", "pay", invoice.number)
    assert "is cancelled" in desk.refused("invoices", "pay", invoice.number, "--from-balance")
    assert "is cancelled" in desk.refused("invoices", "resend", invoice.number)
    assert snapshot(rt) == after
    account = rt.settings.service.account
    file = desk.workdir / "kl_to_1c.txt"
    exact = incoming(
        "9", amount=str(invoice.total), purpose=purpose(invoice.number), our_account=account
    )
    file.write_bytes(statement_bytes([exact], our_account=account))
    code, out, _ = desk("payments", "import", str(file))
    assert code == 3
    assert f"invoice {invoice.number} is cancelled" in out
    [held] = desk.rows("payments", "list")
    assert held["status"] == "held"
    assert "is cancelled" in desk.refused("payments", "apply", str(held["id"]))
    assert row(rt, invoice.number)[0].status == "cancelled"


def test_cancelling_a_paid_invoice_is_refused_and_a_balance_share_comes_back(
    rt: Runtime, desk: Desk
) -> None:
    paid = invoiced(rt)
    desk.ok("invoices", "pay", paid.number)
    before = snapshot(rt)
    line = desk.refused("invoices", "cancel", paid.number, "--reason", "x", "--yes")
    assert "is paid: reverse payment" in line
    assert snapshot(rt) == before

    known = client(rt, balance="300.00")
    order = invoiced(rt, client_id=known)  # the balance covers 300.00 of it
    assert order.from_balance == Decimal("300.00")
    assert balance_of(rt, known) == 0
    said = desk.ok("invoices", "cancel", order.number, "--reason", "wrong order", "--yes")
    assert "300.00 RUB returned to the balance" in said
    assert balance_of(rt, known) == Decimal("300.00")
    moves = desk.rows("clients", "balance", CLIENT_INN)
    assert [(m["event"], m["amount"], m["ref"]) for m in moves] == [
        ("balance_used", "-300.00", row(rt, order.number)[1].number),
        ("balance_returned", "300.00", order.number),
    ]


def test_reversing_a_payment_unpays_its_invoice_and_keeps_the_row(rt: Runtime, desk: Desk) -> None:
    invoice = invoiced(rt)
    desk.ok("invoices", "pay", invoice.number)
    [payment] = desk.rows("payments", "list")
    pid = str(payment["id"])
    before = snapshot(rt)
    assert "--yes" in desk.refused("payments", "reverse", pid, "--reason", "wrong invoice")
    assert "--reason must say why" in desk.refused("payments", "reverse", pid, "--reason", "")
    assert "no payment 999" in desk.refused("payments", "reverse", "999", "--reason", "x", "--yes")
    assert snapshot(rt) == before

    said = desk.ok("payments", "reverse", pid, "--reason", "wrong invoice", "--yes")
    assert f"invoice {invoice.number} is unpaid again" in said
    inv, app = row(rt, invoice.number)
    assert (inv.status, app.state) == ("issued", "invoiced")
    [kept] = desk.rows("payments", "list")
    assert (kept["id"], kept["status"]) == (payment["id"], "reversed")
    assert "wrong invoice" in kept["reason"]
    assert "already reversed" in desk.refused("payments", "reverse", pid, "--reason", "x", "--yes")

    desk.ok("invoices", "pay", invoice.number)  # the right money, entered again
    assert row(rt, invoice.number)[0].status == "paid"
    assert [r["status"] for r in desk.rows("payments", "list")] == ["reversed", "applied"]
    with Session(rt.engine) as s:
        events = [(e.entity, e.event) for e in s.exec(select(Event).order_by(col(Event.id)))]
    assert events.count(("invoice", "invoice_paid")) == 2
    assert events.count(("invoice", "invoice_unpaid")) == 1
    assert events.count(("payment", "payment_reversed")) == 1
    assert events.count(("application", "payment_reversed")) == 1  # paid → invoiced


def test_reversal_after_codes_were_issued_says_they_stay(rt: Runtime, desk: Desk) -> None:
    invoice = invoiced(rt)
    desk.ok("invoices", "pay", invoice.number)
    with transaction(rt.engine) as s:
        app = s.exec(select(Application).where(Application.id == invoice.application_id)).one()
        must(transition(s, app, "codes_issued", now=rt.clock()))
    [payment] = desk.rows("payments", "list")
    said = desk.ok("payments", "reverse", str(payment["id"]), "--reason", "bounced", "--yes")
    assert "were already issued and stay issued" in said
    inv, app_row = row(rt, invoice.number)
    assert (inv.status, app_row.state) == ("issued", "issued")


def test_reversing_a_credit_already_spent_is_refused(rt: Runtime, desk: Desk) -> None:
    known = client(rt)
    account = rt.settings.service.account
    file = desk.workdir / "kl_to_1c.txt"
    advance = incoming("3", amount="700.00", purpose="Аванс", our_account=account)
    file.write_bytes(statement_bytes([advance], our_account=account))
    desk.ok("payments", "import", str(file))
    [credited] = desk.rows("payments", "list")
    assert credited["status"] == "credited"
    set_balance(rt, known, "200.00")  # 500.00 of it was spent since
    before = snapshot(rt)
    line = desk.refused("payments", "reverse", str(credited["id"]), "--reason", "x", "--yes")
    assert "holds 200.00 RUB now (already spent): not reversed" in line
    assert snapshot(rt) == before

    set_balance(rt, known, "700.00")
    said = desk.ok("payments", "reverse", str(credited["id"]), "--reason", "not ours", "--yes")
    assert "700.00 RUB taken back from the balance (0.00 RUB)" in said
    moves = desk.rows("clients", "balance", CLIENT_INN)
    assert [(m["event"], m["amount"]) for m in moves] == [
        ("balance_credited", "700.00"),
        ("balance_reversed", "-700.00"),
    ]


def test_clients_balance_lists_every_client_and_one_clients_movements(
    rt: Runtime, desk: Desk
) -> None:
    first = client(rt, balance="1000.00")
    client(rt, inn="500100732259", balance="0.00")
    order = open_order(rt, first)
    everyone = desk.rows("clients", "balance")
    assert [(r["inn"], r["balance"]) for r in everyone] == [
        (CLIENT_INN, "1000.00"),
        ("500100732259", "0.00"),
    ]
    assert "not found" in desk.refused("clients", "balance", "0000000000")

    said = desk.ok("invoices", "pay", order.number, "--from-balance")
    due = order.total
    if due <= Decimal("1000.00"):
        assert f"invoice {order.number} paid" in said
    else:
        assert "still due" in said
    text = desk.ok("clients", "balance", CLIENT_INN)
    assert "balance_used" in text and row(rt, order.number)[1].number in text
    [move] = desk.rows("clients", "balance", CLIENT_INN)
    assert Decimal(move["amount"]) == -min(due, Decimal("1000.00"))


def test_pay_from_balance_pays_in_full_or_refuses_with_one_line(rt: Runtime, desk: Desk) -> None:
    known = client(rt)
    order = open_order(rt, known)
    stranger = invoiced(rt, inn="500100732259")
    before = snapshot(rt)
    assert "is empty" in desk.refused("invoices", "pay", order.number, "--from-balance")
    assert "takes no --amount" in desk.refused(
        "invoices", "pay", order.number, "--from-balance", "--amount", "10"
    )
    assert "no registered client" in desk.refused(
        "invoices", "pay", stranger.number, "--from-balance"
    )
    assert snapshot(rt) == before

    set_balance(rt, known, str(order.total + Decimal("5.00")))
    said = desk.ok("invoices", "pay", order.number, "--from-balance")
    assert f"invoice {order.number} paid" in said
    inv, app = row(rt, order.number)
    assert (inv.status, app.state, inv.from_balance) == ("paid", "paid", order.total)
    assert balance_of(rt, known) == Decimal("5.00")
    with Session(rt.engine) as s:
        paid = s.exec(select(Event).where(Event.event == "invoice_paid")).one()
    assert paid.data["source"] == "balance"
    assert "is paid" in desk.refused("invoices", "pay", order.number, "--from-balance")


def test_invoice_show_pdf_and_resend(rt: Runtime, desk: Desk) -> None:
    invoice = invoiced(rt)
    desk.ok("invoices", "pay", invoice.number, "--amount", str(invoice.total))
    shown = desk.ok("invoices", "show", invoice.number)
    assert f"invoice {invoice.number}" in shown and "paid" in shown
    assert "line: " in shown and f"{invoice.total} RUB" in shown
    assert re.search(rf"payment \d+: {invoice.total} RUB", shown)
    assert "not found" in desk.refused("invoices", "show", "2026-99999")

    target = desk.workdir / "saved.pdf"
    said = desk.ok("invoices", "pdf", invoice.number, "--out", str(target))
    assert str(target) in said
    assert target.read_bytes().startswith(b"%PDF")
    assert "not found" in desk.refused("invoices", "pdf", "2026-99999")

    desk.ok("invoices", "resend", invoice.number)
    desk.ok("invoices", "resend", invoice.number)
    with Session(rt.engine) as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "invoice")).all()
    assert len(rows) == 2
    assert {tuple(r.recipients) for r in rows} == {("applicant@client.test",)}
    mail = BytesParser(policy=policy.default).parsebytes(rows[0].body)
    names = [a.get_filename() for a in mail.iter_attachments()]
    assert names == [f"Счёт {invoice.number}.pdf"]


def test_statement_with_good_over_unreadable_and_duplicate_exits_3_and_loses_nothing(
    rt: Runtime, desk: Desk
) -> None:
    """One applied, one overpayment held then applied with its surplus credited, one held
    with its raw lines, one duplicate; exit 3 so a script notices."""
    known = client(rt)
    good, over = invoiced(rt, inn="500100732259"), invoiced(rt, client_id=known)
    account = rt.settings.service.account

    def doc(number: str, amount: str, invoice: Invoice, inn: str = CLIENT_INN) -> dict[str, Any]:
        return incoming(
            number,
            amount=amount,
            purpose=purpose(invoice.number),
            payer_inn=inn,
            our_account=account,
        )

    pay_good = doc("1", str(good.total), good, inn="500100732259")
    due = over.total - over.from_balance
    file = desk.workdir / "kl_to_1c.txt"
    file.write_bytes(
        statement_bytes(
            [
                pay_good,
                doc("2", str(due + Decimal("500.00")), over),
                doc("3", "2 500,00 руб.", good),
                pay_good,
            ],
            our_account=account,
        )
    )
    code, out, _ = desk("payments", "import", str(file))
    assert code == 3
    assert "applied 1, held 1, unreadable 1, credited 0, skipped 0, duplicates 1" in out
    held = {r["reason"].split(":")[0]: r for r in desk.rows("payments", "pending")}
    assert set(held) == {"overpayment", "unreadable document"}
    raw = held["unreadable document"]
    assert "could not be read" in desk.refused("payments", "apply", str(raw["id"]))
    with Session(rt.engine) as s:
        kept = s.get(Payment, raw["id"])
        assert kept is not None and "Сумма=2 500,00 руб." in kept.purpose

    said = desk.ok("payments", "apply", str(held["overpayment"]["id"]))
    assert "surplus 500.00 RUB credited to the balance (500.00 RUB)" in said
    assert row(rt, over.number)[0].status == "paid"
    moves = desk.rows("clients", "balance", CLIENT_INN)
    assert [(m["event"], m["amount"], m["ref"]) for m in moves] == [
        ("balance_credited", "500.00", over.number)
    ]
    statuses = sorted(r["status"] for r in desk.rows("payments", "list"))
    assert statuses == ["applied", "applied", "held"]


def test_period_report_in_xlsx_and_csv_adds_up_to_the_payments_in_the_database(
    rt: Runtime, desk: Desk
) -> None:
    import openpyxl

    client(rt)
    paid, held_for = invoiced(rt, inn="500100732259"), invoiced(rt)
    desk.ok("invoices", "pay", paid.number, "--date", "26.11.2026")
    account = rt.settings.service.account
    file = desk.workdir / "kl_to_1c.txt"
    docs = [
        incoming("41", amount="100.00", purpose=purpose(held_for.number), our_account=account),
        incoming("42", amount="700.00", purpose="Аванс", our_account=account),
    ]
    file.write_bytes(statement_bytes(docs, our_account=account))
    desk("payments", "import", str(file))
    with Session(rt.engine) as s:
        in_db = sum((p.amount for p in s.exec(select(Payment))), Decimal(0))
        assert len(s.exec(select(Payment)).all()) == 3

    target = desk.workdir / "nov.xlsx"
    said = desk.ok("report", "--from", "01.11.2026", "--to", "30.11.2026", "--out", str(target))
    assert f"3 payments ({in_db} RUB)" in said
    book = openpyxl.load_workbook(target)
    assert book.sheetnames == ["Счета", "Платежи"]
    pay_rows = list(book["Платежи"].iter_rows(values_only=True))
    header, body, total = pay_rows[0], pay_rows[1:-1], pay_rows[-1]
    assert header[:5] == ("Дата", "Номер п/п", "ИНН плательщика", "Плательщик", "Сумма")
    assert sum(Decimal(str(r[4])) for r in body) == in_db
    assert total[0] == "Итого" and Decimal(str(total[4])) == in_db
    assert sorted(str(r[1] or "") for r in body) == ["", "41", "42"]
    assert {r[5] for r in body} == {"зачтён по счёту", "ждёт бухгалтера", "на баланс клиента"}
    inv_rows = list(book["Счета"].iter_rows(values_only=True))[1:-1]
    by_number = {r[0]: r for r in inv_rows}
    assert by_number[paid.number][6] == "оплачен"
    assert Decimal(str(by_number[paid.number][7])) == paid.total
    assert by_number[held_for.number][6] == "выставлен"

    desk.ok(
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--format",
        "csv",
        "--out",
        str(desk.workdir / "nov.csv"),
    )
    csv_payments = (desk.workdir / "nov-payments.csv").read_text(encoding="utf-8-sig")
    last = csv_payments.strip().splitlines()[-1].split(";")
    assert last[0] == "Итого" and Decimal(last[4].replace(",", ".")) == in_db
    assert (
        (desk.workdir / "nov-invoices.csv")
        .read_text(encoding="utf-8-sig")
        .startswith("Номер счёта;Дата")
    )
    assert "is before --from" in desk.refused(
        "report", "--from", "30.11.2026", "--to", "01.11.2026"
    )
    assert "in the future" in desk.refused("report", "--from", "01.11.2026", "--to", "01.01.2031")


def test_import_dry_run_says_what_would_happen_and_changes_nothing(rt: Runtime, desk: Desk) -> None:
    client(rt)
    paid, other = invoiced(rt, inn="500100732259"), invoiced(rt)
    account = rt.settings.service.account
    file = desk.workdir / "kl_to_1c.txt"
    docs = [
        incoming(
            "1",
            amount=str(paid.total),
            purpose=purpose(paid.number),
            payer_inn="500100732259",
            our_account=account,
        ),
        incoming("2", amount="100.00", purpose=purpose(other.number), our_account=account),
        incoming("3", amount="700.00", purpose="Аванс", our_account=account),
    ]
    file.write_bytes(statement_bytes(docs, our_account=account))
    before = snapshot(rt)
    code, out, _ = desk("payments", "import", "--dry-run", str(file))
    assert code == 3
    assert f"would be applied invoice {paid.number}" in out
    assert "would be held" in out and "would be credited" in out
    assert "applied 1, held 1, unreadable 0, credited 1" in out
    assert "dry run: nothing was changed" in out
    assert snapshot(rt) == before

    code, out, _ = desk("payments", "import", str(file))
    assert code == 3 and "applied 1, held 1, unreadable 0, credited 1" in out
    assert row(rt, paid.number)[0].status == "paid"
    assert snapshot(rt) != before


def test_a_long_import_draws_a_progress_bar_only_on_a_terminal(rt: Runtime, desk: Desk) -> None:
    account = rt.settings.service.account
    file = desk.workdir / "kl_to_1c.txt"
    docs = [
        incoming(
            str(n), amount="10.00", purpose="Аванс", payer_inn="7707083893", our_account=account
        )
        for n in range(1, 251)
    ]
    file.write_bytes(statement_bytes(docs, our_account=account))
    code, _, err = desk("payments", "import", "--dry-run", str(file))
    assert code == 3 and "matching payments" not in err  # piped: no bar

    main, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "mailbot", "payments", "import", "--dry-run", str(file)],
        cwd=desk.workdir,
        env={**os.environ, **desk.env, "COLUMNS": "120"},
        stdout=subprocess.DEVNULL,
        stderr=follower,
    ) as proc:
        os.close(follower)
        drawn = b""
        while True:  # read as it draws, so a full terminal buffer never blocks it
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        proc.wait(timeout=120)
    os.close(main)
    assert proc.returncode == 3
    assert b"matching payments" in drawn
