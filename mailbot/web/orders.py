"""«Заказать коды»: a product list uploaded in the personal account becomes an order.

The upload goes the way an e-mailed list goes, through the same functions:
- size: the request body is counted while it is read and refused (413) past
  `[limits] max_attachment_bytes` (plus the form's own few bytes), before anything is stored;
- archive first: the file is wrapped in an RFC 5322 message from the client's registered
  address (`envelope`) and archived like received mail (content-addressed .eml under
  `var/archive`, an `InboundMessage` row with a `web:` key), so `mailbot log`, `messages
  list` and the order's `products_inbound_id` see it as they see a mailed list. A message
  rather than a bare file because every reader of the archive (filing.attached_file, the
  shunt, `mailbot tickets show`) reads messages; a second archive format would need a
  second reader. The row is committed already leased by this process and marked
  acknowledged (there is no mailbox to move it out of): the daemon does not take it, unless
  this process dies before processing it; then the daemon files it as an e-mailed order
  (a confirmation code before the balance is used), and nothing is lost;
- the attachment is picked and checked by the mail path's filing (`filing.pick`,
  `wrong_format`, `missing_file`) and the list parsed by `handlers.orders.read_products`:
  the guarded parse worker (memory cap, deadline) and the parser's zip/XML limits, exactly
  as a mailed attachment. The message's own MIME is ours, so it is not parsed again in the
  worker (see `archive_upload`);
- problems are shown on the page with the sentences of the reply mail (mail.problem_text);
  nothing is opened for a list with problems (the client uploads a corrected one; by mail
  the thread's needs_fix application is what a correction attaches to);
- a valid list: `handlers.orders.place_order` opens the order on the same tables, spends
  the balance first (the log-in proves the client) and queues the invoice mail the mail
  flow sends (useful to the client's accountant: the PDF arrives where invoices arrive).
"""

from __future__ import annotations

import base64
import dataclasses
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive

from mailbot import pipeline
from mailbot.forms import blank_form_attachments
from mailbot.handlers import orders
from mailbot.handlers.context import Context
from mailbot.handlers.filing import PRODUCTS_LABEL, missing_file, pick, wrong_format
from mailbot.invariant import InvariantError
from mailbot.mail.archive import store_raw
from mailbot.mail.message import Attachment, ParsedMessage, parse_message
from mailbot.mail.problem_text import count_phrase, problem_groups
from mailbot.mail.render import new_message_id, one_line
from mailbot.parsers.problems import Document, Problem
from mailbot.parsers.products_xlsx import ProductRow as ParsedRow
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Client, InboundMessage, InboundStatus
from mailbot.storage.queries import add_archived, worker_id
from mailbot.web.visit import Visit, action, page, render, runtime, visitor

FORM_OVERHEAD = 64 * 1024  # the CSRF field, part headers and boundaries around the file
LEASE = timedelta(minutes=10)  # as the daemon's (mailbot.pipeline.LEASE)
DRAIN_LIMIT = 100 * 1024 * 1024  # what is read and dropped of a refused body, at most
ACCEPT = ".xlsx,.xls,.ods,.csv"
SUBJECT = "Заказ штрихкодов (личный кабинет)"


class UploadTooLarge(Exception):
    """The request body went past the upload limit while it was read."""


# ------------------------------------------------------------------ pages
def _form(v: Visit) -> Response:
    return _page(v)


def _page(v: Visit, status: int = 200, **ctx: object) -> Response:
    base: dict[str, object] = {
        "max_mb": _max_mb(v.rt),
        "accept": ACCEPT,
        "error": "",
        "problems": [],
        "count": "",
        "flagged": [],
    }
    return render(v, v.request, "order.html.j2", status=status, **{**base, **ctx})


def _max_mb(rt: Runtime) -> str:
    return f"{rt.settings.limits.max_attachment_bytes / 1_000_000:g}"


def _too_large(v: Visit) -> Response:
    error = f"Файл больше {_max_mb(v.rt)} МБ. Уберите из него картинки и лишние листы."
    return _page(v, 413, error=error)


def _blank(v: Visit) -> Response:
    """The blank product list, as the instructions mail attaches it."""
    blank = blank_form_attachments(v.rt.product_types)[1]
    return Response(
        blank.data,
        media_type=blank.mime,
        headers={"content-disposition": "attachment; filename*=UTF-8''products-blank.xlsx"},
    )


