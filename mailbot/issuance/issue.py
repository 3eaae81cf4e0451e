"""Paid → issued, in two transactions per application.

1. allocate: the codes, all or none (`pool.allocate`), committed on their own so the prefix
   lock is held for milliseconds, not for the rendering; an empty pool makes the
   application wait (`waiting_reason`, shown by `mailbot status`) until `retry_waiting`.
2. deliver: client and credentials, registry, images, certificate and the deliverables
   mail (split into numbered parts over `[limits] max_outgoing_bytes`), and `issued`.
A crash between the two leaves a paid application holding its codes; the next pass
delivers it with those same codes. The password is only ever in memory and, sealed, in
the outbox row of part 1 (`vault`); the stored body holds the mask.
"""

from __future__ import annotations

from datetime import date

import structlog
from sqlalchemy import exists
from sqlmodel import Session, col, select

from mailbot.billing.invoices import service_party
from mailbot.billing.payments import credit_waiting_surplus
from mailbot.crashpoints import crash_point
from mailbot.documents.barcodes import images_zips
from mailbot.documents.certificate_pdf import render_certificate_pdf
from mailbot.documents.model import CertificateDoc, IssuedCode, Party
from mailbot.invariant import InvariantError
from mailbot.issuance.credentials import hash_password, login_for, new_password
from mailbot.issuance.pool import allocate, pool_states
from mailbot.mail.mailsplit import pack, part_budget, part_subject, raw_capacity
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import SECRET_MASK, FileAttachment, Mail, render_body, reply_subject
from mailbot.runtime import Runtime
from mailbot.service.alerts import alert_low_pools, alert_stuck
from mailbot.storage.db import is_outage, transaction
from mailbot.storage.models import (
    Application,
    Barcode,
    Client,
    Invoice,
    OutboxMessage,
    ProductRow,
)
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.queries import add_client_address, record_event
from mailbot.workflow import must, transition

log = structlog.get_logger()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
POOL_EMPTY = (
    "waiting for barcodes: needs {needed}, {free} free in the pool; add a prefix to "
    "[[barcodes.prefixes]] in config.toml and restart mailbot"
)


def issue_paid(rt: Runtime) -> int:
    """Issue every paid application that can be issued; returns how many were.

    One application's fault never stops the rest (the shunt): an exception while issuing it
    sets it aside with the reason (`issue_error`, shown by `mailbot status` and `mailbot
    quarantine list`, cleared by `mailbot quarantine retry EAN-…`), and the attempt counted
    when its issuance starts means one that kills the process is set aside after
    limits.max_attempts starts. Only the database going away ends the pass.
    """
    issued = 0
    while True:
        picked: list[int] = []  # the application in hand, known even if step 1 raises
        try:
            with transaction(rt.engine) as session:
                app = _next_paid(session, without_codes=False)
                if app is None:
                    break
                if app.id is None:
                    raise InvariantError("app.id is missing")
                picked.append(app.id)
                if app.issue_attempts >= rt.settings.limits.max_attempts:
                    _set_aside(session, rt, app, UNFINISHED.format(n=app.issue_attempts))
                    continue
                outcome = allocate_codes(session, rt, app)
                if outcome != "waiting":  # an empty pool is no attempt of this application's
                    app.issue_attempts += 1
                    session.add(app)
            crash_point("after_allocate")
            if outcome != "held":
                _alert(rt)
            if outcome == "waiting":
                continue
            with transaction(rt.engine) as session:
                done = deliver(session, rt, picked[0])
        except Exception as exc:  # the per-application boundary: set it aside, go on
            if is_outage(exc) or not picked:
                raise
            _fail(rt, picked[0], exc)
            continue
        if done:
            issued += 1
            crash_point("after_issue")
    return issued


UNFINISHED = "issuance did not finish {n} times (killed or timed out)"


def _fail(rt: Runtime, app_id: int, exc: Exception) -> None:
    reason = f"issuance failed: {exc!r}"[:1000]
    with transaction(rt.engine) as session:
        app = session.get(Application, app_id)
        if app is None:
            raise InvariantError("applications are never deleted")
        _set_aside(session, rt, app, reason)


def _set_aside(session: Session, rt: Runtime, app: Application, reason: str) -> None:
    """Mark `app` failed with `reason` in the caller's transaction; the admin is told."""
    if app.id is None:
        raise InvariantError("app.id is missing")
    now = rt.clock()
    app.issue_error = reason
    session.add(app)
    record_event(
        session,
        entity="application",
        entity_id=app.id,
        event="issuance_failed",
        at=now,
        data={"error": reason, "attempts": app.issue_attempts},
    )
    alert_stuck(session, rt, what="выдача по заявке", ref=app.number, reason=reason)


def allocate_paid(rt: Runtime) -> int:
    """Only step 1 for every paid application without codes; returns how many got them."""
    allocated = 0
    while True:
        with transaction(rt.engine) as session:
            app = _next_paid(session, without_codes=True)
            if app is None:
                return allocated
            allocated += allocate_codes(session, rt, app) == "allocated"


