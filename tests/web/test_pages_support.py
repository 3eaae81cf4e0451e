"""«Поддержка»: tickets by mail and by web in one numbering and one thread."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

from sqlmodel import Session, col, select

from mailbot.handlers import support
from mailbot.mail.intake.base import RawMessage
from mailbot.pipeline import archive_one, process_pending
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Event, OutboxMessage, SupportTicket
from mailbot.storage.models_clients import TicketMessage
from tests.conftest import FakeClock
from tests.web.pages2 import ON_POSTGRESQL, ON_SQLITE, add_client, browser, csrf


def _mail_ticket(rt: Runtime, text: str) -> SupportTicket:
    """A ticket opened by a mail from the client's registered address (the mail path)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "boss@client.test", "info@example.test", "Вопрос"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@client.test>"
    msg.set_content(text)
    raw = bytes(msg)
    archive_one(rt, RawMessage(key=uuid.uuid4().hex, data=raw, size=len(raw)))
    process_pending(rt)
    with Session(rt.engine) as s:
        return s.exec(select(SupportTicket).order_by(col(SupportTicket.id).desc())).one()


def _admin_reply(rt: Runtime, number: str, text: str) -> None:
    """What `mailbot tickets reply NUMBER --text …` does (without sending)."""
    with transaction(rt.engine) as s:
        ticket = s.exec(select(SupportTicket).where(SupportTicket.number == number)).one()
        support.admin_reply(s, rt, ticket, text)


def _web_ticket_then_thread(rt: Runtime, clock: FakeClock) -> None:
    client_id = add_client(rt)
    mailed = _mail_ticket(rt, "Где свидетельство по заявке?")
    web = browser(rt, "7707083893")
    clock.advance(minutes=1)
    form = {"csrf": csrf(web, "/tickets"), "subject": "Счёт", "body": "Нужен счёт\nна 10 кодов."}
    r = web.post("/tickets", data=form)
    assert r.status_code == 303
    with Session(rt.engine) as s:
        ticket = s.exec(select(SupportTicket).where(SupportTicket.id != mailed.id)).one()
        assert r.headers["location"] == f"/tickets/{ticket.number}"
        year = clock().year
        assert (mailed.number, ticket.number) == (f"{year}-00001", f"{year}-00002")
        assert ticket.client_id == client_id and ticket.sender == "boss@client.test"
        thread = s.exec(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(col(TicketMessage.id))
        ).all()
        first = thread[0]
        assert [m.direction for m in thread] == ["in", "out"]  # the message and our ack
        assert (first.direction, first.channel, first.body) == (
            "in",
            "web",
            "Нужен счёт\nна 10 кодов.",
        )
        acks = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "ticket_ack")).all()
        assert len(acks) == 2 and acks[1].recipients == ["boss@client.test"]
        assert s.exec(
            select(Event).where(Event.event == "ticket_opened", Event.entity_id == ticket.id)
        ).first()
    # the mailed ticket: its mail, a web reply, the admin's answer (CLI), in one thread
    clock.advance(minutes=1)
    r = web.post(
        f"/tickets/{mailed.number}", data={"csrf": csrf(web), "body": "Дополняю: ИНН тот же."}
    )
    assert r.status_code == 303
    clock.advance(minutes=1)
    _admin_reply(rt, mailed.number, "Свидетельство отправлено письмом.")
    page = web.get(f"/tickets/{mailed.number}").text
    order = [
        page.index("Где свидетельство по заявке?"),  # read back from the archive
        page.index("Ваше обращение зарегистрировано"),  # our ack, from the outbox row
        page.index("Дополняю: ИНН тот же."),
        page.index("Свидетельство отправлено письмом."),
    ]
    assert order == sorted(order)
    listing = web.get("/tickets").text
    assert f"/tickets/{mailed.number}" in listing and f"/tickets/{ticket.number}" in listing
    assert "Счёт" in listing and "открыто" in listing


