"""«Новости»: campaigns newest first, and the switch that is the e-mail unsubscribe's flag."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from mailbot.mail.news import send_campaign, start_campaign
from mailbot.mail.transport import Envelope
from mailbot.runtime import Runtime
from mailbot.storage.models import Client, Event
from tests.conftest import FakeClock
from tests.web.accounts import INN_A, SQLITE_ONLY, add_client, csrf_of, logged_in


class Recorder:
    """A transport that keeps the recipients it was given."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        self.sent.extend(envelope.recipients)

    def close(self) -> None:
        pass


def unsubscribed(rt: Runtime, client_id: int) -> bool:
    with Session(rt.engine) as s:
        row = s.get(Client, client_id)
        assert row is not None
        return row.unsubscribed


def subscription_events(rt: Runtime, client_id: int) -> list[tuple[str, dict[str, object]]]:
    with Session(rt.engine) as s:
        rows = s.exec(
            select(Event)
            .where(
                Event.entity == "client",
                Event.entity_id == client_id,
                col(Event.event).in_(["client_subscribed", "client_unsubscribed"]),
            )
            .order_by(col(Event.id))
        )
        return [(e.event, e.data) for e in rows]


@SQLITE_ONLY
def test_news_are_newest_first_and_unsubscribing_on_the_web_stops_the_next_mail(
    rt: Runtime, clock: FakeClock
) -> None:
    a = add_client(rt, INN_A)
    first, _ = start_campaign(rt, "Новые тарифы с 1 января", "Цены на коды не меняются.")
    transport = Recorder()
    send_campaign(rt, transport, first, per_minute=6000)
    assert transport.sent == [f"{INN_A}@client.example.test"]
    browser = logged_in(rt, INN_A)
    token = csrf_of(browser, "/news")
    answer = browser.post("/news/subscription", data={"csrf": token, "subscribed": "0"})
    assert answer.status_code == 200 and answer.url.path == "/news"
    assert unsubscribed(rt, a)
    clock.advance(days=1)
    second, _ = start_campaign(rt, "Праздничный график", "31 декабря работаем до 15:00.")
    send_campaign(rt, transport, second, per_minute=6000)
    assert len(transport.sent) == 1  # news send reads the flag the page set

    page = logged_in(rt, INN_A).get("/news").text  # a day later: a new session
    assert page.index("Праздничный график") < page.index("Новые тарифы с 1 января")
    assert "31 декабря работаем до 15:00." in page
    assert page.count("отправлено вам на почту") == 1
    assert page.index("отправлено вам на почту") > page.index("Новые тарифы с 1 января")
    assert 'id="subscribed-0" name="subscribed" value="0" checked' in page


@SQLITE_ONLY
def test_the_switch_sets_the_flag_both_ways_with_an_event_each(rt: Runtime) -> None:
    a = add_client(rt, INN_A)
    browser = logged_in(rt, INN_A)
    token = csrf_of(browser, "/news")
    browser.post("/news/subscription", data={"csrf": token, "subscribed": "0"})
    browser.post("/news/subscription", data={"csrf": token, "subscribed": "0"})  # unchanged
    assert unsubscribed(rt, a)
    browser.post("/news/subscription", data={"csrf": token, "subscribed": "1"})
    assert not unsubscribed(rt, a)
    events = subscription_events(rt, a)
    assert [name for name, _ in events] == ["client_unsubscribed", "client_subscribed"]
    assert all(data["channel"] == "web" for _, data in events)


@pytest.mark.parametrize("sent", [None, "", "forged-token"])
@SQLITE_ONLY
def test_the_switch_without_the_forms_csrf_token_is_403_and_changes_nothing(
    rt: Runtime, sent: str | None
) -> None:
    a = add_client(rt, INN_A)
    browser = logged_in(rt, INN_A)
    form = {"subscribed": "0"} | ({"csrf": sent} if sent is not None else {})
    answer = browser.post("/news/subscription", data=form)
    assert answer.status_code == 403
    assert not unsubscribed(rt, a)
    assert subscription_events(rt, a) == []


@SQLITE_ONLY
def test_a_value_other_than_1_or_0_is_an_error_next_to_the_switch(rt: Runtime) -> None:
    a = add_client(rt, INN_A)
    browser = logged_in(rt, INN_A)
    token = csrf_of(browser, "/news")
    answer = browser.post("/news/subscription", data={"csrf": token, "subscribed": "yes"})
    assert answer.status_code == 400
    assert '<p class="field-error" id="subscribed-error">' in answer.text
    assert not unsubscribed(rt, a)


def test_news_page_and_switch_smoke(rt: Runtime) -> None:
    """SQLite and PostgreSQL: a campaign is listed and the switch sets the flag."""
    a = add_client(rt, INN_A)
    start_campaign(rt, "Новости сервиса", "Текст новости.")
    browser = logged_in(rt, INN_A)
    assert "Новости сервиса" in browser.get("/news").text
    token = csrf_of(browser, "/news")
    browser.post("/news/subscription", data={"csrf": token, "subscribed": "0"})
    assert unsubscribed(rt, a)