def retry_waiting(rt: Runtime) -> None:
    """Let applications that waited for an empty pool try again (a prefix may be added)."""
    with transaction(rt.engine) as session:
        for app in session.exec(
            select(Application).where(Application.state == S.paid, Application.waiting_reason != "")
        ):
            app.waiting_reason = ""
            session.add(app)
    _alert(rt)


def _alert(rt: Runtime) -> None:
    with transaction(rt.engine) as session:
        alert_low_pools(session, rt, now=rt.clock())


def _next_paid(session: Session, *, without_codes: bool) -> Application | None:
    """The oldest paid application no other worker holds (SKIP LOCKED), locked until commit."""
    query = select(Application).where(
        Application.state == S.paid,
        Application.waiting_reason == "",
        Application.issue_error == "",
    )
    if without_codes:
        query = query.where(~exists().where(col(Barcode.application_id) == Application.id))
    return session.exec(
        query.order_by(col(Application.id)).limit(1).with_for_update(skip_locked=True)
    ).first()


def _rows(session: Session, app_id: int) -> list[ProductRow]:
    return list(
        session.exec(
            select(ProductRow)
            .where(ProductRow.application_id == app_id)
            .order_by(col(ProductRow.row))
        )
    )


def allocate_codes(session: Session, rt: Runtime, app: Application) -> str:
    """Step 1: "allocated", "held" (it has its codes already) or "waiting" (pool short)."""
    if app.id is None:
        raise InvariantError("app.id is missing")
    held = session.exec(select(Barcode.id).where(Barcode.application_id == app.id).limit(1))
    if held.first() is not None:
        return "held"
    now = rt.clock()
    rows = _rows(session, app.id)
    codes = allocate(session, app.id, rows, now=now)
    data: dict[str, object]
    if codes is None:
        free = sum(p.free for p in pool_states(session))
        app.waiting_reason = POOL_EMPTY.format(needed=len(rows), free=free)
        session.add(app)
        event, data = "pool_exhausted", {"needed": len(rows), "free": free}
        log.warning(event, application=app.number, **data)
    else:
        event, data = "codes_allocated", {"codes": len(codes), "first": codes[0].ean}
        log.info(event, application=app.number, codes=len(codes))
    record_event(session, entity="application", entity_id=app.id, event=event, at=now, data=data)
    return "waiting" if codes is None else "allocated"


def _credentials_for(session: Session, client: Client) -> str | None:
    """A new password for a client registered without one (else None: not re-issued)."""
    if client.password_hash:
        return None
    taken = session.exec(
        select(Client).where(Client.login == client.inn, Client.id != client.id)
    ).first()
    password = new_password()
    client.login = client.login or login_for(client.inn, client.kpp, taken=taken is not None)
    client.password_hash, client.must_change = hash_password(password), True
    client.credentials_seq += 1
    session.add(client)
    return password


def _client_for(session: Session, app: Application, rt: Runtime) -> tuple[Client, str | None]:
    """The application's client, created with fresh credentials if new; (client, password)."""
    now = rt.clock()
    form = app.form
    if app.client_id is not None:
        client = session.get(Client, app.client_id)
        if client is None:
            raise InvariantError("client is missing")
        return client, _credentials_for(session, client)
    inn, kpp = form["inn"], form.get("kpp") or ""
    client = session.exec(select(Client).where(Client.inn == inn, Client.kpp == kpp)).first()
    password = None if client is None else _credentials_for(session, client)
    if client is None:
        taken = session.exec(select(Client).where(Client.login == inn)).first() is not None
        password = new_password()
        client = Client(
            inn=inn,
            kpp=kpp,
            ogrn=form.get("ogrn") or "",
            org_name=form["org_name"],
            email=(form.get("email") or app.sender).lower(),
            phone=form.get("phone") or "",
            contact_name=form.get("contact_name") or "",
            login=login_for(inn, kpp, taken=taken),
            password_hash=hash_password(password),
            must_change=True,
            credentials_seq=1,
            created_at=now,
        )
        session.add(client)
        session.flush()
        if client.id is None:
            raise InvariantError("client.id is missing")
        record_event(
            session,
            entity="client",
            entity_id=client.id,
            event="client_registered",
            at=now,
            data={"login": client.login},
        )
    for address in {client.email, app.sender}:
        add_client_address(session, client, address)
    app.client_id = client.id
    credit_waiting_surplus(session, app, client, now)  # an overpayment made before it existed
    return client, password


