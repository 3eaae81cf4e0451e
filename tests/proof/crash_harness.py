"""The crash matrix's harness: a mailbot site on real Dovecot + SMTP, plays, kills.

A *play* takes one workload (tests/proof/crash_workload.py) through one fresh site (its
own IMAP folder and database) in two phases, each a series of `mailbot` processes:

  A. the mixed mail arrives in parts; after each part `mailbot run --once` until idle;
  B. payments: `mailbot invoices pay`, `mailbot payments import FILE`, and statements and
     corrected files by mail; then `run --once` until idle (the paid are issued).

A `Kill` names a step and a count (MAILBOT_CRASH_AT=step@N): the process it is given to
must die by SIGKILL there; the harness then runs clean passes until the site is idle
(nothing archived but unprocessed, leased, unsent, paid-but-unissued or left in the
mailbox). Processes are forked from a warm interpreter (tests/proof/mailbot_process.py).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot.cli.payments import NEEDS_ACCOUNTANT
from mailbot.crashpoints import VARIABLE
from mailbot.storage.db import make_engine
from mailbot.storage.models import (
    Application,
    Client,
    ClientAddress,
    InboundMessage,
    Invoice,
    OutboxMessage,
)
from tests.conftest import REPO
from tests.e2e.test_mail_edge import set_key
from tests.fixtures.statements import OUR_ACCOUNT
from tests.mailstack import MailStack
from tests.proof import mailbot_process
from tests.proof.crash_workload import (
    ACCOUNTANTS,
    AUTHSERV,
    INFO,
    KPP,
    Party,
    SeedClient,
    Workload,
    correction_mail,
    statement_file,
    statement_mail,
)

RUN_TIMEOUT = 900.0  # one `mailbot` process; the slow variant's first pass takes minutes
FINISH_RUNS = 3  # clean passes allowed to reach idle after the last kill


@dataclass(frozen=True)
class Kill:
    """Kill the next `mailbot` process at the `count`-th time it reaches `step`."""

    step: str
    count: int = 1

    @property
    def spec(self) -> str:
        return f"{self.step}@{self.count}"


@dataclass
class Outcome:
    """What one play did: the kills that landed and the processes it ran."""

    kills: list[str] = field(default_factory=list)
    processes: int = 0
    received: int = 0  # mails put into the mailbox
    extra_passes: int = 0  # clean passes beyond the first that reaching idle took
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{len(self.kills)} kills, {self.processes} processes, {self.received} mails "
            f"received, {self.extra_passes} extra passes, {self.seconds:.0f} s"
        )


class Site:
    """One mailbot installation reading its own folder of `stack` and writing `db_url`."""

    def __init__(self, root: Path, stack: MailStack, db_url: str) -> None:
        self.dir, self.stack, self.db_url = root, stack, db_url
        self.box = f"m{uuid.uuid4().hex[:10]}"
        root.mkdir(parents=True)
        text = (REPO / "config.toml").read_text("utf-8")
        for section, key, value in (
            ("service", "account", f'"{OUR_ACCOUNT}"'),  # the account statements pay into
            ("intake", "kind", '"imap"'),
            ("imap", "host", f'"{stack.host}"'),
            ("imap", "port", str(stack.imap_port)),
            ("imap", "security", '"none"'),
            ("imap", "mailbox", f'"{self.box}"'),
            ("imap", "processed_folder", f'"{self.box}-done"'),
            ("imap", "quarantine_folder", f'"{self.box}-quarantine"'),
            ("outbox", "kind", '"smtp"'),
            ("smtp", "host", f'"{stack.host}"'),
            ("smtp", "port", str(stack.smtp_port)),
            ("smtp", "security", '"none"'),
            ("smtp", "user", '""'),
            ("payments", "accountants", "[" + ", ".join(f'"{a}"' for a in ACCOUNTANTS) + "]"),
            ("payments", "authserv_id", f'"{AUTHSERV}"'),
        ):
            text = set_key(text, section, key, value)
        (root / "config.toml").write_text(text, "utf-8")
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in (VARIABLE, "MAILBOT_CONFIG")},
            "MAILBOT_IMAP_PASSWORD": stack.password,
            "MAILBOT_DATABASE_URL": db_url,
        }
        with stack.imap(INFO) as c:
            c.create_folder(self.box)
        self.engine: Engine = make_engine(db_url)
        self.outcome = Outcome()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ processes
    def mailbot(self, *args: str, kill: Kill | None = None) -> str:
        """Run `mailbot ARGS`, return its output; with `kill` it must die by SIGKILL there."""
        env = {**self.env, VARIABLE: kill.spec} if kill else self.env
        self.outcome.processes += 1
        output = self.dir / f"process-{self.outcome.processes:03d}.log"
        code = mailbot_process.run(self.dir, env, args, output, RUN_TIMEOUT)
        text = output.read_text("utf-8", "replace")
        if kill is not None and code == -signal.SIGKILL:
            self.outcome.kills.append(kill.spec)
            return text
        needs_accountant = args[:2] == ("payments", "import") and code == NEEDS_ACCOUNTANT
        if (code != 0 and not needs_accountant) or kill is not None:
            how = "was not killed" if code == 0 else f"exited {code}"
            raise AssertionError(
                f"mailbot {' '.join(args)} ({kill.spec if kill else 'no kill'}) {how}:\n"
                f"{text[-4000:]}"
            )
        return text

    def receive(self, mails: Iterable[bytes]) -> None:
        with self.stack.imap(INFO) as c:
            for raw in mails:
                c.append(self.box, raw)
                self.outcome.received += 1

    def seed(self, clients: Sequence[SeedClient]) -> None:
        """Register the clients directly, as an earlier issuance would have."""
        now = datetime.now(UTC)
        with Session(self.engine) as s:
            for c in clients:
                row = Client(
                    inn=c.inn,
                    kpp=KPP,
                    org_name=f"ООО «Клиент {c.inn}»",
                    email=c.email,
                    login=f"{c.inn}",
                    password_hash="not-a-real-hash",
                    balance=c.balance,
                    created_at=now,
                )
                s.add(row)
                s.flush()
                assert row.id is not None
                s.add(ClientAddress(client_id=row.id, address=c.email))
            s.commit()

    def idle_reason(self) -> str:
        """Why a pass still has work here; "" when the site is idle."""
        with Session(self.engine) as s:
            inbound = list(s.exec(select(InboundMessage)))
            busy = [m for m in inbound if not m.acknowledged or m.status not in _DONE]
            if busy:
                return f"{len(busy)} inbound not done/acknowledged, e.g. {_row(busy[0])}"
            pending = s.exec(select(OutboxMessage).where(OutboxMessage.status == "pending")).all()
            if pending:
                return f"{len(pending)} outgoing mails pending, e.g. {_row(pending[0])}"
            paid = s.exec(select(Application).where(Application.state == "paid")).all()
            if paid:
                return f"{len(paid)} paid applications not issued, e.g. {_row(paid[0])}"
        left = self.count(self.box)
        return f"{left} mails left in the mailbox" if left else ""

    def count(self, folder: str) -> int:
        """How many mails our mailbox holds in `folder` (0 when there is no such folder)."""
        with self.stack.imap(INFO) as c:
            if not c.folder_exists(folder):
                return 0
            c.select_folder(folder, readonly=True)
            return len(c.search("ALL"))

    def run_until_idle(self, kills: Sequence[Kill] = ()) -> None:
        """One `run --once` per kill (each must die there), then clean passes until idle."""
        for kill in kills:
            self.mailbot("run", "--once", kill=kill)
        for attempt in range(FINISH_RUNS):
            self.mailbot("run", "--once")
            if not (why := self.idle_reason()):
                self.outcome.extra_passes += attempt
                return
        raise AssertionError(f"not idle after {FINISH_RUNS} clean passes: {why}")

    # ------------------------------------------------------------------ phase B input
    def invoices_by_payer(self) -> dict[str, list[tuple[str, Decimal]]]:
        """Sender → its open invoices (number, amount due), oldest first."""
        out: dict[str, list[tuple[str, Decimal]]] = {}
        with Session(self.engine) as s:
            rows = s.exec(
                select(
                    col(Application.sender),
                    col(Invoice.number),
                    col(Invoice.total),
                    col(Invoice.from_balance),
                )
                .join(Invoice, col(Invoice.application_id) == col(Application.id))
                .where(Invoice.status == "issued")
                .order_by(col(Invoice.id))
            )
            for sender, number, total, from_balance in rows:
                out.setdefault(sender, []).append((number, total - from_balance))
        return out


_DONE = ("processed", "duplicate")


def _row(obj: Any) -> str:
    keys = ("id", "number", "kind", "status", "state", "lease_owner", "attempts", "last_error")
    return repr({k: getattr(obj, k) for k in keys if hasattr(obj, k)})[-1500:]


@dataclass(frozen=True)
class Schedule:
    """The kills of one play, by where they happen.

    Phase A's mail arrives in `len(rounds)` parts; each part is followed by one process per
    kill of its round (each must die there), then clean passes until the site is idle. So
    every kill finds fresh work whatever order a pass runs its stages in, and the run
    without kills (`quiet()`) receives the mail in the same parts.
    """

    rounds: tuple[tuple[Kill, ...], ...] = ((),)
    pay_cli: int = 0  # `invoices pay` processes killed at after_payment (one each)
    import_cli: bool = False  # the `payments import` process killed at after_payment
    payments: tuple[Kill, ...] = ()  # phase B passes

    @property
    def kills(self) -> int:
        rounds = sum(len(r) for r in self.rounds)
        return rounds + self.pay_cli + self.import_cli + len(self.payments)

    def quiet(self) -> Schedule:
        """The same rounds without a kill: the reference."""
        return Schedule(rounds=tuple(() for _ in self.rounds))


def play(site: Site, work: Workload, schedule: Schedule) -> Outcome:
    """Both phases of `work` on `site`, killed as `schedule` says; returns what happened."""
    started = time.monotonic()
    site.seed(work.clients)
    parts = len(schedule.rounds)
    for k, kills in enumerate(schedule.rounds):
        site.receive(work.mails[k * len(work.mails) // parts : (k + 1) * len(work.mails) // parts])
        site.run_until_idle(kills)
    _pay(site, work, schedule)
    site.run_until_idle(schedule.payments)
    site.outcome.seconds = time.monotonic() - started
    return site.outcome


def _pay(site: Site, work: Workload, schedule: Schedule) -> None:
    due = site.invoices_by_payer()
    by_route: dict[str, list[tuple[Party, str, Decimal]]] = {}
    for party in work.payers:
        number, amount = due[party.sender][0]
        by_route.setdefault(party.route, []).append((party, number, amount))
    for i, (_, number, _amount) in enumerate(by_route.get("cli", [])):
        if i < schedule.pay_cli:
            site.mailbot("invoices", "pay", number, kill=Kill("after_payment"))
        out = site.mailbot("invoices", "pay", number)
        assert "paid" in out, out
    imported = by_route.get("import", [])
    if imported:
        path = site.dir / "statement.txt"
        path.write_bytes(statement_file(imported, first=1))
        if schedule.import_cli:
            site.mailbot("payments", "import", str(path), kill=Kill("after_payment"))
        site.mailbot("payments", "import", str(path))
    mails: list[bytes] = []
    mailed = by_route.get("mail", [])
    for k in range(0, len(mailed), work.per_statement):
        chunk = mailed[k : k + work.per_statement]
        data = statement_file(chunk, first=1000 + k)
        mails.append(
            statement_mail(
                data,
                sender=ACCOUNTANTS[len(mails) % len(ACCOUNTANTS)],
                number=len(mails) + 1,
                authenticated=True,
            )
        )
    unverified = by_route.get("unverified", [])
    if unverified:
        data = statement_file(unverified, first=5000)
        mails.append(
            statement_mail(data, sender=ACCOUNTANTS[0], number=len(mails) + 1, authenticated=False)
        )
    mails += [correction_mail(fix, n) for n, fix in enumerate(work.fixes)]
    site.receive(mails)
