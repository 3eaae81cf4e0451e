"""«Поддержка»: the client's tickets, a new one, the thread and a reply — on the mail rows.

A ticket is «Обращение №N» whichever channel opened it (handlers.support numbers both).
The thread lists every TicketMessage by time: a client's mail is read back from the
archive in the guarded worker (`read_message`, as intake reads it), our mail from its
outbox row, a message written here from the row itself. `mailbot tickets reply` and
replies by mail land on the same rows, so they show up here too. A reply to a closed
ticket opens it again, as a mailed reply does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from sqlmodel import Session, col, func, select
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.handlers import support
from mailbot.mail.archive import read_raw
from mailbot.mail.reading import Unreadable, read_message
from mailbot.runtime import Runtime
from mailbot.storage.db import read_only, transaction
from mailbot.storage.models import Client, InboundMessage, OutboxMessage, SupportTicket
from mailbot.storage.models_clients import TicketMessage
from mailbot.web import owned
from mailbot.web.visit import Visit, action, field, not_found, page, render

MAX_SUBJECT = 200
MAX_BODY = 10_000
STATUS = {"open": "открыто", "closed": "закрыто"}


@dataclass(frozen=True)
class Entry:
    """One message of a thread as the page shows it."""

    at: datetime
    ours: bool  # our answer (or acknowledgement), else the client's
    channel: str  # mail | web
    text: str


# ------------------------------------------------------------------ list and new
def _tickets(session: Session, client_id: int) -> list[dict[str, object]]:
    last = (
        select(TicketMessage.ticket_id, func.max(TicketMessage.created_at).label("last"))
        .group_by(col(TicketMessage.ticket_id))
        .subquery()
    )
    rows = session.exec(
        select(SupportTicket, last.c.last)
        .join(last, last.c.ticket_id == SupportTicket.id, isouter=True)
        .where(SupportTicket.client_id == client_id)
        .order_by(col(SupportTicket.id).desc())
    )
    return [
        {
            "number": t.number,
            "subject": t.subject or "Без темы",
            "status": STATUS.get(t.status, t.status),
            "last": latest or t.created_at,
        }
        for t, latest in rows
    ]


def _list(v: Visit, status: int = 200, **ctx: object) -> Response:
    with read_only(v.rt.engine) as session:
        tickets = _tickets(session, v.client_id)
    base: dict[str, object] = {"errors": {}, "subject": "", "body": "", "max_body": MAX_BODY}
    return render(v, v.request, "tickets.html.j2", status=status, tickets=tickets, **(base | ctx))


def _index(v: Visit) -> Response:
    return _list(v)


def _checked_body(text: str) -> str | None:
    if not text:
        return "Напишите текст обращения."
    if len(text) > MAX_BODY:
        return f"Текст длиннее {MAX_BODY} символов. Сократите его."
    return None


def _open(v: Visit) -> Response:
    subject = field(v.form, "subject", limit=MAX_SUBJECT + 1)
    body = field(v.form, "body", limit=MAX_BODY + 1)
    errors: dict[str, str] = {}
    if not subject:
        errors["subject"] = "Укажите тему обращения."
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = f"Тема длиннее {MAX_SUBJECT} символов. Сократите её."
    body_error = _checked_body(body)
    if body_error:
        errors["body"] = body_error
    if errors:
        return _list(v, 400, errors=errors, subject=subject, body=body)
    with transaction(v.rt.engine) as session:
        client = session.get(Client, v.client_id)
        if client is None:
            raise not_found()
        ticket = support.open_web_ticket(session, v.rt, client, " ".join(subject.split()), body)
    return RedirectResponse(f"/tickets/{ticket.number}", status_code=303)


# ------------------------------------------------------------------ one thread
def _text_of_mail(rt: Runtime, session: Session, inbound_id: int) -> str:
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None:
        return ""
    msg = read_message(read_raw(rt.settings.archive_dir, inbound.archive_path), rt.settings.limits)
    if isinstance(msg, Unreadable):
        return "(письмо не удалось прочитать)"
    files = "".join(f"\n[вложение] {a.filename}" for a in msg.attachments)
    return msg.text.strip() + files


def _text_of_ours(session: Session, outbox_id: int) -> str:
    """The text part of our mail as composed (render.compose: one text/plain part)."""
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        return ""
    mail = BytesParser(policy=policy.default).parsebytes(row.body)
    part = mail.get_body(("plain",)) if isinstance(mail, EmailMessage) else None
    return str(part.get_content()).strip() if isinstance(part, EmailMessage) else ""


def thread(rt: Runtime, session: Session, ticket: SupportTicket) -> list[Entry]:
    """Every message of the ticket, oldest first, whichever channel carried it."""
    entries = []
    for m in session.exec(
        select(TicketMessage)
        .where(TicketMessage.ticket_id == ticket.id)
        .order_by(col(TicketMessage.created_at), col(TicketMessage.id))
    ):
        if m.channel == "web":
            text = m.body
        elif m.inbound_id is not None:
            text = _text_of_mail(rt, session, m.inbound_id)
        else:
            text = _text_of_ours(session, m.outbox_id) if m.outbox_id is not None else ""
        entries.append(Entry(m.created_at, m.direction == "out", m.channel, text))
    return entries


def _thread_page(v: Visit, number: str, status: int = 200, **ctx: object) -> Response:
    with read_only(v.rt.engine) as session:
        ticket = owned.ticket(session, v.client_id, number)
        entries = thread(v.rt, session, ticket)
    base: dict[str, object] = {"errors": {}, "body": "", "max_body": MAX_BODY}
    return render(
        v,
        v.request,
        "ticket.html.j2",
        status=status,
        ticket=ticket,
        status_text=STATUS.get(ticket.status, ticket.status),
        entries=entries,
        **(base | ctx),
    )


def _show(v: Visit) -> Response:
    return _thread_page(v, str(v.request.path_params["number"]))


def _reply(v: Visit) -> Response:
    number = str(v.request.path_params["number"])
    body = field(v.form, "body", limit=MAX_BODY + 1)
    error = _checked_body(body)
    if error:
        return _thread_page(v, number, 400, errors={"body": error}, body=body)
    with transaction(v.rt.engine) as session:
        ticket = owned.ticket(session, v.client_id, number)
        session.refresh(ticket, with_for_update=True)
        support.web_reply(session, v.rt, ticket, body)
    return RedirectResponse(f"/tickets/{number}", status_code=303)


routes: list[BaseRoute] = [
    Route("/tickets", page(_index), methods=["GET"]),
    Route("/tickets", action(_open), methods=["POST"]),
    Route("/tickets/{number}", page(_show), methods=["GET"]),
    Route("/tickets/{number}", action(_reply), methods=["POST"]),
]
