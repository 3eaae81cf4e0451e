"""New applications and corrections (of applications and orders): validate, then reply."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

from sqlmodel import Session

from mailbot.billing.invoices import create_invoice, invoice_doc, opening_event
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.forms import blank_form_attachments
from mailbot.guard import Budget, guarded
from mailbot.handlers.filing import (
    FORM_LABEL,
    PRODUCTS_LABEL,
    attached_file,
    missing_file,
    pick,
    problem_dict,
    store_rows,
    wrong_format,
)
from mailbot.handlers.orders import evaluate_order
from mailbot.handlers.replies import reply_in_thread, reply_to
from mailbot.invariant import InvariantError
from mailbot.mail.message import ParsedMessage
from mailbot.mail.problem_text import count_phrase, render_problems
from mailbot.mail.render import FileAttachment, render_body
from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import Document, Location, ParseResult, Problem
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import ProductType
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, InboundMessage
from mailbot.storage.queries import client_by_requisites, next_number
from mailbot.workflow import must, transition


def new_application(
    session: Session, rt: Runtime, inbound: InboundMessage, msg: ParsedMessage
) -> str:
    """Open an application numbered EAN-YYYY-NNNNNN and evaluate its files."""
    now = rt.clock()
    seq = next_number(session, "application", now.year)
    form, products, _ = pick(msg)
    app = Application(
        number=f"EAN-{now.year}-{seq:06d}",
        sender=reply_to(msg),
        subject=msg.subject,
        root_message_id=msg.message_id,
        form_inbound_id=inbound.id if form else None,
        products_inbound_id=inbound.id if products else None,
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    session.flush()
    if app.id is None:
        raise InvariantError("app.id is missing")
    inbound.application_id = app.id
    return evaluate(session, rt, app, inbound, msg)


def correction(
    session: Session, rt: Runtime, app: Application, inbound: InboundMessage, msg: ParsedMessage
) -> str:
    """Corrected files in the thread of an application or order that needs fixing.

    The files the message carries replace the earlier ones, and the whole thread is checked
    again. An order whose requisites come from the database (no form of its own) takes only
    a product list by mail: whatever the correction carries counts as its product list.
    """
    form, products, _ = pick(msg)
    by_db = app.kind == "order" and app.form_inbound_id is None
    if form and not by_db:
        app.form_inbound_id = inbound.id
    if products or by_db:
        app.products_inbound_id = inbound.id
    must(
        transition(
            session,
            app,
            "correction_received",
            now=rt.clock(),
            correlation_id=inbound.correlation_id,
        )
    )
    if by_db:
        return evaluate_order(session, rt, app, inbound, msg)
    return evaluate(session, rt, app, inbound, msg)


Parsed = tuple[ParseResult[ApplicationForm] | None, ParseResult[list[ParsedRow]] | None]


def parse_pair(
    form: tuple[bytes, str] | None,
    products: tuple[bytes, str] | None,
    limits: Limits,
    types: tuple[ProductType, ...],
) -> ParseResult[Parsed]:
    """Both files of an application in one guarded call (module-level: the worker unpickles it)."""
    app_result = None if form is None else parse_application(*form, limits=limits)
    rows_result = (
        None if products is None else parse_products(*products, limits=limits, product_types=types)
    )
    return ParseResult((app_result, rows_result), [])


def read_files(
    session: Session,
    rt: Runtime,
    app: Application,
    msg: ParsedMessage,
    *,
    inbound_id: int | None = None,
) -> tuple[ApplicationForm | None, list[ParsedRow], list[Problem]]:
    """Parse the latest application and product list of this application thread."""
    current = (inbound_id, msg)
    form_att = attached_file(rt, session, app.form_inbound_id, "form", current=current)
    prod_att = attached_file(rt, session, app.products_inbound_id, "products", current=current)
    lim, limits, types = rt.settings.limits, rt.parse_limits, rt.product_types
    problems = wrong_format(msg)

    pair = functools.partial(
        parse_pair,
        None if form_att is None else (form_att.data, form_att.filename),
        None if prod_att is None else (prod_att.data, prod_att.filename),
        limits,
        types,
    )
    names = ", ".join(a.filename for a in (form_att, prod_att) if a is not None)
    both = guarded(
        pair,
        Location(file=names or "—"),
        Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb),
    )
    parsed_form, parsed_rows = both.value or (None, None)
    problems += both.problems  # the guard's own verdict: too slow, too big, crashed
    form: ApplicationForm | None = None
    rows: list[ParsedRow] = []
    if form_att is None:
        problems.append(missing_file(Document.application, FORM_LABEL))
    elif parsed_form is not None:
        form, problems = parsed_form.value, problems + parsed_form.problems
    if prod_att is None:
        problems.append(missing_file(Document.products, PRODUCTS_LABEL))
    elif parsed_rows is not None:
        rows, problems = list(parsed_rows.value or []), problems + parsed_rows.problems
    if form is not None and rows and form_att and prod_att:
        problems += check_pair(form, rows, form_att.filename, prod_att.filename)
    return form, rows, problems


def _form_dict(form: ApplicationForm) -> dict[str, Any]:
    out = dataclasses.asdict(form)
    out["notes"] = list(form.notes)
    if isinstance(form.date, dt.date):
        out["date"] = form.date.isoformat()
    return out


def evaluate(
    session: Session, rt: Runtime, app: Application, inbound: InboundMessage, msg: ParsedMessage
) -> str:
    """Validate the application's files: problems reply (needs_fix) or invoice (invoiced)."""
    if app.id is None:
        raise InvariantError("app.id is missing")
    now = rt.clock()
    form, rows, problems = read_files(session, rt, app, msg, inbound_id=inbound.id)
    cid = inbound.correlation_id
    if problems or form is None:
        app.problems = [problem_dict(p) for p in problems]
        must(
            transition(
                session,
                app,
                "form_invalid",
                now=now,
                correlation_id=cid,
                data={"problems": len(problems)},
            )
        )
        text_ctx = {
            "app": app,
            "problems_text": render_problems(problems, rt.env),
            "count": count_phrase(len(problems)),
            "service": rt.settings.service,
        }
        body = render_body(rt.env, "problems", text_ctx)
        _reply(
            session,
            rt,
            app,
            inbound,
            msg,
            kind="problems",
            body=body,
            attachments=blank_form_attachments(rt.product_types),
        )
        return "needs_fix"
    app.form, app.problems = _form_dict(form), []
    store_rows(session, app.id, rows)
    must(
        transition(
            session, app, "form_valid", now=now, correlation_id=cid, data={"rows": len(rows)}
        )
    )
    client = client_by_requisites(session, form.inn or "", form.kpp or "")
    if client is not None and client.login:
        app.kind, app.client_id = "order", client.id
    invoice = create_invoice(
        session,
        app,
        count=len(rows),
        new_client=app.kind != "order",
        settings=rt.settings,
        now=now,
        correlation_id=cid,
    )
    must(
        transition(
            session,
            app,
            opening_event(invoice),
            now=now,
            correlation_id=cid,
            data={"invoice": invoice.number},
        )
    )
    doc = invoice_doc(invoice, app, rt.settings)
    pdf = render_invoice_pdf(doc)
    ctx = {
        "app": app,
        "invoice": invoice,
        "doc": doc,
        "rows": rows,
        "form": form,
        "service": rt.settings.service,
    }
    body = render_body(rt.env, "invoice", ctx)
    attachment = FileAttachment(f"Счёт {invoice.number}.pdf", "application/pdf", pdf)
    extra = [form.email] if form.email else []
    _reply(
        session,
        rt,
        app,
        inbound,
        msg,
        kind="invoice",
        body=body,
        attachments=(attachment,),
        also=extra,
    )
    return "invoiced"


def _reply(
    session: Session,
    rt: Runtime,
    app: Application,
    inbound: InboundMessage,
    msg: ParsedMessage,
    *,
    kind: str,
    body: str,
    attachments: tuple[FileAttachment, ...] = (),
    also: list[str] | None = None,
) -> None:
    to = [reply_to(msg)]
    to += [a for a in (also or []) if a and a.lower() not in to]
    reply_in_thread(session, rt, app, inbound, msg, to=tuple(to), kind=kind, body=body,
                    attachments=attachments)  # fmt: skip
