"""Support tickets «Обращение №N»: opened by a known client's mail, kept in one thread.

The thread is matched by the subject tag or by References to any mail of the ticket; a
reply counts only from the ticket's sender or a registered address of its client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from mailbot.handlers import consent
from mailbot.handlers.context import Context
from mailbot.invariant import InvariantError
from mailbot.mail.identity import address_of
from mailbot.mail.message import ParsedMessage
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, one_line, render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import Client, ClientAddress, InboundMessage, SupportTicket
from mailbot.storage.models_clients import TicketMessage
from mailbot.storage.queries import next_number, record_event


def ticket_subject(ticket: SupportTicket) -> str:
    """«Re: <client's subject> [Обращение №N]»."""
    base = one_line(ticket.subject) or "Обращение"
    return f"Re: {base} [Обращение №{ticket.number}]"


def ticket_for(session: Session, msg: ParsedMessage) -> SupportTicket | None:
    """The ticket this message replies to, if its sender may write in that ticket."""
    ticket = None
    if msg.ticket_tag:
        ticket = session.exec(
            select(SupportTicket).where(SupportTicket.number == msg.ticket_tag)
        ).first()
    if ticket is None and msg.thread_ids:
        hit = session.exec(
            select(TicketMessage.ticket_id).where(
                col(TicketMessage.message_id).in_(list(msg.thread_ids))
            )
        ).first()
        ticket = session.get(SupportTicket, hit) if hit is not None else None
    if ticket is None or not _may_write(session, ticket, address_of(msg)):
        return None
    return ticket


def _may_write(session: Session, ticket: SupportTicket, address: str) -> bool:
    if address == ticket.sender.lower():
        return True
    return (
        ticket.client_id is not None
        and session.exec(
            select(ClientAddress.id).where(
                ClientAddress.client_id == ticket.client_id, ClientAddress.address == address
            )
        ).first()
        is not None
    )


def open_ticket(
    session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage, client: Client
) -> str:
    """Open «Обращение №N» and acknowledge it to the registered address it came from."""
    now = rt.clock()
    ticket = _new_ticket(session, rt, client, sender=address_of(msg), subject=msg.subject)
    ticket.root_message_id = msg.message_id
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    _record_in(session, ticket, inbound, msg, now)
    _opened(session, rt, ticket, inbound.correlation_id)
    body = render_body(rt.env, "ticket_ack", {"ticket": ticket, "service": rt.settings.service})
    note = TicketNote(
        body,
        kind="ticket_ack",
        dedupe_key=f"inbound:{inbound.id}:ticket",
        in_reply_to=msg.message_id,
        references=msg.references,
    )
    send_in_thread(session, rt, ticket, note, inbound)
    return f"ticket {ticket.number}"


def _new_ticket(
    session: Session, rt: Runtime, client: Client, *, sender: str, subject: str
) -> SupportTicket:
    """A stored ticket numbered «YYYY-NNNNN» in the one sequence of mail and web tickets."""
    now = rt.clock()
    seq = next_number(session, "ticket", now.year)
    ticket = SupportTicket(
        number=f"{now.year}-{seq:05d}",
        client_id=client.id,
        sender=sender,
        subject=subject,
        created_at=now,
    )
    session.add(ticket)
    session.flush()
    return ticket


def _opened(session: Session, rt: Runtime, ticket: SupportTicket, correlation_id: str) -> None:
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    record_event(
        session,
        entity="ticket",
        entity_id=ticket.id,
        event="ticket_opened",
        at=rt.clock(),
        to_state="open",
        correlation_id=correlation_id,
    )


def ticket_reply(c: Context) -> str:
    """A client's mail in a ticket's thread: kept once proven (authenticated or confirmed)."""
    session, msg = c.session, c.msg
    ticket = ticket_for(session, msg)
    if not (ticket is not None and ticket.id is not None):
        raise InvariantError("classified so")
    registered = {ticket.sender.lower()} | consent.client_addresses(session, ticket.client_id)
    if not consent.proven(c.rt, msg, registered):
        return consent.ask(c, action="ticket_reply", entity_id=ticket.id, ref=ticket.number)
    return accept_reply(session, c.rt, ticket, c.inbound, msg)


def accept_reply(
    session: Session,
    rt: Runtime,
    ticket: SupportTicket,
    inbound: InboundMessage,
    msg: ParsedMessage,
) -> str:
    """Keep the mail on the ticket, which opens again if closed."""
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    _record_in(session, ticket, inbound, msg, rt.clock())
    _reopen(session, rt, ticket, inbound.correlation_id)
    return f"added to ticket {ticket.number}"


def _reopen(session: Session, rt: Runtime, ticket: SupportTicket, correlation_id: str) -> None:
    """A client's message in a closed ticket opens it again."""
    if ticket.status == "open" or ticket.id is None:
        return
    record_event(
        session,
        entity="ticket",
        entity_id=ticket.id,
        event="ticket_reopened",
        at=rt.clock(),
        from_state=ticket.status,
        to_state="open",
        correlation_id=correlation_id,
    )
    ticket.status = "open"
    session.add(ticket)


