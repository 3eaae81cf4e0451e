"""Who may do what by e-mail: registered addresses, proof, one-time confirmation codes.

The rules (README «Who may do what by e-mail»):
  * data (status) goes only to an address registered for the application or client;
  * an action that moves money or changes data runs when it comes from an authenticated
    registered address (`Sender.authenticated`), or after a confirmation: we mail the
    registered address a one-time code, and the action runs when a reply carrying that
    code comes back from that address (mailbot.handlers.confirm).

Codes carry 80 random bits (`secrets`), expire after `CODE_TTL`, are used once, and only
their SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from mailbot.handlers.context import Context
from mailbot.handlers.replies import Answer, reply
from mailbot.invariant import InvariantError
from mailbot.mail.classify import STATUS_WORDS, own_text
from mailbot.mail.identity import Sender, address_of, sender_of
from mailbot.mail.message import ParsedMessage
from mailbot.mail.render import render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, ClientAddress
from mailbot.storage.models_consent import ApplicationAddress, Confirmation
from mailbot.storage.queries import record_event

CODE_TTL = timedelta(days=3)
CODE_BYTES = 10  # 80 bits
CODE_RE = re.compile(r"\bMB-([A-Z2-7]{4})-([A-Z2-7]{4})-([A-Z2-7]{4})-([A-Z2-7]{4})\b", re.I)
ACTIONS = {
    "order_balance": "оплату заказа {ref} с вашего баланса",
    "contact_change": "изменение контактных данных (запрос № {ref})",
    "ticket_reply": "добавление письма в обращение № {ref}",
    "correction": "исправленные файлы заявки {ref}",
}


def new_code() -> str:
    """A fresh one-time code: «MB-» and 16 base32 characters (80 random bits)."""
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii")
    return "MB-" + "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode("ascii")).hexdigest()


def codes_in(msg: ParsedMessage) -> list[str]:
    """Every code-shaped token in the subject and the text, as written (pure)."""
    found = CODE_RE.finditer(f"{msg.subject}\n{msg.text[:20000]}")
    return list(dict.fromkeys("MB-" + "-".join(m.groups()).upper() for m in found))


def sender(rt: Runtime, msg: ParsedMessage) -> Sender:
    return sender_of(msg, rt.settings.authserv_id)


def client_addresses(session: Session, client_id: int | None) -> set[str]:
    if client_id is None:
        return set()
    rows = session.exec(select(ClientAddress.address).where(ClientAddress.client_id == client_id))
    return {a.lower() for a in rows}


def application_addresses(session: Session, app: Application) -> set[str]:
    """The address the application came from, its valid form's e-mail, its client's contacts."""
    known = {app.sender.lower()} if app.sender else set()
    email = str((app.form or {}).get("email") or "").strip().lower()
    if email:
        known.add(email)
    rows = session.exec(
        select(ApplicationAddress.address).where(ApplicationAddress.application_id == app.id)
    )
    return known | {a.lower() for a in rows} | client_addresses(session, app.client_id)


def may_write_in_thread(session: Session, app: Application, address: str) -> bool:
    """A mail in an application's thread counts only from an address registered for it."""
    return bool(address) and address.lower() in application_addresses(session, app)


def proven(rt: Runtime, msg: ParsedMessage, registered: set[str]) -> bool:
    """The sender is a registered address and our receiving server vouches for it."""
    who = sender(rt, msg)
    return who.authenticated and bool(who.address) and who.address in registered


def remember_application(session: Session, application_id: int | None) -> None:
    """Record the addresses the application is known by (after each message about it)."""
    if application_id is None:
        return
    app = session.get(Application, application_id)
    if app is None:
        return
    have = set(
        session.exec(
            select(ApplicationAddress.address).where(
                ApplicationAddress.application_id == application_id
            )
        )
    )
    email = str((app.form or {}).get("email") or "").strip().lower()
    for address in dict.fromkeys(a for a in (app.sender.lower(), email) if a):
        if address not in have:
            session.add(ApplicationAddress(application_id=application_id, address=address))
    session.flush()


def applications_of(session: Session, address: str) -> list[Application]:
    """Applications known by `address` (sender or form e-mail), oldest first."""
    if not address:
        return []
    address = address.lower()
    ids = set(
        session.exec(
            select(ApplicationAddress.application_id).where(ApplicationAddress.address == address)
        )
    )
    ids |= {
        a.id
        for a in session.exec(select(Application).where(Application.sender == address))
        if a.id is not None
    }
    if not ids:
        return []
    return list(
        session.exec(
            select(Application).where(col(Application.id).in_(ids)).order_by(col(Application.id))
        )
    )


def asks_status(msg: ParsedMessage) -> bool:
    return bool(STATUS_WORDS.search(msg.subject) or STATUS_WORDS.search(own_text(msg)[:2000]))


def ask(c: Context, *, action: str, entity_id: int, ref: str) -> str:
    """Store a waiting action and mail its one-time code to the sender's (registered) address.

    Callers ask only when the From address is registered for what the action touches and
    the message is not authenticated; the code goes to that From address (address_of).
    """
    session, rt, inbound = c.session, c.rt, c.inbound
    address = address_of(c.msg)
    if action not in ACTIONS or inbound.id is None or not address:
        raise InvariantError(f"cannot ask to confirm {action!r}")
    now = rt.clock()
    code = new_code()
    row = Confirmation(
        code_hash=code_hash(code),
        action=action,
        entity_id=entity_id,
        address=address,
        inbound_id=inbound.id,
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    session.add(row)
    session.flush()
    if row.id is None:
        raise InvariantError("row.id is missing")
    record_event(
        session,
        entity="confirmation",
        entity_id=row.id,
        event="confirmation_requested",
        at=now,
        to_state=row.status,
        correlation_id=inbound.correlation_id,
        data={"action": action, "entity_id": entity_id, "address": row.address},
    )
    what = ACTIONS[action].format(ref=ref)
    body = render_body(
        rt.env,
        "confirm_request",
        {
            "what": what,
            "code": code,
            "subject": c.msg.subject,
            "days": CODE_TTL.days,
            "service": rt.settings.service,
        },
    )
    subject = f"Подтвердите {what}"  # the code only in the text: subjects get logged
    reply(c, Answer(to=row.address, subject=subject, text=body, kind="confirm_request"))
    return f"waiting for confirmation {row.id} ({action})"


def waiting_for(
    session: Session, msg: ParsedMessage, address: str, now: datetime
) -> Confirmation | None:
    """The waiting confirmation whose code this message from `address` carries, if any."""
    if not address:
        return None
    for code in codes_in(msg):
        row = session.exec(
            select(Confirmation).where(
                Confirmation.code_hash == code_hash(code),
                Confirmation.status == "waiting",
                Confirmation.address == address.lower(),
            )
        ).first()
        if row is not None and _aware(row.expires_at, now) > now:
            return row
    return None


def _aware(at: datetime, now: datetime) -> datetime:
    """SQLite drops the zone of a stored datetime; read it back in `now`'s zone."""
    return at.replace(tzinfo=now.tzinfo) if at.tzinfo is None and now.tzinfo else at
