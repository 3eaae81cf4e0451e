"""Contact changes by e-mail: parsed from the client's text, queued for an admin.

Nothing changes until an admin approves (`mailbot requests approve N`): a registered sender
address is not proof of identity. A request reaches the admin only once proven: from an
authenticated registered address, or confirmed by a reply carrying a one-time code
(status `unconfirmed` until then; mailbot.handlers.consent). The client is told on receipt
and on decision, at its registered addresses; a new e-mail address is told too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session

from mailbot.handlers import consent
from mailbot.handlers.context import Context
from mailbot.invariant import InvariantError
from mailbot.mail.classify import own_text
from mailbot.mail.identity import address_of
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body, reply_subject
from mailbot.parsers.fields import check_phone
from mailbot.parsers.problems import Location
from mailbot.runtime import Runtime
from mailbot.storage.models import Client, InboundMessage
from mailbot.storage.models_clients import ContactChangeRequest
from mailbot.storage.queries import add_client_address, record_event

FIELD_NAMES = {
    "phone": "телефон",
    "email": "e-mail",
    "contact_name": "контактное лицо",
    "address": "адрес",
}
# Checked in order: "адрес электронной почты" is an e-mail, plain "адрес" is the address.
_LABELS = (
    ("email", re.compile(r"(e-?mail|адрес\s+эл\w*\.?\s*почт\w*|эл\w*\.?\s*почт\w*|почт\w*)$")),
    ("phone", re.compile(r"(телефон\w*|тел\.?|phone|моб\w*(\s+телефон\w*)?)$")),
    ("contact_name", re.compile(r"(контактное\s+лицо|контакт|ф\.?и\.?о\.?|ответственн\w*)$")),
    ("address", re.compile(r"((юридическ\w*|почтов\w*)\s+)?адрес\w*$")),
)
_LINE = re.compile(
    r"^\s*(?:(?:нов\w*|измен\w*)\s+)?(?P<label>[^:–—]{1,40}?)\s*[:–—]\s*(?P<value>.+)$", re.I
)


@dataclass(frozen=True)
class RequestedChanges:
    """What the client asked for: valid new values, and the values we could not accept."""

    changes: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


def requested_changes(text: str) -> RequestedChanges:
    """Read «Телефон: …», «E-mail: …», «Контактное лицо: …», «Адрес: …» lines (pure)."""
    changes: dict[str, str] = {}
    invalid: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        label, value = m["label"].strip().lower(), m["value"].strip()
        name = next((n for n, rx in _LABELS if rx.fullmatch(label)), None)
        if name is None or name in changes or not value:
            continue
        checked = checked_value(name, value)
        if checked is None:
            invalid[name] = value[:200]
        else:
            changes[name] = checked
    return RequestedChanges(changes, invalid)


def checked_value(name: str, value: str) -> str | None:
    """The value of field `name` as stored (phone +7…, e-mail lower-case), None if invalid."""
    where = Location(file="", field=FIELD_NAMES[name])
    if name == "phone":
        phone = check_phone(value, where)
        return phone if isinstance(phone, str) else None
    if name == "email":
        try:  # syntax only; test_environment: *.test addresses are accepted too
            valid = validate_email(value, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            return None
        return str(valid.normalized).lower()
    return value[:500] if name == "address" else value[:200]


def request_change(c: Context, client: Client) -> str | None:
    """Queue the request and acknowledge it; None when the mail names no field we know.

    Unproven (not authenticated), it waits for a confirmation code (mailbot.handlers.consent).
    """
    session, rt, inbound, msg = c.session, c.rt, c.inbound, c.msg
    asked = requested_changes(own_text(msg))
    if not asked.changes and not asked.invalid:
        return None
    now = rt.clock()
    # Queued for an admin only once proven: authenticated, or confirmed by a reply with a code.
    proven = consent.proven(rt, msg, consent.client_addresses(session, client.id))
    request = ContactChangeRequest(
        client_id=client.id or 0,
        sender=address_of(msg),
        changes=asked.changes,
        previous={k: getattr(client, k) for k in asked.changes},
        status=("pending" if proven else "unconfirmed") if asked.changes else "rejected",
        reason="" if asked.changes else "no valid value",
        inbound_id=inbound.id,
        message_id=msg.message_id,
        subject=msg.subject,
        created_at=now,
        decided_at=None if asked.changes else now,
    )
    request_id = _filed(
        session,
        request,
        now,
        inbound.correlation_id,
        {"fields": sorted(asked.changes), "invalid": sorted(asked.invalid)},
    )
    if request.status == "unconfirmed":
        return consent.ask(c, action="contact_change", entity_id=request_id, ref=str(request_id))
    notify(session, rt, request, client, Received(inbound, asked.invalid))
    return f"contact change request {request_id}" if asked.changes else "contact change: invalid"


def confirmed(
    session: Session, rt: Runtime, request: ContactChangeRequest, inbound: InboundMessage
) -> str:
    """The client confirmed an unconfirmed request: now it waits for an admin's decision."""
    if request.status != "unconfirmed" or request.id is None:
        return f"contact change request {request.id} is {request.status}"
    client = session.get(Client, request.client_id)
    if client is None:
        raise InvariantError("client is missing")
    request.status = "pending"
    session.add(request)
    record_event(
        session,
        entity="contact_request",
        entity_id=request.id,
        event="contact_change_confirmed",
        at=rt.clock(),
        from_state="unconfirmed",
        to_state="pending",
        correlation_id=inbound.correlation_id,
    )
    notify(session, rt, request, client, Received(inbound, {}))
    return f"contact change request {request.id} confirmed, waits for an admin"


