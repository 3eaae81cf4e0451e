"""The shunt on the `rt` runtime (SQLite and PostgreSQL): attempts counted at claim, failed
issuance, unsendable mail and failing jobs set aside with a reason while the rest goes on."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from sqlmodel import Session, col, select

from mailbot.config import Prefix
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.issuance.vault import Vault
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import SECRET_MASK, Mail
from mailbot.mail.transport import Envelope
from mailbot.runtime import Runtime
from mailbot.service import scheduler
from mailbot.service.scheduler import run_job
from mailbot.service.sending import send_queued
from mailbot.service.shunt import NotShunted, retry, shunted
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    InboundMessage,
    InboundStatus,
    JobState,
    OutboxMessage,
    OutboxStatus,
    ProductRow,
)
from mailbot.storage.queries import UNFINISHED, claim_inbound
from tests.conftest import FakeClock
from tests.fixtures.records import paid_application

LEASE = timedelta(minutes=10)


def _inbound(session: Session, rt: Runtime, key: str, *, attempts: int = 0) -> InboundMessage:
    row = InboundMessage(key=key, sha256=key.ljust(64, "0"), archive_path=f"x/{key}", size=1,
                         received_at=rt.clock(), subject=key, attempts=attempts)  # fmt: skip
    session.add(row)
    session.flush()
    row.correlation_id = f"m{row.id}"
    return row


def _claim(rt: Runtime, *, limit: int = 1) -> list[str]:
    with transaction(rt.engine) as session:
        rows = claim_inbound(session, now=rt.clock(), lease=LEASE, max_attempts=3, limit=limit)
        return [r.key for r in rows]


def _free_leases(rt: Runtime) -> None:
    """What release_dead_leases does for a killed process of this host."""
    with transaction(rt.engine) as session:
        session.execute(update(InboundMessage).values(lease_until=None, lease_owner=""))


def test_a_message_claimed_max_attempts_times_without_finishing_is_quarantined(
    rt: Runtime,
) -> None:
    with transaction(rt.engine) as session:
        _inbound(session, rt, "poison")
    for attempt in (1, 2, 3):
        assert _claim(rt) == ["poison"]  # then the process dies: no exception, no _park
        with transaction(rt.engine) as session:
            [row] = session.exec(select(InboundMessage)).all()
            assert (row.attempts, row.status) == (attempt, InboundStatus.archived)
        _free_leases(rt)
    assert _claim(rt) == []
    with transaction(rt.engine) as session:
        [row] = session.exec(select(InboundMessage)).all()
        assert row.status == InboundStatus.quarantined
        assert row.last_error == UNFINISHED.format(n=3)
        assert row.lease_owner == ""
        [item] = shunted(session)
    assert (item.what, item.ref, item.attempts) == ("message", row.correlation_id, 3)
    assert "processing did not finish 3 times (killed or timed out)" in item.reason


def test_a_message_that_failed_waits_behind_fresh_ones(rt: Runtime) -> None:
    with transaction(rt.engine) as session:
        _inbound(session, rt, "raised-once", attempts=1).status = InboundStatus.failed
        _inbound(session, rt, "cut-off-twice", attempts=2)
        _inbound(session, rt, "cut-off-once", attempts=1)  # a restart: keeps its place
        _inbound(session, rt, "fresh-a")
        _inbound(session, rt, "fresh-b")
    assert _claim(rt, limit=5) == [
        "cut-off-once", "fresh-a", "fresh-b", "raised-once", "cut-off-twice"
    ]  # fmt: skip


def test_retry_puts_a_quarantined_message_back_with_its_attempts_cleared(rt: Runtime) -> None:
    with transaction(rt.engine) as session:
        m = _inbound(session, rt, "q", attempts=3)
        m.status = InboundStatus.quarantined
    with transaction(rt.engine) as session:
        assert "will be processed" in retry(session, "m1", now=rt.clock())
    assert _claim(rt) == ["q"]
    with transaction(rt.engine) as session, pytest.raises(NotShunted, match="is archived"):
        retry(session, "m1", now=rt.clock())


def _paid(rt: Runtime, clock: FakeClock, count: int) -> list[int]:
    rt.settings = dataclasses.replace(rt.settings, prefixes=(Prefix("4601234", 100_000),),
                                      admin_email="admin@example.test")  # fmt: skip
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=clock())
        ids = [paid_application(session, clock(), n, 2, inn=f"77070838{n:02d}").id for n in
               range(1, count + 1)]  # fmt: skip
    return [i for i in ids if i is not None]


@pytest.mark.parametrize(
    "name",
    ["Сок\x01яблочный", "Сок\x0bяблочный"],
    ids=["control-character", "vertical-tab"],
)
def test_an_application_that_cannot_be_issued_is_set_aside_and_the_others_are_issued(
    rt: Runtime, clock: FakeClock, name: str
) -> None:
    first, bad, last = _paid(rt, clock, 3)
    with transaction(rt.engine) as session:
        session.execute(
            update(ProductRow).where(col(ProductRow.application_id) == bad).values(name=name)
        )
    assert issue_paid(rt) == 2
    with transaction(rt.engine) as session:
        apps = {a.id: a for a in session.exec(select(Application))}
        assert [apps[i].state for i in (first, bad, last)] == ["issued", "paid", "issued"]
        assert apps[bad].issue_error.startswith("issuance failed: ")
        assert apps[bad].issue_attempts == 1
        items = shunted(session)
        alerts = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "alert")).all()
    assert [(i.what, i.ref) for i in items] == [("issuance", apps[bad].number)]
    assert [a.recipients for a in alerts] == [["admin@example.test"]]
    assert issue_paid(rt) == 0  # set aside: not tried again on every pass
    with transaction(rt.engine) as session:
        session.execute(
            update(ProductRow).where(col(ProductRow.application_id) == bad).values(name="Сок")
        )
        assert "will be issued" in retry(session, apps[bad].number, now=clock())
    assert issue_paid(rt) == 1


def test_an_issuance_started_max_attempts_times_without_finishing_is_set_aside(
    rt: Runtime, clock: FakeClock
) -> None:
    [app_id] = _paid(rt, clock, 1)
    limit = rt.settings.limits.max_attempts
    with transaction(rt.engine) as session:  # as if `limit` processes died while issuing it
        session.execute(
            update(Application).where(col(Application.id) == app_id).values(issue_attempts=limit)
        )
    assert issue_paid(rt) == 0
    with transaction(rt.engine) as session:
        app = session.get(Application, app_id)
        assert app is not None
        assert app.issue_error == f"issuance did not finish {limit} times (killed or timed out)"


def _queue(session: Session, rt: Runtime, n: int, *, secret: str | None, vault: Vault) -> None:
    text = f"Пароль: {SECRET_MASK}" if secret else "Здравствуйте"
    enqueue(session, Mail(to=(f"c{n}@example.test",), subject=f"m{n}", text=text),
            Outgoing(dedupe_key=f"test:{n}", kind="issued", secret=secret, vault=vault),
            sender=rt.sender, now=rt.clock())  # fmt: skip


def test_a_mail_sealed_with_another_key_is_failed_with_a_reason_and_the_rest_are_sent(
    rt: Runtime, tmp_path: Path
) -> None:
    rt.settings = dataclasses.replace(rt.settings, admin_email="admin@example.test")
    other_host = Vault(Fernet.generate_key())
    with transaction(rt.engine) as session:
        _queue(session, rt, 1, secret=None, vault=rt.vault)
        _queue(session, rt, 2, secret="s3cret-pass", vault=other_host)
        _queue(session, rt, 3, secret="0ther-pass", vault=rt.vault)
    outbox = tmp_path / "outbox"
    report = send_queued(rt, MaildirTransport(outbox))
    assert (report.sent, report.failed) == (3, 1)  # the three, then the admin's alert
    with transaction(rt.engine) as session:
        rows = {o.subject: o for o in session.exec(select(OutboxMessage))}
        items = shunted(session)
    assert [rows[f"m{n}"].status for n in (1, 2, 3)] == ["sent", "failed", "sent"]
    assert "sealed with another MAILBOT_SECRET_KEY" in rows["m2"].last_error
    assert [(i.what, i.ref) for i in items] == [("mail", f"o{rows['m2'].id}")]
    [alert] = [o for o in rows.values() if o.kind == "alert"]
    assert alert.status == "sent" and alert.recipients == ["admin@example.test"]
    delivered = b"".join(p.read_bytes() for p in (outbox / "new").iterdir())
    assert b"0ther-pass" in delivered and b"s3cret-pass" not in delivered


class _Refuses(MaildirTransport):
    """Takes every mail but one, for which it raises a bug-like error (not DeliveryError)."""

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        if "bad@example.test" in envelope.recipients:
            raise UnicodeEncodeError("ascii", "ё", 0, 1, "not encodable")
        super().deliver(data, envelope)


def test_a_mail_the_transport_cannot_take_is_failed_and_retried_by_one_command(
    rt: Runtime, tmp_path: Path
) -> None:
    with transaction(rt.engine) as session:
        _queue(session, rt, 1, secret=None, vault=rt.vault)
        enqueue(session, Mail(to=("bad@example.test",), subject="bad", text="x"),
                Outgoing(dedupe_key="test:bad", kind="reply"), sender=rt.sender,
                now=rt.clock())  # fmt: skip
        _queue(session, rt, 3, secret=None, vault=rt.vault)
    report = send_queued(rt, _Refuses(tmp_path / "outbox"))
    assert (report.sent, report.failed) == (2, 1)
    with transaction(rt.engine) as session:
        bad = session.exec(select(OutboxMessage).where(OutboxMessage.subject == "bad")).one()
        assert bad.status == OutboxStatus.failed and "UnicodeEncodeError" in bad.last_error
        assert "will be sent" in retry(session, f"o{bad.id}", now=rt.clock())
    report = send_queued(rt, MaildirTransport(tmp_path / "outbox"))
    assert report.sent == 1


def test_a_failing_job_is_recorded_shown_and_cleared_by_its_next_success(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_rt: Runtime) -> None:
        raise RuntimeError("template missing")

    monkeypatch.setitem(scheduler.JOBS, "invoice_sweep", broken)
    assert run_job(rt, "invoice_sweep") is False
    assert run_job(rt, "invoice_sweep") is False
    with transaction(rt.engine) as session:
        [item] = shunted(session)
    assert (item.what, item.ref, item.attempts) == ("job", "job:invoice_sweep", 2)
    assert "RuntimeError: template missing" in item.reason
    monkeypatch.setitem(scheduler.JOBS, "invoice_sweep", scheduler.sweep_invoices)
    assert run_job(rt, "invoice_sweep") is True
    with transaction(rt.engine) as session:
        job = session.get(JobState, "invoice_sweep")
        assert job is not None and job.failures == 0 and job.last_ok_at is not None
        assert shunted(session) == []