def issued_codes(session: Session, app_id: int) -> list[IssuedCode] | None:
    """The application's codes with their products in row order; None unless every row has one.

    What the registry and the certificate list: the issued mail and the web account's
    downloads read the codes through this one function.
    """
    rows = _rows(session, app_id)
    by_row = {
        b.product_row_id: b.ean
        for b in session.exec(select(Barcode).where(Barcode.application_id == app_id))
    }
    if not rows or len(by_row) != len(rows):
        return None
    return [
        IssuedCode(
            by_row[r.id or 0],
            r.name,
            r.product_type_name,
            r.brand or None,
            f"{r.net_quantity} {r.unit}".strip() or None,
        )
        for r in rows
    ]


def deliver(session: Session, rt: Runtime, app_id: int) -> bool:
    """Step 2 for an application holding its codes; False if it is no longer paid."""
    app = session.exec(
        select(Application).where(Application.id == app_id).with_for_update()
    ).first()
    if app is None or app.state != S.paid:
        return False
    now = rt.clock()
    codes = issued_codes(session, app_id)
    if codes is None:
        raise RuntimeError(f"{app.number}: not every product row holds its code")
    client, password = _client_for(session, app, rt)
    parts = _parts(session, rt, app, client, codes, password=password)
    for number, mail in enumerate(parts, start=1):
        key = f"application:{app_id}:issued" + (f":part{number}" if len(parts) > 1 else "")
        enqueue(
            session,
            mail,
            Outgoing(
                dedupe_key=key,
                kind="issued",
                application_id=app_id,
                secret=password if number == 1 else None,
                vault=rt.vault,
            ),
            sender=rt.sender,
            now=now,
        )
    must(transition(session, app, "codes_issued", now=now, data={"codes": len(codes)}))
    log.info(
        "codes_issued",
        application=app.number,
        codes=len(codes),
        client=client.login,
        parts=len(parts),
    )
    return True


def documents(
    rt: Runtime, app: Application, client: Client, codes: list[IssuedCode], *, on: date
) -> tuple[FileAttachment, FileAttachment]:
    """The registry and the certificate of one application, dated `on` (the day of issue)."""
    # openpyxl (~13 MB resident) is loaded at the first issuance, not by an idle daemon.
    from mailbot.documents.registry_xlsx import render_registry

    party = Party(
        name=client.org_name,
        inn=client.inn,
        kpp=client.kpp or None,
        address=app.form.get("legal_address") or "",
    )
    doc = CertificateDoc(
        number=app.number,
        date=on,
        client=party,
        codes=tuple(codes),
        service=service_party(rt.settings.service),
    )
    return (
        FileAttachment(
            f"Реестр штрихкодов {app.number}.xlsx", XLSX, render_registry(app.number, on, codes)
        ),
        FileAttachment(
            f"Свидетельство {app.number}.pdf", "application/pdf", render_certificate_pdf(doc)
        ),
    )


def _parts(  # noqa: PLR0913 - left to issuance's owner
    session: Session,
    rt: Runtime,
    app: Application,
    client: Client,
    codes: list[IssuedCode],
    *,
    password: str | None,
) -> list[Mail]:
    """The deliverables mail, as one mail or numbered parts each under the size limit."""
    invoice = session.exec(
        select(Invoice).where(Invoice.application_id == app.id).order_by(col(Invoice.id).desc())
    ).first()
    context = {
        "app": app,
        "invoice": invoice,
        "codes": codes,
        "login": client.login,
        "password_mask": SECRET_MASK if password else None,
        "service": rt.settings.service,
    }
    probe = render_body(
        rt.env, "issued", {**context, "parts": 1, "part": 1, "files": ["x" * 80] * 9}
    )
    budget = part_budget(rt.settings.limits.max_outgoing_bytes, len(probe.encode()))
    registry, certificate = documents(rt, app, client, codes, on=rt.clock().date())
    zips = images_zips(
        [c.ean for c in codes],
        app.number,
        max_bytes=raw_capacity(budget),
        modified=rt.clock().date(),
    )
    images = [
        FileAttachment(
            f"Штрихкоды {app.number}"
            + (f" ({n} из {len(zips)})" if len(zips) > 1 else "")
            + ".zip",
            "application/zip",
            data,
        )
        for n, data in enumerate(zips, start=1)
    ]
    groups = pack([registry, certificate, *images], budget)
    to = tuple(dict.fromkeys([app.sender, client.email]))
    root = session.exec(
        select(OutboxMessage.message_id)
        .where(OutboxMessage.application_id == app.id)
        .order_by(col(OutboxMessage.id).desc())
    ).first()
    subject = reply_subject(app.subject, app.number)
    mails = []
    for number, group in enumerate(groups, start=1):
        page: dict[str, object] = {**context, "part": number, "parts": len(groups)}
        page["files"] = [a.filename for a in group]
        if number > 1:
            page["password_mask"] = None
        mails.append(
            Mail(
                to=to,
                subject=part_subject(subject, number, len(groups)),
                text=render_body(rt.env, "issued" if number == 1 else "issued_part", page),
                attachments=group,
                in_reply_to=root or app.root_message_id,
                references=tuple(x for x in (app.root_message_id,) if x),
            )
        )
    return mails
