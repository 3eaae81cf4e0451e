"""The files of an application thread: which attachment is which, and what is kept of them.

Applications and orders both carry a product list (an application also its form); both read
the latest file of each kind back from the archive, record their problems as plain dicts and
store the parsed product rows. That shared part lives here, so neither handler reaches into
the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, delete

from mailbot.invariant import InvariantError
from mailbot.mail.archive import read_raw
from mailbot.mail.classify import FORM_EXTS, extension
from mailbot.mail.message import Attachment, ParsedMessage, parse_message
from mailbot.parsers.problems import Document, Location, Problem, ProblemCode
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, ProductRow

PRODUCT_EXTS = FORM_EXTS - {".docx"}
FORM_LABEL = "Заявление о регистрации (.docx)"
PRODUCTS_LABEL = "Перечень продукции (.xlsx)"


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


def attached_file(
    rt: Runtime,
    session: Session,
    inbound_id: int | None,
    want: str,
    *,
    current: tuple[int | None, ParsedMessage] | None = None,
) -> Attachment | None:
    """The form (`want="form"`) or product list carried by inbound message `inbound_id`.

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


def missing_file(document: Document, label: str) -> Problem:
    """The problem «this file is missing» for the form or the product list."""
    return Problem(ProblemCode.file_missing, Location(file=label, document=document))


def wrong_format(msg: ParsedMessage) -> list[Problem]:
    """One problem per attachment that is neither the form nor a product list."""
    return [
        Problem(ProblemCode.file_wrong_format, Location(file=att.filename), value=att.filename)
        for att in pick(msg)[2]
    ]


def problem_dict(p: Problem) -> dict[str, Any]:
    """A problem as the JSON kept in `Application.problems`."""
    loc = dataclasses.asdict(p.location)
    return {"code": str(p.code), "location": loc, "value": p.value, "params": dict(p.params)}


def store_rows(session: Session, app_id: int, rows: list[ParsedRow]) -> None:
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