def _submit(v: Visit) -> Response:
    upload = v.form.get("products") if v.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(v, 400, error="Выберите файл перечня продукции.")
    limit = v.rt.settings.limits.max_attachment_bytes
    try:
        data = upload.file.read(limit + 1)
    finally:
        upload.file.close()
    if len(data) > limit:
        return _too_large(v)
    name = upload_name(upload.filename)
    upload_row = archive_upload(v.rt, v.client, name, data)
    del data
    filed = file_upload(v.rt, upload_row, v.client_id)
    if filed.problems:
        groups = problem_groups(filed.problems, v.rt.env, web=True)
        return _page(v, problems=groups, count=count_phrase(len(filed.problems)))
    if filed.taken_over:
        return _page(v, error="Перечень уже обработан, ответ придёт письмом.")
    if filed.placed is None or filed.placed.app is None:
        return _page(v, flagged=filed.placed.flagged if filed.placed else [])
    return RedirectResponse(f"/applications/{filed.placed.app.number}", status_code=303)


_submit_action = action(_submit)


async def submit(request: Request) -> Response:
    """POST /order: the body is counted while read; past the limit it is refused (413)."""
    who = await run_in_threadpool(visitor, request)
    if isinstance(who, Response):  # not logged in: answered before a byte of the body is read
        return who
    cap = runtime(request).settings.limits.max_attachment_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return await _refuse(request, 0)
    seen, more = [0], [True]

    async def counted() -> Message:
        message = await request.receive()
        if message["type"] == "http.request":
            seen[0] += len(message.get("body", b""))
            more[0] = bool(message.get("more_body", False))
            if seen[0] > cap:
                raise UploadTooLarge
        return message

    capped = Request(request.scope, counted)
    try:
        response: Response = await _submit_action(capped)
    except UploadTooLarge:
        return await _refuse(request, seen[0], more=more[0])
    return response


async def _refuse(request: Request, read: int, *, more: bool = True) -> Response:
    """The 413 page; the rest of the body is read and dropped (bounded), so a browser gets
    the page rather than a reset connection. Never asks for more once the body has ended
    (an ASGI server would wait there for the client to disconnect)."""
    await _drain(request.receive, read, more=more)
    return await run_in_threadpool(page(_too_large), request)


async def _drain(receive: Receive, read: int, *, more: bool) -> None:
    while more and read < DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        more = bool(message.get("more_body", False))


# ------------------------------------------------------------------ archive and filing
def upload_name(name: str) -> str:
    """The uploaded file's name without a path or control characters, at most 150 chars."""
    base = one_line(re.split(r"[\\/]", name)[-1])
    if len(base) > 150:
        stem, dot, ext = base.rpartition(".")
        base = f"{stem[: 140 - len(ext)]}{dot}{ext}" if dot and len(ext) <= 8 else base[:150]
    return base or "file"


@dataclass(frozen=True)
class Upload:
    """An uploaded file, archived as the message `inbound_id`, and that message as parsed."""

    inbound_id: int
    msg: ParsedMessage


def envelope(client: Client, rt: Runtime, *, message_id: str, date: datetime) -> EmailMessage:
    """The mail an upload stands for, from the client's registered address to us."""
    msg = EmailMessage()
    msg["From"] = client.email
    msg["To"] = rt.settings.service.email
    msg["Subject"] = SUBJECT
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["X-Mailbot-Channel"] = "web"
    msg.set_content("Перечень продукции загружен в личном кабинете.\n")
    return msg


def with_attachment(mail: EmailMessage, name: str, data: bytes) -> bytes:
    """The bytes of `mail` with `data` attached (base64), as the email package makes them.

    The email package holds a 20 MB attachment four times over while it encodes it; here
    the part is built around a random stand-in, which the file's base64 then replaces,
    encoded in slices into one buffer.
    """
    stand_in = secrets.token_bytes(48)  # 64 base64 characters: one line, found once
    mail.add_attachment(stand_in, maintype="application", subtype="octet-stream", filename=name)
    before, found, after = bytes(mail).partition(base64.b64encode(stand_in))
    if not found:
        raise InvariantError("the stand-in is in the message")
    out = bytearray(before)
    step = 57 * 1024  # 1024 lines of 76 characters at a time
    for start in range(0, len(data), step):
        out += base64.encodebytes(data[start : start + step])
    if out.endswith(b"\n"):
        del out[-1]
    out += after
    return bytes(out)