@ON_SQLITE
def test_a_web_ticket_joins_the_mail_numbering_and_the_thread_shows_every_channel(
    rt: Runtime, clock: FakeClock
) -> None:
    _web_ticket_then_thread(rt, clock)


@ON_POSTGRESQL
def test_tickets_and_threads_on_postgresql(rt: Runtime, clock: FakeClock) -> None:
    _web_ticket_then_thread(rt, clock)


@ON_SQLITE
def test_the_admins_answer_to_a_web_ticket_follows_no_missing_message_id(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    web.post("/tickets", data={"csrf": csrf(web), "subject": "Тема", "body": "Текст"})
    with Session(rt.engine) as s:
        ticket = s.exec(select(SupportTicket)).one()
    _admin_reply(rt, ticket.number, "Ответ")
    with Session(rt.engine) as s:
        reply = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "ticket_reply")).one()
    assert b"In-Reply-To: \r\n" not in reply.body and b"In-Reply-To: \n" not in reply.body
    assert f"[Обращение №{ticket.number}]" in reply.subject
    assert "Ответ" in web.get(f"/tickets/{ticket.number}").text


@ON_SQLITE
def test_a_reply_to_a_closed_ticket_opens_it_again_as_by_mail(rt: Runtime) -> None:
    add_client(rt)
    ticket = _mail_ticket(rt, "Вопрос")
    with transaction(rt.engine) as s:
        row = s.get(SupportTicket, ticket.id)
        assert row is not None and support.close_ticket(s, rt, row)
    web = browser(rt, "7707083893")
    page = web.get(f"/tickets/{ticket.number}").text
    assert "закрыто" in page and "откроет его снова" in page
    r = web.post(f"/tickets/{ticket.number}", data={"csrf": csrf(web), "body": "Ещё вопрос"})
    assert r.status_code == 303
    with Session(rt.engine) as s:
        row = s.get(SupportTicket, ticket.id)
        assert row is not None and row.status == "open"
        assert s.exec(select(Event).where(Event.event == "ticket_reopened")).first()


@ON_SQLITE
def test_another_clients_ticket_is_404_and_takes_no_reply(rt: Runtime) -> None:
    add_client(rt)
    ticket = _mail_ticket(rt, "Секретный вопрос")
    add_client(rt, "7736207543", email="other@else.test")
    intruder = browser(rt, "7736207543")
    token = csrf(intruder)
    assert intruder.get(f"/tickets/{ticket.number}").status_code == 404
    assert intruder.get("/tickets/2026-99999").status_code == 404
    r = intruder.post(f"/tickets/{ticket.number}", data={"csrf": token, "body": "Моё"})
    assert r.status_code == 404
    assert "Секретный вопрос" not in intruder.get("/tickets").text
    with Session(rt.engine) as s:
        assert len(s.exec(select(TicketMessage)).all()) == 2  # the mail and our ack


@ON_SQLITE
def test_without_the_csrf_token_nothing_is_created(rt: Runtime) -> None:
    add_client(rt)
    ticket = _mail_ticket(rt, "Вопрос")
    web = browser(rt, "7707083893")
    assert web.post("/tickets", data={"subject": "Тема", "body": "Текст"}).status_code == 403
    r = web.post(f"/tickets/{ticket.number}", data={"csrf": "forged", "body": "Текст"})
    assert r.status_code == 403
    with Session(rt.engine) as s:
        assert len(s.exec(select(SupportTicket)).all()) == 1
        assert len(s.exec(select(TicketMessage)).all()) == 2


@ON_SQLITE
def test_an_empty_message_is_refused_next_to_its_field(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    r = web.post("/tickets", data={"csrf": csrf(web), "subject": "", "body": " "})
    assert r.status_code == 400
    assert 'id="subject-error"' in r.text and 'id="body-error"' in r.text
    with Session(rt.engine) as s:
        assert s.exec(select(SupportTicket)).all() == []
