"""Crash matrix: the daemon on real Dovecot + SMTP, SIGKILLed at every named step, restarted.

Each test plays one mixed workload (see tests/proof/crash_harness.py) twice or more on
fresh sites and databases of one kind: once without a crash, then with `mailbot` processes
killed by MAILBOT_CRASH_AT=step@N at every step of mailbot.crashpoints.STEPS and restarted
until the site is idle. The applications and their states, invoices (numbers, amounts),
payments, codes per application, clients, tickets, the outbox and the set of mails
delivered into Dovecot must equal the run without crashes: nothing lost, no duplicate
reply, invoice or code. A mail may arrive twice only for a kill between its delivery and
the commit that marks it sent (after_deliver), with the same Message-ID.

Default (CI): 40 mails, every step killed once per database, the kills chained through one
play. `-m slow`: 500 mails, one play per step with kills at several counts N; its figures
(messages, kills, processes, seconds per step) are written to the test's output (`-rP`).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot import crashpoints
from mailbot.billing.matching import ImportSummary, Outcome
from mailbot.config import load_settings
from mailbot.crashpoints import STEPS, parse
from mailbot.handlers.statements import VERDICT_TEXT
from mailbot.mail.intake.base import RawMessage
from mailbot.mail.render import make_env, render_body
from mailbot.pipeline import archive_one, process_pending
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Client, ClientAddress, InboundMessage, Invoice
from tests.conftest import REPO, DatabaseFactory
from tests.mailstack import MailStack
from tests.proof.crash_harness import Kill, Schedule, Site, play
from tests.proof.crash_state import EndState, differences, end_state
from tests.proof.crash_workload import (
    CATCH,
    INFO,
    KPP,
    SeedClient,
    Workload,
    build_workload,
    company_inn,
    letter,
    products,
    with_files,
)

# Every step killed once: each per-message step in its own part of phase A (so the kill
# finds work whatever order a pass runs its stages in), the payment and issuance steps
# chained through phase B (they follow one another in every order).
PER_MESSAGE = ("after_fetch", "after_archive", "after_claim", "after_process", "after_move",
               "after_acknowledge", "after_deliver")  # fmt: skip
ISSUANCE = ("during_allocation", "after_allocate", "after_issue")
CHAIN = Schedule(
    rounds=tuple((Kill(step, 2),) for step in PER_MESSAGE),
    pay_cli=1,
    import_cli=True,
    payments=(
        Kill("after_fetch", 2),
        Kill("after_process", 2),  # a mailed statement's payments committed
        Kill("during_allocation", 2),
        Kill("after_allocate", 2),
        Kill("after_issue", 2),
        Kill("after_deliver", 4),
    ),
)


@functools.cache
def workload(n: int) -> Workload:
    """Built once per process: the reference and the crashed plays get the same bytes."""
    return build_workload(n)


@pytest.fixture
def stack(mailstack_factory: Callable[..., MailStack]) -> MailStack:
    return mailstack_factory(users=(INFO, CATCH), catchall=CATCH)


@pytest.fixture
def new_site(
    tmp_path: Path, stack: MailStack, db_factory: DatabaseFactory
) -> Iterator[Callable[[str], Site]]:
    """Return make(name) → a fresh site with a database of this test's kind."""
    made: list[Site] = []

    def make(name: str) -> Site:
        site = Site(tmp_path / name, stack, db_factory())
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


def reference_play(new_site: Callable[[str], Site], work: Workload, schedule: Schedule) -> EndState:
    site = new_site("reference")
    outcome = play(site, work, schedule.quiet())
    state = end_state(site)
    _assert_meaningful(state, work, site)
    assert outcome.kills == []
    return state


def _assert_meaningful(state: EndState, work: Workload, site: Site) -> None:
    """The run without crashes did every kind of work the matrix is meant to guard."""
    received = site.outcome.received
    assert received > len(work.mails)  # phase B mailed statements and corrections
    assert state.mailbox == {"inbox": 0, "-done": received, "-quarantine": 0}
    assert len(state.inbound) == received
    assert {m[2] for m in state.inbound} == {"processed"}, "every message processed"
    assert set(state.delivered.values()) == {1}, "each mail delivered once"
    assert sum(state.delivered.values()) == sum(o[3] == "sent" for o in state.outbox)
    kinds = Counter(k for _, k, _, _ in state.delivered)
    for kind in ("invoice", "problems", "issued", "instructions", "ticket_ack",
                 "statement_report"):  # fmt: skip
        assert kinds[kind], f"no {kind} mail in the reference run: {kinds}"
    states = Counter(a[2] for a in state.applications)
    assert states["issued"] and states["invoiced"] and states["needs_fix"], states
    assert {p[3] for p in state.payments} >= {"applied", "held"}
    assert state.codes, "codes were issued"
    if work.kinds["support"] > 20:  # all from one client: the reply limit (20 an hour) holds some
        assert any(o[3] == "suppressed" for o in state.outbox), "no reply held by the limit"


