"""Property: whatever the accountant and the bank do, no kopeck is lost or invented.

For any sequence of pay / import / apply / reject / reverse / cancel / pay-from-balance /
new order, every kopeck received (payments applied, credited or held) is in exactly one place
— an invoice (what paid it: money or the balance), a client's balance, or held — and no
balance is ever negative; each balance is also the sum of its movements.

In-process on SQLite (a migrated template file copied per example), so it stays fast.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from mailbot.billing.corrections import cancel_invoice, pay_from_balance, reverse_payment
from mailbot.billing.invoices import create_invoice, opening_event
from mailbot.billing.ledger import movements
from mailbot.billing.payments import apply_held, import_file, pay_invoice, reject_held
from mailbot.config import load_settings
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.db import make_engine, transaction
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import Application, Client, Invoice, Payment
from mailbot.storage.queries import next_number
from mailbot.workflow import must, transition
from tests.conftest import REPO, FakeClock
from tests.fixtures.statements import CLIENT_INN, CLIENT_NAME, OUR_ACCOUNT, incoming
from tests.fixtures.statements import statement_bytes as statement

OPS = st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 3), st.sampled_from(["-100.00", "0", "250.00"])),
    st.tuples(
        st.just("import"),
        st.integers(0, 3),
        st.sampled_from(["exact", "over", "short", "advance", "stranger", "unreadable"]),
    ),
    st.tuples(st.just("apply"), st.integers(0, 5), st.sampled_from(["", "0", "1"])),
    st.tuples(st.just("reject"), st.integers(0, 5), st.just("")),
    st.tuples(st.just("reverse"), st.integers(0, 5), st.just("")),
    st.tuples(st.just("cancel"), st.integers(0, 3), st.just("")),
    st.tuples(st.just("from_balance"), st.integers(0, 3), st.just("")),
    st.tuples(st.just("order"), st.just(0), st.just("")),
)


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "template.sqlite"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()
        yield path


@dataclasses.dataclass
class World:
    rt: Runtime
    client_id: int
    invoices: list[str]
    docs: int = 0

    def order(self) -> None:
        """A new order of the client: its invoice takes what the balance holds first."""
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            seq = next_number(s, "application", now.year)
            app = Application(
                number=f"EAN-{now.year}-{seq:06d}",
                kind="order",
                state="accepted",
                client_id=self.client_id,
                sender="buyer@client.test",
                form={"inn": CLIENT_INN, "kpp": "773001001", "org_name": CLIENT_NAME},
                created_at=now,
                updated_at=now,
            )
            s.add(app)
            s.flush()
            inv = create_invoice(
                s, app, count=2, new_client=False, settings=self.rt.settings, now=now
            )
            must(transition(s, app, opening_event(inv), now=now))
            self.invoices.append(inv.number)

    def invoice(self, i: int) -> Invoice:
        with Session(self.rt.engine) as s:
            number = self.invoices[i % len(self.invoices)]
            return s.exec(select(Invoice).where(Invoice.number == number)).one()

    def payment_id(self, k: int) -> int:
        with Session(self.rt.engine) as s:
            ids = [i for i in s.exec(select(Payment.id).order_by(col(Payment.id))) if i]
        return ids[k % len(ids)] if ids else 999

    def run(self, op: str, n: int, arg: str) -> str:
        """Do one thing; return what became of it (for hypothesis' statistics)."""
        rt = self.rt
        if op == "order":
            self.order()
            return "order"
        if op == "import":
            return f"import {arg}: " + self.import_one(self.invoice(n), arg)
        ok = {
            "pay": lambda: self.pay(n, arg),
            "apply": lambda: (
                apply_held(
                    rt,
                    self.payment_id(n),
                    invoice_number=self.invoice(int(arg)).number if arg else None,
                ).ok
            ),
            "reject": lambda: reject_held(rt, self.payment_id(n), reason="not ours").ok,
            "reverse": lambda: reverse_payment(rt, self.payment_id(n), reason="mistake").ok,
            "cancel": lambda: cancel_invoice(rt, self.invoice(n).number, reason="wrong").ok,
            "from_balance": lambda: pay_from_balance(rt, self.invoice(n).number).ok,
        }[op]()
        return f"{op}: {'done' if ok else 'refused'}"

    def pay(self, n: int, arg: str) -> bool:
        inv = self.invoice(n)
        amount = inv.total - inv.from_balance + Decimal(arg)
        reason = "typed" if arg != "0" else ""
        return pay_invoice(self.rt, inv.number, amount=amount, force_reason=reason).ok

    def import_one(self, inv: Invoice, kind: str) -> str:
        self.docs += 1
        due = inv.total - inv.from_balance
        text = f"Оплата по счёту № {inv.number}"
        doc = {
            "exact": incoming(str(self.docs), amount=str(due), purpose=text),
            "over": incoming(str(self.docs), amount=str(due + Decimal("300.00")), purpose=text),
            "short": incoming(str(self.docs), amount=str(due - Decimal("1.00")), purpose=text),
            "advance": incoming(str(self.docs), amount="450.00", purpose="Аванс"),
            "stranger": incoming(
                str(self.docs), amount="70.00", purpose="Аванс", payer_inn="7707083893"
            ),
            "unreadable": incoming(str(self.docs), amount="abc", purpose=text),
        }[kind]
        summary = import_file(self.rt, statement([doc]))
        return ",".join(o.verdict for o in summary.outcomes)


def check(rt: Runtime) -> None:
    """Every kopeck received is on an invoice, on a balance or held; balances ≥ 0."""
    with Session(rt.engine) as s:
        pays = s.exec(select(Payment)).all()
        invoices = {i.id: i for i in s.exec(select(Invoice))}
        clients = s.exec(select(Client)).all()
        received = sum(
            (p.amount for p in pays if p.status in ("applied", "credited", "held")), Decimal(0)
        )
        held = sum((p.amount for p in pays if p.status == "held"), Decimal(0))
        applied: dict[int, Decimal] = {}
        for p in pays:
            if p.status == "applied":
                assert p.invoice_id is not None
                assert p.invoice_id not in applied, "an invoice paid twice"
                applied[p.invoice_id] = p.amount
        on_invoices = Decimal(0)
        for inv in invoices.values():
            if inv.status == "cancelled":
                assert inv.id not in applied, "a cancelled invoice was paid"
                continue
            money = applied.get(inv.id or 0, Decimal(0))
            assert (inv.status == "paid") == (inv.id in applied or inv.from_balance == inv.total), (
                inv
            )
            on_invoices += inv.from_balance + min(money, inv.total - inv.from_balance)
        balances = Decimal(0)
        for c in clients:
            assert c.balance >= 0
            moves = movements(s, c.id or 0)
            assert sum((m.amount for m in moves), Decimal(0)) == c.balance
            assert all(m.balance >= 0 for m in moves)
            balances += c.balance
    assert received == held + on_invoices + balances


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=4, max_size=20))
@example(ops=[("import", 0, "advance"), ("reverse", 0, "")])  # a credit taken back
@example(ops=[("import", 0, "over"), ("apply", 0, ""), ("reverse", 0, "")])  # its surplus too
@example(ops=[("import", 0, "advance"), ("order", 0, ""), ("reverse", 0, "")])  # already spent
@example(
    ops=[("import", 0, "advance"), ("from_balance", 1, ""), ("cancel", 1, ""), ("reverse", 0, "")]
)
def test_no_kopeck_is_lost_or_invented(template: Path, ops: list[tuple[str, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "money.sqlite"
        shutil.copy(template, db)
        env = {"MAILBOT_DATABASE_URL": f"sqlite:///{db}", "MAILBOT_SECRET_KEY": ""}
        shutil.copy(REPO / "config.toml", Path(d) / "config.toml")
        cfg = load_settings(Path(d) / "config.toml", env=env)
        service = dataclasses.replace(cfg.service, account=OUR_ACCOUNT)
        rt = build_runtime(dataclasses.replace(cfg, service=service))
        rt.clock = FakeClock()
        try:
            world = World(rt, _client(rt), [])
            for _ in range(3):
                world.order()
            for op in ops:
                event(world.run(*op))
                check(rt)
        finally:
            rt.engine.dispose()


def _client(rt: Runtime) -> int:
    with transaction(rt.engine) as s:
        c = Client(
            inn=CLIENT_INN,
            kpp="773001001",
            org_name=CLIENT_NAME,
            email="buyer@client.test",
            login=CLIENT_INN,
            created_at=rt.clock(),
        )
        s.add(c)
        s.flush()
        assert c.id is not None
        return c.id
