"""Orders of a known client that sent only a product list from a registered address.

The requisites come from the database (the client's row and its latest application), the
list is validated like an application's, there is no registration fee, the balance pays
first (`create_invoice`), and products that already have codes are flagged, not re-coded.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
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
from mailbot.runtime import Runtime
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


def flagged_rows(rows: list[ParsedRow], coded: dict[int, str]) -> list[tuple[int, str, str]]:
    """(row, name, EAN) of each row whose product already has a code."""
    return [(r.row, r.name or "", coded[r.row]) for r in rows if r.row in coded]


def new_order(c: Context) -> str:
    """Open an order (kind "order") for the client and evaluate its product list."""
    return evaluate_order(c, open_order(c))


def open_order(c: Context) -> Application:
    """A new order (kind "order") of the message's client, linked to the message."""
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
    return app


def _read_products(c: Context, app: Application) -> tuple[list[ParsedRow], list[Problem]]:
    problems = wrong_format(c.msg)
    att = attached_file(c.rt, c.session, app.products_inbound_id, "products")
    if att is None:
        return [], [*problems, missing_file(Document.products, PRODUCTS_LABEL)]
    rows, found = read_products(c.rt, att.data, att.filename)
    return rows, problems + found


def read_products(rt: Runtime, data: bytes, name: str) -> tuple[list[ParsedRow], list[Problem]]:
    """The product list's rows and problems, parsed in the guarded worker (time, memory)."""
    lim = rt.settings.limits
    result = guarded(
        functools.partial(
            parse_products, data, name, limits=rt.parse_limits, product_types=rt.product_types
        ),
        Location(file=name, document=Document.products),
        Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb),
    )
    return list(result.value or []), list(result.problems)


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
    order = Order(app, client, flagged_rows(rows, coded))
    ctx["flagged"] = order.flagged
    accept_rows(c, order, fresh)
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
    event = invoice_order(c, order, fresh, use_balance=proven)
    if not proven and client.balance > 0:
        asked = consent.ask(c, action="order_balance", entity_id=app.id, ref=app.number)
        return f"invoiced; {asked}"
    return "paid from balance" if event == "paid_from_balance" else "invoiced"


@dataclass(frozen=True)
class Order:
    """An order being priced: the application, its client and the rows already coded."""

    app: Application
    client: Client
    flagged: list[tuple[int, str, str]]  # (row, name, the EAN it already has)


def accept_rows(c: Context, order: Order, fresh: list[ParsedRow]) -> None:
    """The list is valid: keep the rows that need codes (form_valid).

    The rows already coded are named in the event (the account's timeline shows them).
    """
    app = order.app
    if app.id is None:
        raise InvariantError("app.id is missing")
    app.problems = []
    store_rows(c.session, app.id, fresh)
    data: dict[str, Any] = {"rows": len(fresh)}
    if order.flagged:
        data["already_coded"] = [{"row": r, "name": n, "ean": e} for r, n, e in order.flagged]
    must(
        transition(
            c.session,
            app,
            "form_valid",
            now=c.rt.clock(),
            correlation_id=c.inbound.correlation_id,
            data=data,
        )
    )


def invoice_order(c: Context, order: Order, fresh: list[ParsedRow], *, use_balance: bool) -> str:
    """Invoice the fresh rows (the balance first when `use_balance`) and mail the invoice.

    Returns the application's opening event (paid_from_balance or invoice_issued).
    """
    session, rt, app, client = c.session, c.rt, order.app, order.client
    now, cid = rt.clock(), c.inbound.correlation_id
    invoice = create_invoice(
        session,
        app,
        count=len(fresh),
        new_client=False,
        settings=rt.settings,
        now=now,
        correlation_id=cid,
        use_balance=use_balance,
    )
    event = opening_event(invoice)
    must(
        transition(
            session, app, event, now=now, correlation_id=cid, data={"invoice": invoice.number}
        )
    )
    doc = invoice_doc(invoice, app, rt.settings)
    pdf = FileAttachment(f"Счёт {invoice.number}.pdf", "application/pdf", render_invoice_pdf(doc))
    ctx = {"app": app, "client": client, "service": rt.settings.service}
    body = render_body(
        rt.env,
        "order",
        {**ctx, "flagged": order.flagged, "invoice": invoice, "doc": doc, "rows": fresh},
    )
    _reply(c, app, client, Answer((), "", body, "invoice", attachments=(pdf,)))
    return event


def _reply(c: Context, app: Application, client: Client, answer: Answer) -> None:
    """To the registered address it came from and the client's e-mail, in the thread."""
    to = tuple(dict.fromkeys(a.lower() for a in (address_of(c.msg), client.email) if a))
    reply_in_thread(c, app, dataclasses.replace(answer, to=to), untitled="Заказ штрихкодов")


# ------------------------------------------------------------------ the personal account
@dataclass(frozen=True)
class Placed:
    """What a list uploaded in the personal account became."""

    app: Application | None  # None: every product already has a code, nothing was opened
    flagged: list[tuple[int, str, str]]
    event: str  # paid_from_balance | invoice_issued | "" (nothing opened)


def place_order(c: Context, rows: list[ParsedRow]) -> Placed:
    """A problem-free list uploaded by a logged-in client: the order, balance first.

    The log-in proves the client (by mail only a confirmation code does, as a From header
    proves nothing), so the balance is spent at once. The invoice mail goes as for an
    e-mailed order. A list whose products all have codes opens nothing (the page says so).
    """
    client = c.require_client()
    coded = already_coded(c.session, client.id or 0, rows)
    flagged = flagged_rows(rows, coded)
    fresh = [r for r in rows if r.row not in coded]
    if not fresh:
        return Placed(None, flagged, "")
    app = open_order(c)
    order = Order(app, client, flagged)
    accept_rows(c, order, fresh)
    event = invoice_order(c, order, fresh, use_balance=True)
    consent.remember_application(c.session, app.id)
    return Placed(app, flagged, event)
