"""Admin commands for what known clients do by e-mail: requests, tickets, news."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session, col, select

from mailbot.cli.base import fail, group, out, runtime
from mailbot.handlers import contacts, support
from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw
from mailbot.mail.message import parse_message
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, InboundMessage, OutboxMessage, SupportTicket
from mailbot.storage.models_clients import (
    ContactChangeRequest,
    NewsCampaign,
    NewsDelivery,
    TicketMessage,
)

requests_app = group("requests", "Clients' contact change requests: list, approve, reject.")
tickets_app = group("tickets", "Support tickets «Обращение №N»: list, show, reply, close.")
news_app = group("news", "News to every subscribed client.")


def _send_now(rt: Runtime) -> None:
    """Deliver what was just queued; whatever fails stays in the outbox for the daemon."""
    from mailbot.service.daemon import open_transport
    from mailbot.service.sending import send_queued

    transport = open_transport(rt.settings)
    try:
        report = send_queued(rt, transport)
    finally:
        transport.close()
    out.print(f"mail sent: {report.sent}, to retry: {report.retried}, failed: {report.failed}")


# ------------------------------------------------------------------ requests
@requests_app.command("list")
def requests_list(
    all_: Annotated[bool, typer.Option("--all", help="decided requests too")] = False,
) -> None:
    """Contact change requests, pending ones unless --all."""
    rt = runtime()
    table = Table("id", "status", "client", "from", "changes", "received")
    with transaction(rt.engine) as session:
        query = (
            select(ContactChangeRequest, Client)
            .join(Client, col(Client.id) == col(ContactChangeRequest.client_id))
            .order_by(col(ContactChangeRequest.id))
        )
        if not all_:
            query = query.where(ContactChangeRequest.status == "pending")
        for req, client in session.exec(query):
            changes = "; ".join(
                f"{k}: {req.previous.get(k) or '—'} → {v}" for k, v in req.changes.items()
            )
            table.add_row(
                str(req.id),
                req.status,
                f"{client.org_name} ({client.inn})",
                req.sender,
                changes,
                req.created_at.strftime("%Y-%m-%d %H:%M"),
            )
    out.print(table)


def _decide(request_id: int, *, approve: bool, reason: str) -> None:
    rt = runtime()
    with transaction(rt.engine) as session:
        req = session.get(ContactChangeRequest, request_id)
        if req is None:
            fail(f"request {request_id} not found")
        error = contacts.decide(session, rt, req, approve=approve, reason=reason)
        if error is not None:
            fail(error)
    out.print(f"request {request_id} {'approved' if approve else 'rejected'}")
    _send_now(rt)


@requests_app.command("approve")
def requests_approve(request_id: int) -> None:
    """Apply the requested changes and tell the client (old and new e-mail)."""
    _decide(request_id, approve=True, reason="")


@requests_app.command("reject")
def requests_reject(
    request_id: int,
    reason: Annotated[str, typer.Option(help="told to the client")] = "",
) -> None:
    """Reject the request and tell the client why."""
    _decide(request_id, approve=False, reason=reason)


# ------------------------------------------------------------------ tickets
def _ticket(session: Session, number: str) -> SupportTicket:
    ticket = session.exec(select(SupportTicket).where(SupportTicket.number == number)).first()
    if ticket is None:
        fail(f"ticket {number} not found")
    return ticket


@tickets_app.command("list")
def tickets_list(
    all_: Annotated[bool, typer.Option("--all", help="closed tickets too")] = False,
) -> None:
    """Support tickets, open ones unless --all."""
    rt = runtime()
    table = Table("number", "status", "from", "subject", "mails", "opened")
    with transaction(rt.engine) as session:
        query = select(SupportTicket).order_by(col(SupportTicket.id))
        if not all_:
            query = query.where(SupportTicket.status == "open")
        for t in session.exec(query):
            mails = session.exec(select(TicketMessage.id).where(TicketMessage.ticket_id == t.id))
            table.add_row(
                t.number,
                t.status,
                t.sender,
                t.subject,
                str(len(mails.all())),
                t.created_at.strftime("%Y-%m-%d %H:%M"),
            )
    out.print(table)


@tickets_app.command("show")
def tickets_show(number: str) -> None:
    """The ticket's thread: every mail in and out, oldest first, with its text."""
    rt = runtime()
    with transaction(rt.engine) as session:
        t = _ticket(session, number)
        out.print(f"[bold]Обращение №{t.number}[/] {t.status} from {t.sender}: {t.subject}")
        for m in session.exec(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == t.id)
            .order_by(col(TicketMessage.id))
        ):
            stamp = m.created_at.strftime("%Y-%m-%d %H:%M")
            out.print(f"\n--- {m.direction} {stamp} {m.message_id}", highlight=False)
            out.print(_text_of(session, rt, m), highlight=False, markup=False)