def copies(state: EndState) -> int:
    """Mails that arrived more than once (same Message-ID)."""
    return sum(n - 1 for n in state.delivered.values())


def assert_same(reference: EndState, crashed: EndState, site: Site) -> None:
    deliver_kills = sum(k.startswith("after_deliver@") for k in site.outcome.kills)
    problems = differences(reference, crashed, deliver_kills=deliver_kills)
    assert not problems, f"kills {site.outcome.kills}:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------- default
@pytest.mark.mail
@pytest.mark.timeout(300)
def test_kills_at_every_step_end_as_the_run_without_crashes(
    new_site: Callable[[str], Site],
) -> None:
    work = workload(40)
    reference = reference_play(new_site, work, CHAIN)

    site = new_site("crashed")
    outcome = play(site, work, CHAIN)

    crashed = end_state(site)

    sys.stdout.write(f"crashed: {outcome.line()}, {copies(crashed)} second copies\n")
    assert len(outcome.kills) == CHAIN.kills  # every scheduled kill landed, none spared
    assert {parse(k).popitem()[0] for k in outcome.kills} == set(STEPS)
    assert_same(reference, crashed, site)


# ---------------------------------------------------------------------------- slow
SLOW_ROUNDS = 3  # phase A's 500 mails arrive in three parts of ~167


def slow_schedule(step: str) -> Schedule:
    """Several kills at different counts, where the step happens in a 500-mail play."""
    quiet: tuple[tuple[Kill, ...], ...] = ((),) * SLOW_ROUNDS
    if step == "after_payment":
        return Schedule(rounds=quiet, pay_cli=3, import_cli=True)
    if step in ISSUANCE:  # phase A issues the orders paid from a balance; B the paid rest
        return Schedule(
            rounds=((Kill(step, 1), Kill(step, 3)), (Kill(step, 2),), ()),
            payments=tuple(Kill(step, n) for n in (1, 7, 25)),
        )
    assert step in PER_MESSAGE, step
    return Schedule(
        rounds=((Kill(step, 1), Kill(step, 40)), (Kill(step, 97),), (Kill(step, 13),)),
        payments=tuple(Kill(step, n) for n in (1, 5)),
    )


@pytest.mark.slow
@pytest.mark.mail
@pytest.mark.timeout(4 * 3600)
def test_500_mails_killed_at_every_step_several_times_end_as_without_crashes(
    new_site: Callable[[str], Site], db_factory: DatabaseFactory
) -> None:
    started = time.monotonic()
    work = workload(500)
    reference = reference_play(new_site, work, slow_schedule(STEPS[0]))
    report = [f"crash matrix on {db_factory.kind}: {len(work.mails)} mails in phase A "
              f"({dict(work.kinds)}), reference {time.monotonic() - started:.0f} s"]  # fmt: skip
    failures = []
    kills = 0
    for step in STEPS:
        site = new_site(f"crashed-{step}")
        outcome = play(site, work, slow_schedule(step))  # each kill must land, or it raises
        kills += len(outcome.kills)
        crashed = end_state(site)
        report.append(
            f"  {step}: {outcome.line()}, {copies(crashed)} second copies "
            f"({', '.join(outcome.kills)})"
        )
        deliver_kills = sum(k.startswith("after_deliver@") for k in outcome.kills)
        problems = differences(reference, crashed, deliver_kills=deliver_kills)
        failures += [f"{step}: {p}" for p in problems]
    report.append(f"total: {kills} kills, {time.monotonic() - started:.0f} s")
    sys.stdout.write("\n".join(report) + "\n")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------- the tools
def test_the_crash_switch_kills_at_the_nth_time_a_named_step_is_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kills: list[str] = []
    monkeypatch.setattr(crashpoints, "_reached", {})
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append(f"{pid}:{sig}"))
    monkeypatch.setenv(crashpoints.VARIABLE, "after_process@3, after_deliver")
    for _ in range(2):
        crashpoints.crash_point("after_process")
        crashpoints.crash_point("after_archive")
    assert kills == []
    crashpoints.crash_point("after_process")
    assert kills == [f"{os.getpid()}:{signal.SIGKILL}"]
    crashpoints.crash_point("after_deliver")  # the old form: the first time
    assert len(kills) == 2
    monkeypatch.delenv(crashpoints.VARIABLE)
    crashpoints.crash_point("after_deliver")
    assert len(kills) == 2
    assert crashpoints.parse("a@1,b") == {"a": 1, "b": 1}
    for bad in ("a@0", "a@", "@2", "a@x", "a@²"):
        with pytest.raises(ValueError, match="STEP@N"):
            crashpoints.parse(bad)


