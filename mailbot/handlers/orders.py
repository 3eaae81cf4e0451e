"""Orders of a known client that sent only a product list from a registered address.

The requisites come from the database (the client's row and its latest application), the
list is validated like an application's, there is no registration fee, the balance pays
first (`create_invoice`), and products that already have codes are flagged, not re-coded.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from sqlmodel import Session, col, select

from mailbot.billing.invoices import create_invoice, invoice_doc, opening_event
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.guard import Budget, guarded
from mailbot.handlers import consent
from mailbot.handlers.context import Context
from mailbot.handlers.filing import (
    PRODUCTS_LABEL,
    attached_file,
    missing_file,
    pick,
    problem_dict,
    store_rows,
    wrong_format,
)
from mailbot.handlers.replies import Answer, reply_in_thread
from mailbot.invariant import InvariantError
from mailbot.mail.identity import address_of
from mailbot.mail.message import ParsedMessage
from mailbot.mail.problem_text import count_phrase, render_problems
from mailbot.mail.render import FileAttachment, render_body
from mailbot.parsers.problems import Document, Location, Problem
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.parsers.products_xlsx import parse_products
from mailbot.storage.models import Application, Barcode, Client, ProductRow
from mailbot.storage.queries import next_number
from mailbot.workflow import must, transition


def is_order(msg: ParsedMessage, client: Client | None) -> bool:
    """A registered address sent a product list and no application form."""
    form, products, _ = pick(msg)
    return client is not None and form is None and products is not None


def requisites(session: Session, client: Client) -> dict[str, Any]:
    """The client's requisites as an application form: its latest form, updated by its row."""
    applications = session.exec(
        select(Application)
        .where(Application.client_id == client.id)
        .order_by(col(Application.id).desc())
    )
    # the latest with a form; not `form != {}` in SQL: PostgreSQL's json type has no `<>`
    latest = next((a for a in applications if a.form), None)
    form = dict(latest.form) if latest is not None else {}
    form.update(
        org_name=client.org_name,
        inn=client.inn,
        kpp=client.kpp or None,
        ogrn=client.ogrn or form.get("ogrn"),
        email=client.email,
        phone=client.phone or form.get("phone"),
        contact_name=client.contact_name or form.get("contact_name"),
        legal_address=client.address or form.get("legal_address") or "",
    )
    return form


def product_key(name: str) -> str:
    """A product name compared case-, quote- and space-insensitively."""
    return re.sub(r"\s+", " ", re.sub(r"[«»\"'“”„]", "", name)).strip().casefold()


def already_coded(session: Session, client_id: int, rows: list[ParsedRow]) -> dict[int, str]:
    """Row number → the EAN already issued to this client for a product of the same name."""
    issued = session.exec(
        select(ProductRow.name, Barcode.ean)
        .join(Barcode, col(Barcode.product_row_id) == col(ProductRow.id))
        .join(Application, col(Application.id) == col(ProductRow.application_id))
        .where(Application.client_id == client_id)
        .order_by(col(Barcode.id))
    )
    by_name: dict[str, str] = {}
    for name, ean in issued:
        by_name.setdefault(product_key(name), ean)
    return {
        r.row: by_name[product_key(r.name or "")]
        for r in rows
        if product_key(r.name or "") in by_name
    }


def new_order(c: Context) -> str:
    """Open an order (kind "order") for the client and evaluate its product list."""
    session, inbound, msg, client = c.session, c.inbound, c.msg, c.require_client()
    now = c.rt.clock()
    seq = next_number(session, "application", now.year)
    app = Application(
        number=f"EAN-{now.year}-{seq:06d}",
        kind="order",
        client_id=client.id,
        sender=address_of(msg),  # registered; a Reply-To is never where client data goes
        subject=msg.subject,
        root_message_id=msg.message_id,
        products_inbound_id=inbound.id,
        form=requisites(session, client),
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    session.flush()
    inbound.application_id = app.id
    return evaluate_order(c, app)


def _read_products(c: Context, app: Application) -> tuple[list[ParsedRow], list[Problem]]:
    rt = c.rt
    problems = wrong_format(c.msg)
    att = attached_file(rt, c.session, app.products_inbound_id, "products")
    if att is None:
        return [], [*problems, missing_file(Document.products, PRODUCTS_LABEL)]
    lim, limits, types = rt.settings.limits, rt.parse_limits, rt.product_types
    data, name = att.data, att.filename
    result = guarded(
        functools.partial(parse_products, data, name, limits=limits, product_types=types),
        Location(file=name, document=Document.products),
        Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb),
    )
    return list(result.value or []), problems + result.problems


