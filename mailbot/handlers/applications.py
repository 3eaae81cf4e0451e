"""New applications, orders and corrections: validate, then a problems reply or an invoice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, delete

from mailbot.billing.invoices import create_invoice, invoice_doc, opening_event
from mailbot.documents.invoice_pdf import render_invoice_pdf
from mailbot.forms import blank_form_attachments
from mailbot.guard import Budget, guarded
from mailbot.handlers import consent
from mailbot.handlers.replies import reply
from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw
from mailbot.mail.classify import FORM_EXTS, extension
from mailbot.mail.message import Attachment, ParsedMessage, parse_message
from mailbot.mail.problem_text import count_phrase, render_problems
from mailbot.mail.render import FileAttachment, render_body, reply_subject
from mailbot.parsers.application_docx import ApplicationForm, parse_application
from mailbot.parsers.limits import Limits
from mailbot.parsers.pair import check_pair
from mailbot.parsers.problems import Document, Location, ParseResult, Problem, ProblemCode
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import ProductType
from mailbot.runtime import Runtime
from mailbot.storage.models import Application, InboundMessage, ProductRow
from mailbot.storage.queries import client_by_requisites, next_number
from mailbot.workflow import must, transition

PRODUCT_EXTS = FORM_EXTS - {".docx"}


def reply_to(msg: ParsedMessage) -> str:
    """Where our reply goes: the From address, never Reply-To.

    Reply-To is whatever the sender typed; obeying it would let anyone make us mail forms,
    invoices or ticket numbers to a third party (backscatter). The From address is the one
    the receiving MTA and DMARC vouch for; the application's own e-mail field gets the
    invoice and codes as well.
    """
    return msg.from_addr


def pick(msg: ParsedMessage) -> tuple[Attachment | None, Attachment | None, list[Attachment]]:
    """(application .docx, product list, other files) among the attachments."""
    form = products = None
    others = []
    for att in msg.attachments:
        ext = extension(att.filename)
        if ext == ".docx" and form is None:
            form = att
        elif ext in PRODUCT_EXTS and products is None:
            products = att
        else:
            others.append(att)
    return form, products, others


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
    """Corrected files in the thread of an application that needs fixing."""
    form, products, _ = pick(msg)
    if form:
        app.form_inbound_id = inbound.id
    if products:
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
    return evaluate(session, rt, app, inbound, msg)


def _attachment_from(
    rt: Runtime,
    session: Session,
    inbound_id: int | None,
    want: str,
    *,
    current: tuple[int | None, ParsedMessage] | None = None,
) -> Attachment | None:
    """The form or product list carried by inbound message `inbound_id`.

    `current` is the message being processed, already parsed: it is not read back from the
    archive and parsed a second time.
    """
    if inbound_id is None:
        return None
    if current is not None and current[0] == inbound_id:
        msg = current[1]
    else:
        source = session.get(InboundMessage, inbound_id)
        if source is None:
            raise InvariantError("archived messages are never deleted")
        msg = parse_message(read_raw(rt.settings.archive_dir, source.archive_path))
    form, products, _ = pick(msg)
    return form if want == "form" else products


def _missing(document: Document, label: str) -> Problem:
    return Problem(ProblemCode.file_missing, Location(file=label, document=document))


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
    form_att = _attachment_from(rt, session, app.form_inbound_id, "form", current=current)
    prod_att = _attachment_from(rt, session, app.products_inbound_id, "products", current=current)
    lim, limits, types = rt.settings.limits, rt.parse_limits, rt.product_types
    problems = [
        Problem(ProblemCode.file_wrong_format, Location(file=att.filename), value=att.filename)
        for att in pick(msg)[2]
    ]

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
        problems.append(_missing(Document.application, "Заявление о регистрации (.docx)"))
    elif parsed_form is not None:
        form, problems = parsed_form.value, problems + parsed_form.problems
    if prod_att is None:
        problems.append(_missing(Document.products, "Перечень продукции (.xlsx)"))
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


def _store_rows(session: Session, app_id: int, rows: list[ParsedRow]) -> None:
    """Replace the application's product rows: one executemany, not a flush of 50 objects."""
    session.execute(delete(ProductRow).where(col(ProductRow.application_id) == app_id))
    if not rows:
        return
    session.execute(
        insert(ProductRow),
        [
            {
                "application_id": app_id,
                "row": r.row,
                "name": r.name or "",
                "product_type_code": r.product_type_code or "",
                "product_type_name": r.product_type_name or "",
                "brand": r.brand or "",
                "net_quantity": "" if r.net_quantity is None else f"{r.net_quantity.normalize():f}",
                "unit": r.unit or "",
                "okpd2": r.okpd2 or "",
                "tnved": r.tnved or "",
                "note": r.note or "",
            }
            for r in rows
        ],
    )


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
        app.problems = [_problem_dict(p) for p in problems]
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
    _store_rows(session, app.id, rows)
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
        use_balance=consent.proven(rt, msg, consent.client_addresses(session, app.client_id)),
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


def _problem_dict(p: Problem) -> dict[str, Any]:
    loc = dataclasses.asdict(p.location)
    return {"code": str(p.code), "location": loc, "value": p.value, "params": dict(p.params)}


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


def reply_in_thread(
    session: Session,
    rt: Runtime,
    app: Application,
    inbound: InboundMessage,
    msg: ParsedMessage,
    *,
    to: tuple[str, ...],
    kind: str,
    body: str,
    attachments: tuple[FileAttachment, ...] = (),
    untitled: str = "Заявка на штрихкоды",
) -> None:
    """Queue the answer to `msg` about `app` (once per application, kind and message)."""
    reply(
        session,
        rt,
        inbound,
        msg,
        to=to,
        subject=reply_subject(msg.subject or app.subject or untitled, app.number),
        text=body,
        kind=kind,
        attachments=attachments,
        dedupe_key=f"application:{app.id}:{kind}:{inbound.id}",
        application_id=app.id,
    )