def _text_of(session: Session, rt: Runtime, m: TicketMessage) -> str:
    if m.channel == "web":  # written in the personal account: the text is on the row
        return f"[web] {m.body.strip()}"
    if m.inbound_id is not None:
        inbound = session.get(InboundMessage, m.inbound_id)
        if inbound is None:
            raise InvariantError("archived messages are never deleted")
        msg = parse_message(read_raw(rt.settings.archive_dir, inbound.archive_path))
        files = "".join(f"\n[attachment] {a.filename}" for a in msg.attachments)
        return msg.text.strip() + files
    row = session.get(OutboxMessage, m.outbox_id) if m.outbox_id is not None else None
    if row is None:
        return ""
    part = parse_message(row.body)
    return f"[{row.status}] {part.text.strip()}"


@tickets_app.command("reply")
def tickets_reply(
    number: str,
    text: Annotated[str, typer.Option(help="the answer")] = "",
    body_file: Annotated[Path | None, typer.Option(help="the answer, from a UTF-8 file")] = None,
) -> None:
    """Answer the client in the ticket's thread."""
    answer = body_file.read_text("utf-8") if body_file else text
    if not answer.strip():
        fail("give the answer with --text or --body-file")
    rt = runtime()
    with transaction(rt.engine) as session:
        ticket = _ticket(session, number)
        support.admin_reply(session, rt, ticket, answer.strip())
    out.print(f"reply queued in ticket {number}")
    _send_now(rt)


@tickets_app.command("close")
def tickets_close(number: str) -> None:
    """Close the ticket (a client's reply in its thread opens it again)."""
    rt = runtime()
    with transaction(rt.engine) as session:
        closed = support.close_ticket(session, rt, _ticket(session, number))
    out.print(f"ticket {number} {'closed' if closed else 'was not open'}")


# ------------------------------------------------------------------ news
@news_app.command("send")
def news_send(
    subject: Annotated[str, typer.Option(help="subject of the news mail")],
    body_file: Annotated[Path, typer.Option(help="text of the news, UTF-8")],
    per_minute: Annotated[int, typer.Option(help="at most this many mails a minute")] = 60,
) -> None:
    """Mail the news to every subscribed client; the same command again resumes it."""
    from mailbot.mail.news import send_campaign, start_campaign
    from mailbot.service.daemon import open_transport

    body = body_file.read_text("utf-8")
    if not subject.strip() or not body.strip():
        fail("the subject and the body must not be empty")
    rt = runtime()
    campaign_id, created = start_campaign(rt, subject.strip(), body)
    out.print(f"campaign {campaign_id} {'started' if created else 'resumed'}")
    transport = open_transport(rt.settings)
    try:
        report = send_campaign(rt, transport, campaign_id, per_minute=per_minute)
    finally:
        transport.close()
    out.print(
        f"campaign {campaign_id}: queued {report.queued}, skipped {report.skipped} "
        f"(unsubscribed), pending {report.pending}"
    )


@news_app.command("list")
def news_list() -> None:
    """Campaigns and how far each got."""
    rt = runtime()
    table = Table("id", "subject", "recipients", "sent", "skipped", "started", "finished")
    with transaction(rt.engine) as session:
        for c in session.exec(select(NewsCampaign).order_by(col(NewsCampaign.id))):
            rows = list(
                session.exec(
                    select(NewsDelivery.status, OutboxMessage.status)
                    .join(
                        OutboxMessage,
                        col(OutboxMessage.id) == col(NewsDelivery.outbox_id),
                        isouter=True,
                    )
                    .where(NewsDelivery.campaign_id == c.id)
                )
            )
            table.add_row(
                str(c.id),
                c.subject,
                str(len(rows)),
                str(sum(1 for _, s in rows if s == "sent")),
                str(sum(1 for d, _ in rows if d == "skipped")),
                c.created_at.strftime("%Y-%m-%d %H:%M"),
                c.finished_at.strftime("%Y-%m-%d %H:%M") if c.finished_at else "",
            )
    out.print(table)
