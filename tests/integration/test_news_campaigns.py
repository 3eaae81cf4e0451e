"""News campaigns on SQLite and PostgreSQL: snapshot, resume, rate, unsubscribes."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes

from sqlmodel import Session, select

from mailbot.mail.news import _queue_next, send_campaign, start_campaign
from mailbot.mail.transport import Envelope
from mailbot.runtime import Runtime
from mailbot.storage.models import Client, OutboxMessage
from mailbot.storage.models_clients import NewsDelivery


class Recorder:
    """A transport that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        header = str(message_from_bytes(data)["List-Unsubscribe"]).strip()
        assert header.startswith("<mailto:info@example.test?subject=unsubscribe")
        self.sent.append(envelope.recipients)

    def close(self) -> None:
        pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def _clients(rt: Runtime, n: int, *, unsubscribed: int = -1) -> list[str]:
    emails = [f"c{i}@example.test" for i in range(n)]
    with Session(rt.engine) as s:
        for i, email in enumerate(emails):
            s.add(
                Client(
                    inn="7707083893",
                    kpp=f"77360100{i}",
                    org_name=f"ООО {i}",
                    email=email,
                    unsubscribed=i == unsubscribed,
                    created_at=datetime.now(UTC),
                )
            )
        s.commit()
    return emails


def test_campaign_resumed_after_a_crash_mails_each_subscriber_once(rt: Runtime) -> None:
    emails = _clients(rt, 4, unsubscribed=3)
    campaign_id, created = start_campaign(rt, "Новости", "Текст")
    assert created
    assert _queue_next(rt, campaign_id) == "queued"  # a run that died before delivering
    again, created = start_campaign(rt, "Новости", "Текст")
    assert (again, created) == (campaign_id, False)
    transport, clock = Recorder(), FakeTime()
    report = send_campaign(
        rt, transport, campaign_id, per_minute=60, sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert sorted(r for (r,) in transport.sent) == emails[:3]
    assert (report.queued, report.pending) == (2, 0)
    assert clock.slept == [1.0]  # 60 a minute: one second between the two new mails
    again_report = send_campaign(rt, transport, campaign_id, per_minute=60)
    assert again_report.queued == 0 and len(transport.sent) == 3
    with Session(rt.engine) as s:
        assert len(s.exec(select(OutboxMessage).where(OutboxMessage.kind == "news")).all()) == 3


def test_client_unsubscribed_after_the_start_is_skipped(rt: Runtime) -> None:
    _clients(rt, 2)
    campaign_id, _ = start_campaign(rt, "Новости", "Текст")
    with Session(rt.engine) as s:
        first = s.exec(select(Client).where(Client.email == "c0@example.test")).one()
        first.unsubscribed = True
        s.add(first)
        s.commit()
    transport = Recorder()
    report = send_campaign(rt, transport, campaign_id, per_minute=6000)
    assert transport.sent == [("c1@example.test",)] and report.skipped == 1
    with Session(rt.engine) as s:
        statuses = sorted(d.status for d in s.exec(select(NewsDelivery)))
    assert statuses == ["queued", "skipped"]