def evaluate_order(c: Context, app: Application) -> str:
    """Problems reply (needs_fix), «all coded already» (cancelled) or invoice."""
    session, rt, inbound = c.session, c.rt, c.inbound
    if not (app.id is not None and app.client_id is not None):
        raise InvariantError("app.id is not None and app.client_id is not None")
    now, cid = rt.clock(), inbound.correlation_id
    client = session.get(Client, app.client_id)
    if client is None:
        raise InvariantError("client is missing")
    rows, problems = _read_products(c, app)
    ctx: dict[str, Any] = {"app": app, "client": client, "service": rt.settings.service}
    if problems or not rows:
        app.problems = [problem_dict(p) for p in problems]
        must(transition(session, app, "form_invalid", now=now, correlation_id=cid))
        ctx.update(
            problems_text=render_problems(problems, rt.env), count=count_phrase(len(problems))
        )
        _reply(c, app, client, Answer((), "", render_body(rt.env, "problems", ctx), "problems"))
        return "needs_fix"
    coded = already_coded(session, client.id or 0, rows)
    fresh = [r for r in rows if r.row not in coded]
    ctx["flagged"] = [(r.row, r.name, coded[r.row]) for r in rows if r.row in coded]
    app.problems = []
    store_rows(session, app.id, fresh)
    must(
        transition(
            session, app, "form_valid", now=now, correlation_id=cid, data={"rows": len(fresh)}
        )
    )
    if not fresh:
        must(
            transition(
                session, app, "cancelled", now=now, correlation_id=cid, data={"reason": "all coded"}
            )
        )
        body = render_body(rt.env, "order", {**ctx, "invoice": None, "rows": []})
        _reply(c, app, client, Answer((), "", body, "order_coded"))
        return "cancelled: every product already has a code"
    # The balance is spent only for a proven sender; otherwise it waits for a confirmation.
    proven = consent.proven(rt, c.msg, consent.client_addresses(session, client.id))
    invoice = create_invoice(
        session,
        app,
        count=len(fresh),
        new_client=False,
        settings=rt.settings,
        now=now,
        correlation_id=cid,
        use_balance=proven,
    )
    event = opening_event(invoice)
    must(
        transition(
            session, app, event, now=now, correlation_id=cid, data={"invoice": invoice.number}
        )
    )
    doc = invoice_doc(invoice, app, rt.settings)
    pdf = FileAttachment(f"Счёт {invoice.number}.pdf", "application/pdf", render_invoice_pdf(doc))
    body = render_body(rt.env, "order", {**ctx, "invoice": invoice, "doc": doc, "rows": fresh})
    _reply(c, app, client, Answer((), "", body, "invoice", attachments=(pdf,)))
    if not proven and client.balance > 0:
        asked = consent.ask(c, action="order_balance", entity_id=app.id, ref=app.number)
        return f"invoiced; {asked}"
    return "paid from balance" if event == "paid_from_balance" else "invoiced"


def _reply(c: Context, app: Application, client: Client, answer: Answer) -> None:
    """To the registered address it came from and the client's e-mail, in the thread."""
    to = tuple(dict.fromkeys(a.lower() for a in (address_of(c.msg), client.email) if a))
    reply_in_thread(c, app, dataclasses.replace(answer, to=to), untitled="Заказ штрихкодов")
