"""A reply carrying a one-time code from the address it was sent to: the waiting action runs.

The action was stored by `consent.ask` with the message that asked for it; that message
is read back from the archive and the action runs as if it had been proven at once.
"""

from __future__ import annotations

import dataclasses

from sqlmodel import Session, col, select

from mailbot.billing.money import format_rub
from mailbot.billing.payments import spend_balance
from mailbot.handlers import applications, consent, contacts, support
from mailbot.handlers.context import Context
from mailbot.handlers.replies import Answer, reply
from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw
from mailbot.mail.message import ParsedMessage, parse_message
from mailbot.mail.render import render_body
from mailbot.storage.models import (
    Application,
    Client,
    InboundMessage,
    Invoice,
    InvoiceStatus,
    SupportTicket,
)
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.models_clients import ContactChangeRequest
from mailbot.storage.models_consent import Confirmation
from mailbot.storage.queries import record_event


def confirm(c: Context, row: Confirmation) -> str:
    """Use the code once, run its action, thank the sender."""
    if row.id is None:
        raise InvariantError("row.id is missing")
    now = c.rt.clock()
    row.status, row.used_at, row.used_by_inbound_id = "used", now, c.inbound.id
    c.session.add(row)
    record_event(
        c.session,
        entity="confirmation",
        entity_id=row.id,
        event="confirmation_used",
        at=now,
        from_state="waiting",
        to_state="used",
        correlation_id=c.inbound.correlation_id,
        data={"action": row.action, "entity_id": row.entity_id},
    )
    original = c.session.get(InboundMessage, row.inbound_id)
    if original is None:
        raise InvariantError("archived messages are never deleted")
    msg = parse_message(read_raw(c.rt.settings.archive_dir, original.archive_path))
    outcome, ref, result = _run(c, row, original, msg)
    if row.action in ("correction", "order_balance"):  # a corrected form may name a new e-mail
        consent.remember_application(c.session, row.entity_id)
    what = consent.ACTIONS[row.action].format(ref=ref)
    text = render_body(
        c.rt.env, "confirmed", {"what": what, "result": result, "service": c.rt.settings.service}
    )
    reply(c, Answer(to=row.address, subject=f"Подтверждено: {what}", text=text, kind="confirmed"))
    return f"confirmed {row.id}: {outcome}"


def _run(
    c: Context, row: Confirmation, original: InboundMessage, msg: ParsedMessage
) -> tuple[str, str, str]:
    """(outcome for the log, reference for the text, a sentence for the sender)."""
    s = c.session
    if row.action == "contact_change":
        request = s.get(ContactChangeRequest, row.entity_id)
        if request is None:
            raise InvariantError("requests are never deleted")
        outcome = contacts.confirmed(s, c.rt, request, c.inbound)
        return outcome, str(request.id), "Запрос передан администратору; о решении мы сообщим."
    if row.action == "ticket_reply":
        ticket = s.get(SupportTicket, row.entity_id)
        if ticket is None:
            raise InvariantError("tickets are never deleted")
        return support.accept_reply(s, c.rt, ticket, original, msg), ticket.number, ""
    app = s.get(Application, row.entity_id)
    if app is None:
        raise InvariantError("applications are never deleted")
    if row.action == "correction":
        return _correction(c, app, original, msg), app.number, "Файлы приняты к проверке."
    if row.action == "order_balance":
        outcome, result = _spend_balance(s, c, app)
        return outcome, app.number, result
    raise InvariantError(f"unknown action {row.action!r}")


def _correction(c: Context, app: Application, original: InboundMessage, msg: ParsedMessage) -> str:
    """The confirmed correction, run as the original message (its files, its inbound row)."""
    if app.state != S.needs_fix:
        return f"{app.number} is {app.state} now: correction not applied"
    original.application_id = app.id
    c.session.add(original)
    return applications.correction(dataclasses.replace(c, inbound=original, msg=msg, app=app))


def _spend_balance(session: Session, c: Context, app: Application) -> tuple[str, str]:
    """Pay the order's open invoice from the client's balance, as far as the balance goes."""
    invoice = session.exec(
        select(Invoice)
        .where(Invoice.application_id == app.id)
        .order_by(col(Invoice.id).desc())
        .with_for_update()
    ).first()
    if invoice is None or invoice.status != InvoiceStatus.issued or app.state != S.invoiced:
        return f"{app.number} is {app.state}: balance not used", "Счёт уже оплачен или закрыт."
    client = session.exec(
        select(Client).where(Client.id == app.client_id).with_for_update()
    ).first()
    if client is None or invoice.id is None:
        raise InvariantError("an order always has its client")
    spent = spend_balance(
        session, invoice, app, client, now=c.rt.clock(), correlation_id=c.inbound.correlation_id
    )
    if isinstance(spent, str):
        return "balance is empty", f"Баланс пуст; счёт № {invoice.number} ждёт оплаты."
    if not spent.paid:
        return (
            f"{spent.used} from balance, {spent.due} due",
            f"С баланса списано {format_rub(spent.used)} руб.; "
            f"по счёту № {invoice.number} к оплате осталось {format_rub(spent.due)} руб.",
        )
    return (
        "paid from balance",
        f"С баланса списано {format_rub(spent.used)} руб.; счёт № {invoice.number} оплачен, "
        "штрихкоды готовятся.",
    )
