"""«Новости»: the news campaigns sent to clients, newest first, and the subscription switch.

The switch sets `Client.unsubscribed`, the flag the e-mail unsubscribe sets and `news send`
reads, through the same function (`handlers.subscriptions.set_subscription`) and event.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.handlers.subscriptions import Subscription, set_subscription
from mailbot.storage.db import read_only, transaction
from mailbot.storage.models import Client
from mailbot.storage.models_clients import NewsCampaign, NewsDelivery
from mailbot.web.status import when
from mailbot.web.visit import Visit, action, field, not_found, page, render

SHOWN = 50  # the newest campaigns shown
CHOICES = {"1": True, "0": False}


@dataclass(frozen=True)
class News:
    at: str
    subject: str
    body: str
    mailed: bool  # this client got it by mail


def _page(v: Visit, *, status: int = 200, error: str = "") -> Response:
    with read_only(v.rt.engine) as session:
        client = session.get(Client, v.client_id)
        if client is None:
            raise not_found()
        campaigns = session.exec(
            select(NewsCampaign).order_by(col(NewsCampaign.id).desc()).limit(SHOWN)
        ).all()
        mailed = set(
            session.exec(
                select(NewsDelivery.campaign_id).where(
                    NewsDelivery.client_id == v.client_id, NewsDelivery.status == "queued"
                )
            )
        )
        subscribed = not client.unsubscribed
    items = [News(when(c.created_at), c.subject, c.body.strip(), c.id in mailed) for c in campaigns]
    return render(
        v,
        v.request,
        "news.html.j2",
        status=status,
        items=items,
        subscribed=subscribed,
        email=v.client.email,
        saved=v.request.query_params.get("saved") == "1" and not error,
        error=error,
    )


def _news(v: Visit) -> Response:
    return _page(v)


def _subscription(v: Visit) -> Response:
    choice = CHOICES.get(field(v.form, "subscribed", limit=2))
    if choice is None:
        return _page(v, status=400, error="Выберите, получать ли новости.")
    with transaction(v.rt.engine) as session:
        client = session.exec(
            select(Client).where(Client.id == v.client_id).with_for_update()
        ).one()
        change = Subscription(
            subscribed=choice, at=v.rt.clock(), data={"channel": "web", "session": v.session.id}
        )
        set_subscription(session, client, change)
    return RedirectResponse("/news?saved=1", status_code=303)


routes: list[BaseRoute] = [
    Route("/news", page(_news), methods=["GET"]),
    Route("/news/subscription", action(_subscription), methods=["POST"]),
]