def archive_upload(rt: Runtime, client: Client, name: str, data: bytes) -> Upload:
    """Archive the upload as a message (fsync, then the row, committed).

    The row is leased by this process and acknowledged: the daemon leaves it alone. The
    message is parsed as the mail parser would see it without reading it back: its header
    and text are ours (parsed directly, small), its one attachment is the upload's bytes
    (parsed later in the guarded worker, as an attachment is); no 20 MB copy goes to the
    worker and back.
    """
    now = rt.clock()
    message_id = new_message_id(rt.settings.service.domain)
    mail = envelope(client, rt, message_id=message_id, date=now)
    head = parse_message(bytes(mail))
    raw = with_attachment(mail, name, data)
    sha, rel = store_raw(rt.settings.archive_dir, raw)
    key = f"web:order:{client.id}:{uuid.uuid4().hex}"
    with transaction(rt.engine) as session:
        row = InboundMessage(
            key=key,
            sha256=sha,
            archive_path=rel,
            size=len(raw),
            received_at=now,
            message_id=message_id,
            from_addr=client.email.lower(),
            subject=SUBJECT,
            status=InboundStatus.archived,
            attempts=1,
            acknowledged=True,
            lease_until=now + LEASE,
            lease_owner=worker_id(),
        )
        inbound_id = add_archived(
            session, row, now=now, data={"key": key, "size": len(raw), "channel": "web"}
        )
    attached = Attachment(filename=name, content_type="application/octet-stream", data=data)
    return Upload(inbound_id, dataclasses.replace(head, attachments=(attached,)))


@dataclass(frozen=True)
class Filed:
    """What became of an upload: its problems, or the order placed (None: nothing placed)."""

    problems: list[Problem] = field(default_factory=list)
    placed: orders.Placed | None = None
    taken_over: bool = False  # the daemon filed it (this process was too slow): mail follows


def _checked(rt: Runtime, msg: ParsedMessage) -> tuple[list[ParsedRow], list[Problem]]:
    """The rows and problems of the message's product list (filing and parse as for mail)."""
    problems = wrong_format(msg)
    products = pick(msg)[1]
    if products is None:
        return [], [*problems, missing_file(Document.products, PRODUCTS_LABEL)]
    rows, found = orders.read_products(rt, products.data, products.filename)
    return rows, problems + found


def file_upload(rt: Runtime, upload: Upload, client_id: int) -> Filed:
    """Check the archived upload's list and place the order when it is valid.

    The parse runs before the write transaction (it may take up to the parse deadline).
    """
    rows, problems = _checked(rt, upload.msg)
    if not problems and not rows:  # the parser names an empty list; kept as the mail path's
        problems = [missing_file(Document.products, PRODUCTS_LABEL)]
    with transaction(rt.engine) as session:
        inbound = session.get(InboundMessage, upload.inbound_id, with_for_update=True)
        client = session.get(Client, client_id)
        if inbound is None or client is None:
            raise InvariantError("inbound row and client exist")
        if inbound.status != InboundStatus.archived:  # the daemon took it over (we were slow)
            return Filed(taken_over=True)
        placed = None
        if not problems:
            c = Context(session, rt, inbound, upload.msg, b"", None, client)
            placed = orders.place_order(c, rows)
        _settle(session, rt, inbound, placed, len(problems))
    return Filed(problems, placed)


def _settle(
    session: Session, rt: Runtime, inbound: InboundMessage, placed: orders.Placed | None, n: int
) -> None:
    """The upload is processed: its row says so, with its event (as a mail's)."""
    if placed is None:
        outcome = f"refused: {n} problems"
    elif placed.app is None:
        outcome = "every product already has a code"
    else:
        outcome = f"order {placed.app.number}: {placed.event}"
    inbound.kind, inbound.reason = "order", "uploaded in the personal account"
    inbound.status = InboundStatus.processed
    pipeline.finish(session, rt, inbound, outcome, channel="web")


routes: list[BaseRoute] = [
    Route("/order", page(_form), methods=["GET"]),
    Route("/order", submit, methods=["POST"]),
    Route("/order/products-blank.xlsx", page(_blank), methods=["GET"]),
]