def _state(**changes: object) -> EndState:
    base = EndState(
        applications=[("EAN-2026-000001", "registration", "issued", "a@x", "0")],
        invoices=[("2026-00001", "EAN-2026-000001", "5500.00", "0.00", "paid")],
        codes={"EAN-2026-000001": ["4601234000001"]},
        payments=[("2026-00001", "5500.00", "cli", "applied", "", "")],
        clients=[],
        tickets=[],
        inbound=[("<1@x>", "application", "processed", "True", "0")],
        outbox=[
            ("<i@us>", "invoice", "a@x", "sent", "s"),
            ("<c@us>", "issued", "a@x", "sent", "s"),
        ],
        mailbox={"inbox": 0, "-done": 1, "-quarantine": 0},
        delivered=Counter(
            {("<i@us>", "invoice", "a@x", "<1@x>"): 1, ("<c@us>", "issued", "a@x", "<1@x>"): 1}
        ),
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_the_comparison_finds_a_lost_mail_a_duplicate_and_a_code_handed_out_twice() -> None:
    reference = _state()
    assert differences(reference, _state(), deliver_kills=0) == []
    twice = Counter(reference.delivered)
    twice[("<i@us>", "invoice", "a@x", "<1@x>")] += 1
    assert differences(reference, _state(delivered=twice), deliver_kills=1) == []
    assert "duplicate" in " ".join(differences(reference, _state(delivered=twice), deliver_kills=0))
    lost = Counter({k: n for k, n in reference.delivered.items() if k[1] != "issued"})
    assert (
        "delivered mails differ"
        in differences(reference, _state(delivered=lost), deliver_kills=3)[0]
    )
    other_id = Counter(reference.delivered) + Counter({("<j@us>", "invoice", "a@x", "<1@x>"): 1})
    assert differences(reference, _state(delivered=other_id), deliver_kills=1)
    # end_state records a code handed out twice under its own key; differences reports it
    twice_coded = {**reference.codes, "handed out twice": ["4601234000001"]}
    found = " ".join(differences(reference, _state(codes=twice_coded), deliver_kills=0))
    assert "codes differ" in found and "handed out twice: ['4601234000001']" in found
    assert differences(
        reference, _state(mailbox={"inbox": 1, "-done": 0, "-quarantine": 0}), deliver_kills=0
    )


# ---------------------------------------------------------------------------- found by it
def test_statement_report_lists_each_payment_on_its_own_line_within_the_smtp_limit() -> None:
    """A 6-payment statement once gave one 1,133-octet line: SMTP refused the report (500)."""
    service = load_settings(REPO / "config.toml", env={}).service
    outcomes = tuple(
        Outcome(
            line=i,
            number=str(1000 + i),
            amount=Decimal("5500.00"),
            payer_inn="7700000104",
            verdict=("applied", "held")[i % 2],
            reason="partial payment",
            invoice=f"2026-{i:05d}",
        )
        for i in range(40)
    )
    files = [("kl_to_1c.txt", ImportSummary(outcomes, ("odd line",)))]
    context = {"files": files, "verdicts": VERDICT_TEXT, "service": service}
    for template in ("statement_report", "statement_unverified"):
        text = render_body(make_env(), template, context)
        lines = text.splitlines()
        assert max(len(line.encode()) for line in lines) <= 998, template
        payment_lines = [line for line in lines if line.startswith("  – п/п № ")]
        assert len(payment_lines) == (40 if template == "statement_report" else 20), template
        assert not any("п/п" in line for line in lines if line not in payment_lines)


def test_an_order_from_a_registered_client_is_invoiced_on_either_database(rt: Runtime) -> None:
    """On PostgreSQL the order's requisites query (`form != {}` on a json column) raised."""
    client = SeedClient("client@client.example.test", company_inn(1, region="78"), Decimal(0))
    with transaction(rt.engine) as s:
        row = Client(
            inn=client.inn,
            kpp=KPP,
            org_name="ООО «Клиент»",
            email=client.email,
            login=client.inn,
            created_at=rt.clock(),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        s.add(ClientAddress(client_id=row.id, address=client.email))
    msg = letter(client.email, "Заказ", "Новые товары во вложении.", "<order-1@client.test>")
    raw = with_files(msg, None, products(3))
    archive_one(rt, RawMessage(key="test:order", data=raw, size=len(raw)))
    assert process_pending(rt) == 1
    with Session(rt.engine) as s:
        inbound = s.exec(select(InboundMessage)).one()
        app = s.exec(select(Application)).one()
        invoice = s.exec(select(Invoice)).one()
    assert (inbound.status, inbound.last_error) == ("processed", "")
    assert (app.kind, app.state, app.form["inn"]) == ("order", "invoiced", client.inn)
    assert invoice.total == Decimal("1500.00")  # three codes, no registration fee
