"""New applications and corrections (of applications and orders): validate, then reply."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from datetime import datetime
from typing import Any

from mailbot.billing.invoices import create_invoice, invoice_doc, opening_event
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.forms import blank_form_attachments
from mailbot.guard import Budget, guarded
from mailbot.handlers import consent
from mailbot.handlers.context import Context
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
from mailbot.handlers.replies import Answer, reply_in_thread, reply_to
from mailbot.invariant import InvariantError
from mailbot.mail.problem_text import count_phrase, render_problems
from mailbot.mail.render import FileAttachment, render_body
from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import Document, Location, ParseResult, Problem
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import ProductType
from mailbot.storage.models import Application
from mailbot.storage.queries import client_by_requisites, next_number
from mailbot.workflow import must, transition


def new_application(c: Context) -> str:
    """Open an application numbered EAN-YYYY-NNNNNN and evaluate its files."""
    session, inbound, msg = c.session, c.inbound, c.msg
    now = c.rt.clock()
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
    return evaluate(c, app)


def correction(c: Context) -> str:
    """Corrected files in the thread of an application or order that needs fixing.

    The files the message carries replace the earlier ones, and the whole thread is checked
    again. An order whose requisites come from the database (no form of its own) takes only
    a product list by mail: whatever the correction carries counts as its product list.
    """
    app, inbound = c.require_app(), c.inbound
    form, products, _ = pick(c.msg)
    by_db = app.kind == "order" and app.form_inbound_id is None
    if form and not by_db:
        app.form_inbound_id = inbound.id
    if products or by_db:
        app.products_inbound_id = inbound.id
    must(
        transition(
            c.session,
            app,
            "correction_received",
            now=c.rt.clock(),
            correlation_id=inbound.correlation_id,
        )
    )
    return evaluate_order(c, app) if by_db else evaluate(c, app)


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
    c: Context, app: Application
) -> tuple[ApplicationForm | None, list[ParsedRow], list[Problem]]:
    """Parse the latest application and product list of this application thread."""
    rt, session, msg = c.rt, c.session, c.msg
    current = (c.inbound.id, msg)
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


def evaluate(c: Context, app: Application) -> str:
    """Validate the application's files: problems reply (needs_fix) or invoice (invoiced)."""
    if app.id is None:
        raise InvariantError("app.id is missing")
    now = c.rt.clock()
    form, rows, problems = read_files(c, app)
    if problems or form is None:
        return _ask_for_fixes(c, app, problems, now)
    app.form, app.problems = _form_dict(form), []
    store_rows(c.session, app.id, rows)
    cid = c.inbound.correlation_id
    must(
        transition(
            c.session, app, "form_valid", now=now, correlation_id=cid, data={"rows": len(rows)}
        )
    )
    client = client_by_requisites(c.session, form.inn or "", form.kpp or "")
    if client is not None and client.login:
        app.kind, app.client_id = "order", client.id
    return _send_invoice(c, app, (form, rows), now)


def _ask_for_fixes(c: Context, app: Application, problems: list[Problem], now: datetime) -> str:
    """Keep the problems, move to needs_fix, send them with blank forms."""
    rt = c.rt
    app.problems = [problem_dict(p) for p in problems]
    must(
        transition(
            c.session,
            app,
            "form_invalid",
            now=now,
            correlation_id=c.inbound.correlation_id,
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
    attachments = blank_form_attachments(rt.product_types)
    answer = Answer((reply_to(c.msg),), "", body, "problems", attachments=attachments)
    reply_in_thread(c, app, answer)
    return "needs_fix"


def _send_invoice(
    c: Context, app: Application, valid: tuple[ApplicationForm, list[ParsedRow]], now: datetime
) -> str:
    """Invoice the valid application and mail it (also to the form's own e-mail)."""
    rt, cid = c.rt, c.inbound.correlation_id
    form, rows = valid
    invoice = create_invoice(
        c.session,
        app,
        count=len(rows),
        new_client=app.kind != "order",
        settings=rt.settings,
        now=now,
        correlation_id=cid,
        use_balance=consent.proven(rt, c.msg, consent.client_addresses(c.session, app.client_id)),
    )
    must(
        transition(
            c.session,
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
    to = [reply_to(c.msg)]
    to += [a for a in ([form.email] if form.email else []) if a and a.lower() not in to]
    reply_in_thread(c, app, Answer(tuple(to), "", body, "invoice", attachments=(attachment,)))
    return "invoiced"
