"""News broadcasts: one campaign, one delivery row per subscribed client, sent at a rate.

`start_campaign` snapshots the recipients in one transaction; the same subject and body
give the same campaign, so running `mailbot news send` again after a crash resumes it.
`send_campaign` turns one delivery at a time into an outbox row (dedupe key
``news:<campaign>:<client>``) and delivers it: a client already queued is never queued
again, and the outbox sends each row once (its lease survives the crash of the sender).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import structlog
from sqlmodel import Session, col, func, select

from mailbot.crashpoints import crash_point
from mailbot.invariant import InvariantError
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body
from mailbot.mail.transport import Transport
from mailbot.runtime import Runtime
from mailbot.service.sending import send_queued
from mailbot.storage.db import transaction
from mailbot.storage.models import Client
from mailbot.storage.models_clients import NewsCampaign, NewsDelivery, SubscriptionToken
from mailbot.storage.queries import record_event, release_dead_leases

log = structlog.get_logger()


@dataclass(frozen=True)
class NewsReport:
    campaign_id: int
    queued: int  # in this run
    skipped: int  # unsubscribed since the campaign started
    pending: int  # still waiting (0 when the campaign is finished)


def campaign_key(subject: str, body: str) -> str:
    return hashlib.sha256(f"{subject}\0{body}".encode()).hexdigest()


def token_for(session: Session, client_id: int) -> str:
    """The client's unsubscribe token (made on first use)."""
    row = session.exec(
        select(SubscriptionToken).where(SubscriptionToken.client_id == client_id)
    ).first()
    if row is None:
        row = SubscriptionToken(client_id=client_id, token=secrets.token_hex(10))
        session.add(row)
        session.flush()
    return row.token


def unsubscribe_header(address: str, token: str) -> str:
    """`List-Unsubscribe` value (RFC 2369): a mailto with the token in the subject."""
    return f"<mailto:{address}?subject={quote(f'unsubscribe {token}')}>"


def start_campaign(rt: Runtime, subject: str, body: str) -> tuple[int, bool]:
    """(campaign id, created); recipients are every subscribed client at this moment."""
    key, now = campaign_key(subject, body), rt.clock()
    with transaction(rt.engine) as session:
        existing = session.exec(select(NewsCampaign).where(NewsCampaign.key == key)).first()
        if existing is not None and existing.id is not None:
            return existing.id, False
        campaign = NewsCampaign(key=key, subject=subject, body=body, created_at=now)
        session.add(campaign)
        session.flush()
        if campaign.id is None:
            raise InvariantError("campaign.id is missing")
        clients = session.exec(
            select(Client)
            .where(col(Client.unsubscribed).is_(False), Client.email != "")
            .order_by(col(Client.id))
        )
        count = 0
        for client in clients:
            if client.id is None:
                raise InvariantError("client.id is missing")
            session.add(
                NewsDelivery(campaign_id=campaign.id, client_id=client.id, address=client.email)
            )
            count += 1
        record_event(
            session,
            entity="news",
            entity_id=campaign.id,
            event="news_started",
            at=now,
            data={"recipients": count},
        )
        return campaign.id, True


def news_mail(rt: Runtime, campaign: NewsCampaign, address: str, token: str) -> Mail:
    ctx = {"campaign": campaign, "token": token, "service": rt.settings.service}
    return Mail(
        to=(address,),
        subject=campaign.subject,
        text=render_body(rt.env, "news", ctx),
        extra_headers={
            "List-Unsubscribe": unsubscribe_header(rt.settings.service.email, token),
            "Precedence": "bulk",
        },
    )


def _queue_next(rt: Runtime, campaign_id: int) -> str | None:
    """Turn the next pending delivery into an outbox row; its outcome, or None when done."""
    with transaction(rt.engine) as session:
        delivery = session.exec(
            select(NewsDelivery)
            .where(NewsDelivery.campaign_id == campaign_id, NewsDelivery.status == "pending")
            .order_by(col(NewsDelivery.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if delivery is None:
            return None
        client = session.get(Client, delivery.client_id)
        campaign = session.get(NewsCampaign, campaign_id)
        if not (client is not None and campaign is not None):
            raise InvariantError("client is not None and campaign is not None")
        if client.unsubscribed:
            delivery.status = "skipped"
            session.add(delivery)
            return "skipped"
        token = token_for(session, delivery.client_id)
        row = enqueue(
            session,
            news_mail(rt, campaign, delivery.address, token),
            Outgoing(
                dedupe_key=f"news:{campaign_id}:{delivery.client_id}",
                kind="news",
                correlation_id=f"n{campaign_id}",
            ),
            sender=rt.sender,
            now=rt.clock(),
        )
        delivery.status, delivery.outbox_id = "queued", row.id
        session.add(delivery)
        return "queued"


def send_campaign(  # noqa: PLR0913 - sleep and monotonic are injected for tests
    rt: Runtime,
    transport: Transport,
    campaign_id: int,
    *,
    per_minute: int,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> NewsReport:
    """Queue and deliver the campaign's pending mail, at most `per_minute` a minute."""
    deliver = _deliverer(rt, transport)
    with transaction(rt.engine) as session:
        release_dead_leases(session)
    deliver()  # rows queued by a run that died before delivering them
    interval, slot = 60.0 / max(1, per_minute), monotonic()
    queued = skipped = 0
    while True:
        wait = slot - monotonic()
        if wait > 0:
            if not _pending(rt, campaign_id):
                break
            sleep(wait)
        outcome = _queue_next(rt, campaign_id)
        if outcome is None:
            break
        if outcome == "skipped":
            skipped += 1
            continue
        queued += 1
        crash_point(f"after_news_queued:{queued}")
        deliver()
        slot = max(slot, monotonic()) + interval
    return NewsReport(campaign_id, queued, skipped, _finish(rt, campaign_id))


def _deliverer(rt: Runtime, transport: Transport) -> Callable[[], None]:
    def deliver() -> None:
        send_queued(rt, transport)  # the one retry policy of every caller

    return deliver


def _pending(rt: Runtime, campaign_id: int) -> int:
    with transaction(rt.engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(NewsDelivery)
                .where(NewsDelivery.campaign_id == campaign_id, NewsDelivery.status == "pending")
            ).one()
        )


def _finish(rt: Runtime, campaign_id: int) -> int:
    """Mark the campaign finished when nothing is pending; how many are still pending."""
    pending = _pending(rt, campaign_id)
    with transaction(rt.engine) as session:
        campaign = session.get(NewsCampaign, campaign_id)
        if campaign is None:
            raise InvariantError("campaign is missing")
        if pending == 0 and campaign.finished_at is None:
            campaign.finished_at = rt.clock()
            session.add(campaign)
            record_event(
                session, entity="news", entity_id=campaign_id, event="news_finished", at=rt.clock()
            )
    log.info("news_sent", campaign=campaign_id, pending=pending)
    return pending