def _record_in(
    session: Session,
    ticket: SupportTicket,
    inbound: InboundMessage,
    msg: ParsedMessage,
    now: datetime,
) -> None:
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    session.add(
        TicketMessage(
            ticket_id=ticket.id,
            direction="in",
            message_id=msg.message_id,
            inbound_id=inbound.id,
            created_at=now,
        )
    )


@dataclass(frozen=True)
class TicketNote:
    """Our mail in a ticket's thread: its text, kind, once-only key and place in the thread."""

    body: str
    kind: str
    dedupe_key: str
    in_reply_to: str
    references: tuple[str, ...]


def send_in_thread(
    session: Session,
    rt: Runtime,
    ticket: SupportTicket,
    note: TicketNote,
    inbound: InboundMessage | None = None,
) -> TicketMessage:
    """Queue our mail in the ticket's thread, to the address the ticket came from."""
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    now = rt.clock()
    kind, dedupe_key = note.kind, note.dedupe_key
    mail = Mail(
        to=(ticket.sender,),
        subject=ticket_subject(ticket),
        text=note.body,
        in_reply_to=note.in_reply_to,
        references=note.references,
    )
    row = enqueue(
        session,
        mail,
        Outgoing(
            dedupe_key=dedupe_key,
            kind=kind,
            inbound_id=inbound.id if inbound else None,
            correlation_id=inbound.correlation_id if inbound else f"t{ticket.id}",
            rate_limit=rt.settings.limits.replies_per_sender_per_hour if inbound else None,
            caps=rt.settings.limits if inbound else None,
        ),
        sender=rt.sender,
        now=now,
    )
    out = TicketMessage(
        ticket_id=ticket.id,
        direction="out",
        message_id=row.message_id,
        outbox_id=row.id,
        created_at=now,
    )
    session.add(out)
    return out


def admin_reply(session: Session, rt: Runtime, ticket: SupportTicket, text: str) -> TicketMessage:
    """The admin's answer, sent in the thread after the client's latest mail."""
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    thread = list(
        session.exec(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(col(TicketMessage.id))
        )
    )
    # a web message has no Message-ID to answer: the latest mail is what the reply follows
    latest_in = next(
        (m for m in reversed(thread) if m.direction == "in" and m.channel == "mail"), None
    )
    refs = tuple(dict.fromkeys(m.message_id for m in thread if m.message_id))
    body = render_body(
        rt.env, "ticket_reply", {"ticket": ticket, "text": text, "service": rt.settings.service}
    )
    note = TicketNote(
        body,
        kind="ticket_reply",
        dedupe_key=f"ticket:{ticket.id}:reply:{len(thread)}",
        in_reply_to=latest_in.message_id if latest_in else ticket.root_message_id,
        references=refs[-10:],
    )
    out = send_in_thread(session, rt, ticket, note)
    record_event(
        session,
        entity="ticket",
        entity_id=ticket.id,
        event="ticket_answered",
        at=rt.clock(),
        to_state=ticket.status,
    )
    return out


def close_ticket(session: Session, rt: Runtime, ticket: SupportTicket) -> bool:
    """Close the ticket; False when it was not open."""
    if ticket.status != "open":
        return False
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    record_event(
        session,
        entity="ticket",
        entity_id=ticket.id,
        event="ticket_closed",
        at=rt.clock(),
        from_state="open",
        to_state="closed",
    )
    ticket.status = "closed"
    session.add(ticket)
    return True


# ------------------------------------------------------------------ the personal account
def open_web_ticket(
    session: Session, rt: Runtime, client: Client, subject: str, text: str
) -> SupportTicket:
    """A ticket written in the personal account, acknowledged by mail as a mailed one.

    The ack goes to the client's registered address and starts the mail thread, so the
    client (and `mailbot tickets reply`) can go on by mail as well.
    """
    ticket = _new_ticket(session, rt, client, sender=client.email, subject=subject)
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    _record_web(session, rt, ticket, text)
    _opened(session, rt, ticket, f"t{ticket.id}")
    body = render_body(rt.env, "ticket_ack", {"ticket": ticket, "service": rt.settings.service})
    note = TicketNote(
        body, kind="ticket_ack", dedupe_key=f"ticket:{ticket.id}:ack", in_reply_to="", references=()
    )
    send_in_thread(session, rt, ticket, note)
    return ticket


def web_reply(session: Session, rt: Runtime, ticket: SupportTicket, text: str) -> TicketMessage:
    """The client's message written in the personal account; a closed ticket opens again."""
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    row = _record_web(session, rt, ticket, text)
    _reopen(session, rt, ticket, f"t{ticket.id}")
    return row


def _record_web(session: Session, rt: Runtime, ticket: SupportTicket, text: str) -> TicketMessage:
    if ticket.id is None:
        raise InvariantError("ticket.id is missing")
    row = TicketMessage(
        ticket_id=ticket.id, direction="in", channel="web", body=text, created_at=rt.clock()
    )
    session.add(row)
    session.flush()
    if row.id is None:
        raise InvariantError("row.id is missing")
    record_event(
        session,
        entity="ticket",
        entity_id=ticket.id,
        event="ticket_message_received",
        at=rt.clock(),
        to_state=ticket.status,
        correlation_id=f"t{ticket.id}",
        data={"channel": "web", "message": row.id},
    )
    return row
