"""Unsubscribe mail: honoured when it proves it answers our mail to that client.

Proof is the client's token (in the subject of the `List-Unsubscribe` mailto, or quoted
from a news mail), or a reply from the client's own address whose References name a news
mail we sent to that address (our Message-IDs are random: nobody computes one). A
registered address without proof gets a confirmation request at the client's e-mail;
anyone else is only recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mailbot.handlers.context import Context
from mailbot.invariant import InvariantError
from mailbot.mail.identity import address_of
from mailbot.mail.message import ParsedMessage
from mailbot.mail.news import token_for, unsubscribe_header
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body, reply_subject
from mailbot.storage.models import Client, ClientAddress, OutboxMessage
from mailbot.storage.models_clients import NewsDelivery, SubscriptionToken
from mailbot.storage.queries import record_event

TOKEN_RE = re.compile(r"\b([0-9a-f]{20})\b")


def proven_client(session: Session, msg: ParsedMessage) -> Client | None:
    """The client whose token this message carries, or whose news mail it answers.

    A token (random, per client, in our news mail's List-Unsubscribe and text) is proof by
    itself. A reference to one of our news mails counts only when the message comes from
    an address that news mail was sent to and that address is the client's (its e-mail or
    an address it is known by): our Message-IDs are random, but a mail forwarded to
    someone else carries them too.
    """
    for token in TOKEN_RE.findall(f"{msg.subject}\n{msg.text}"):
        row = session.exec(
            select(SubscriptionToken).where(SubscriptionToken.token == token)
        ).first()
        if row is not None:
            return session.get(Client, row.client_id)
    sender = address_of(msg)
    if not msg.thread_ids or not sender:
        return None
    hits = session.exec(
        select(NewsDelivery.client_id, OutboxMessage.recipients)
        .join(OutboxMessage, col(OutboxMessage.id) == col(NewsDelivery.outbox_id))
        .where(
            col(OutboxMessage.message_id).in_(list(msg.thread_ids)),
            col(OutboxMessage.random_id).is_(True),  # a computable id proves nothing
        )
    ).all()
    for client_id, recipients in hits:
        client = session.get(Client, client_id)
        if client is None or sender not in {r.lower() for r in recipients}:
            continue
        known = session.exec(
            select(ClientAddress.id).where(
                ClientAddress.client_id == client_id, ClientAddress.address == sender
            )
        ).first()
        if sender == client.email.lower() or known is not None:
            return client
    return None


def unsubscribe(c: Context) -> str:
    """Unsubscribe the proven client and confirm; else ask the registered address to confirm."""
    session, rt, inbound, msg, sender_client = c.session, c.rt, c.inbound, c.msg, c.client
    client = proven_client(session, msg)
    if client is None:
        if sender_client is None:
            return "unsubscribe: unknown sender, recorded"
        _mail(c, sender_client, "unsubscribe_confirm")
        return "unsubscribe: confirmation requested"
    change = Subscription(
        subscribed=False,
        at=rt.clock(),
        correlation_id=inbound.correlation_id,
        data={"from": address_of(msg)},
    )
    if not set_subscription(session, client, change):
        return "unsubscribe: already unsubscribed"
    _mail(c, client, "unsubscribed")
    return "unsubscribed"


@dataclass(frozen=True)
class Subscription:
    """A change of a client's news subscription: by mail (unsubscribe) or on the web."""

    subscribed: bool
    at: datetime
    correlation_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def set_subscription(session: Session, client: Client, change: Subscription) -> bool:
    """Set `Client.unsubscribed` with its event in the caller's transaction; False if unchanged."""
    if client.id is None:
        raise InvariantError("client.id is missing")
    if client.unsubscribed != change.subscribed:
        return False
    client.unsubscribed = not change.subscribed
    session.add(client)
    record_event(
        session,
        entity="client",
        entity_id=client.id,
        event="client_subscribed" if change.subscribed else "client_unsubscribed",
        at=change.at,
        correlation_id=change.correlation_id,
        data=change.data,
    )
    return True


def _mail(c: Context, client: Client, kind: str) -> None:
    """A short note to the client's e-mail (never to an unproven sender)."""
    session, rt, inbound, msg = c.session, c.rt, c.inbound, c.msg
    if client.id is None:
        raise InvariantError("client.id is missing")
    token = token_for(session, client.id)
    ctx = {"kind": kind, "token": token, "service": rt.settings.service}
    headers = {}
    if kind == "unsubscribe_confirm":
        headers["List-Unsubscribe"] = unsubscribe_header(rt.settings.service.email, token)
    mail = Mail(
        to=(client.email,),
        subject=reply_subject(msg.subject or "Отписка от новостей", ""),
        text=render_body(rt.env, "unsubscribe", ctx),
        in_reply_to=msg.message_id if address_of(msg) == client.email else "",
        extra_headers=headers,
    )
    enqueue(
        session,
        mail,
        Outgoing(
            dedupe_key=f"inbound:{inbound.id}:{kind}",
            kind=kind,
            inbound_id=inbound.id,
            correlation_id=inbound.correlation_id,
            rate_limit=rt.settings.limits.replies_per_sender_per_hour,
        ),
        sender=rt.sender,
        now=rt.clock(),
    )