def _registered(client: Client, request: ContactChangeRequest) -> list[str]:
    old_email = str(request.previous.get("email") or client.email)
    return list(dict.fromkeys(a.lower() for a in (old_email, request.sender) if a))


@dataclass(frozen=True)
class Received:
    """The mail that asked for a change (None: the personal account's form), and the fields
    in it we could not accept."""

    inbound: InboundMessage | None
    invalid: dict[str, str]


def notify(
    session: Session,
    rt: Runtime,
    request: ContactChangeRequest,
    client: Client,
    received: Received | None = None,
) -> None:
    """Tell the registered addresses (and a new e-mail address) about the request.

    With `received`, that it was received (stage "received"); else its decision
    (`request.status`, approved or rejected).
    """
    stage = "received" if received is not None else request.status
    inbound = received.inbound if received is not None else None
    invalid = received.invalid if received is not None else None
    ctx = {
        "request": request,
        "client": client,
        "stage": stage,
        "names": FIELD_NAMES,
        "invalid": invalid or {},
        "service": rt.settings.service,
    }
    new_email = str(request.changes.get("email") or "")
    old = _registered(client, request)
    groups = [("registered", old)]
    if new_email and new_email not in old and request.changes:
        groups.append(("new_address", [new_email]))
    for audience, to in groups:
        body = render_body(rt.env, "contact_change", {**ctx, "audience": audience})
        mail = Mail(
            to=tuple(to),
            subject=reply_subject(request.subject or "Изменение контактных данных", ""),
            text=body,
            in_reply_to=request.message_id,
        )
        enqueue(
            session,
            mail,
            Outgoing(
                dedupe_key=f"contact:{request.id}:{stage}:{audience}",
                kind=f"contact_{stage}",
                inbound_id=inbound.id if inbound else None,
                correlation_id=inbound.correlation_id if inbound else f"r{request.id}",
                rate_limit=rt.settings.limits.replies_per_sender_per_hour if inbound else None,
                caps=rt.settings.limits if inbound else None,
            ),
            sender=rt.sender,
            now=rt.clock(),
        )


def decide(
    session: Session,
    rt: Runtime,
    request: ContactChangeRequest,
    *,
    approve: bool,
    reason: str = "",
) -> str | None:
    """Approve (apply the changes) or reject a pending request; an error text otherwise."""
    if request.status != "pending":
        return f"request {request.id} is already {request.status}"
    client = session.get(Client, request.client_id)
    if not (client is not None and request.id is not None):
        raise InvariantError("client is not None and request.id is not None")
    now = rt.clock()
    if approve:
        for name, value in request.changes.items():
            setattr(client, name, value)
        if "email" in request.changes:
            add_client_address(session, client, str(request.changes["email"]))
        session.add(client)
    request.status = "approved" if approve else "rejected"
    request.reason, request.decided_at = reason, now
    session.add(request)
    record_event(
        session,
        entity="contact_request",
        entity_id=request.id,
        event="contact_change_approved" if approve else "contact_change_rejected",
        at=now,
        from_state="pending",
        to_state=request.status,
        data={"changes": request.changes, "previous": request.previous, "reason": reason},
    )
    notify(session, rt, request, client)
    return None


# ------------------------------------------------------------------ the personal account
def request_web_change(
    session: Session, rt: Runtime, client: Client, changes: dict[str, str]
) -> ContactChangeRequest:
    """A request made in the personal account (values checked by `checked_value`).

    The log-in proves the client, so it waits for the admin at once ("pending"); its sender
    is the registered address, where the receipt and the decision are mailed.
    """
    if client.id is None:
        raise InvariantError("client.id is missing")
    now = rt.clock()
    request = ContactChangeRequest(
        client_id=client.id,
        sender=client.email.lower(),
        changes=changes,
        previous={k: getattr(client, k) for k in changes},
        status="pending",
        created_at=now,
    )
    _filed(session, request, now, "", {"fields": sorted(changes), "invalid": [], "channel": "web"})
    notify(session, rt, request, client, Received(None, {}))
    return request


def _filed(
    session: Session,
    request: ContactChangeRequest,
    now: datetime,
    correlation_id: str,
    data: dict[str, Any],
) -> int:
    """Insert a change request (mail or web) with its `contact_change_requested` event."""
    session.add(request)
    session.flush()
    if request.id is None:
        raise InvariantError("request.id is missing")
    record_event(
        session,
        entity="contact_request",
        entity_id=request.id,
        event="contact_change_requested",
        at=now,
        to_state=request.status,
        correlation_id=correlation_id or f"r{request.id}",
        data=data,
    )
    return request.id
