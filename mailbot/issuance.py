"""Paid → issued: codes, credentials and the deliverables mail, in one transaction each."""

from __future__ import annotations

import structlog
from sqlmodel import Session, col, select

from mailbot.crashpoints import crash_point
from mailbot.credentials import hash_password, login_for, new_password
from mailbot.documents.barcodes import images_zip
from mailbot.documents.certificate_pdf import render_certificate_pdf
from mailbot.documents.model import CertificateDoc, IssuedCode, Party
from mailbot.documents.registry_xlsx import render_registry
from mailbot.invoices import service_party
from mailbot.outbox import enqueue
from mailbot.pool import allocate
from mailbot.render import SECRET_MASK, FileAttachment, Mail, render_body, reply_subject
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Client, Invoice, OutboxMessage, ProductRow
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.queries import add_client_address, record_event
from mailbot.workflow import must, transition

log = structlog.get_logger()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
POOL_EMPTY = "no free barcodes in the pool: add a prefix to [[barcodes.prefixes]]"


def issue_paid(rt: Runtime) -> int:
    """Issue every paid application that can be issued; returns how many were."""
    issued = 0
    while True:
        with transaction(rt.engine) as session:
            app = session.exec(
                select(Application)
                .where(Application.state == S.paid, Application.waiting_reason == "")
                .order_by(col(Application.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if app is None:
                break
            done = issue_one(session, rt, app)
        if not done:
            continue
        issued += 1
        crash_point("after_issue")
    return issued


def retry_waiting(rt: Runtime) -> None:
    """Let applications that waited for an empty pool try again (a prefix may be added)."""
    with transaction(rt.engine) as session:
        for app in session.exec(
            select(Application).where(Application.state == S.paid, Application.waiting_reason != "")
        ):
            app.waiting_reason = ""
            session.add(app)


def _client_for(session: Session, app: Application, rt: Runtime) -> tuple[Client, str | None]:
    """The application's client, created with fresh credentials if new; (client, password)."""
    now = rt.clock()
    form = app.form
    if app.client_id is not None:
        client = session.get(Client, app.client_id)
        assert client is not None  # noqa: S101
        return client, None
    inn, kpp = form["inn"], form.get("kpp") or ""
    client = session.exec(select(Client).where(Client.inn == inn, Client.kpp == kpp)).first()
    password = None
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
        assert client.id is not None  # noqa: S101
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
    return client, password


def issue_one(session: Session, rt: Runtime, app: Application) -> bool:
    """Allocate codes, register the client and queue the deliverables; False if pool is empty."""
    assert app.id is not None  # noqa: S101
    now = rt.clock()
    rows = list(
        session.exec(
            select(ProductRow)
            .where(ProductRow.application_id == app.id)
            .order_by(col(ProductRow.row))
        )
    )
    barcodes = allocate(session, app.id, rows, now=now)
    if barcodes is None:
        app.waiting_reason = POOL_EMPTY
        session.add(app)
        record_event(
            session,
            entity="application",
            entity_id=app.id,
            event="pool_exhausted",
            at=now,
            data={"needed": len(rows)},
        )
        log.warning("pool_exhausted", application=app.number, needed=len(rows))
        return False
    client, password = _client_for(session, app, rt)
    by_row = {b.product_row_id: b.ean for b in barcodes}
    codes = [
        IssuedCode(
            by_row[r.id or 0],
            r.name,
            r.product_type_name,
            r.brand or None,
            f"{r.net_quantity} {r.unit}".strip() or None,
        )
        for r in rows
    ]
    invoice = session.exec(
        select(Invoice).where(Invoice.application_id == app.id).order_by(col(Invoice.id).desc())
    ).first()
    party = Party(
        name=client.org_name,
        inn=client.inn,
        kpp=client.kpp or None,
        address=app.form.get("legal_address") or "",
    )
    today = now.date()
    cert = render_certificate_pdf(
        CertificateDoc(
            number=app.number,
            date=today,
            client=party,
            codes=tuple(codes),
            service=service_party(rt.settings.service),
        )
    )
    eans = [c.ean for c in codes]
    attachments = (
        FileAttachment(
            f"Реестр штрихкодов {app.number}.xlsx", XLSX, render_registry(app.number, today, codes)
        ),
        FileAttachment(
            f"Штрихкоды {app.number}.zip",
            "application/zip",
            images_zip(eans, app.number, modified=today),
        ),
        FileAttachment(f"Свидетельство {app.number}.pdf", "application/pdf", cert),
    )
    body = render_body(
        rt.env,
        "issued",
        {
            "app": app,
            "invoice": invoice,
            "codes": codes,
            "login": client.login,
            "password_mask": SECRET_MASK if password else None,
            "service": rt.settings.service,
        },
    )
    to = [app.sender] + ([client.email] if client.email != app.sender else [])
    root = session.exec(
        select(OutboxMessage.message_id)
        .where(OutboxMessage.application_id == app.id)
        .order_by(col(OutboxMessage.id).desc())
    ).first()
    mail = Mail(
        to=tuple(to),
        subject=reply_subject(app.subject, app.number),
        text=body,
        attachments=attachments,
        in_reply_to=root or app.root_message_id,
        references=tuple(x for x in (app.root_message_id,) if x),
    )
    enqueue(
        session,
        mail,
        dedupe_key=f"application:{app.id}:issued",
        kind="issued",
        sender=rt.sender,
        now=now,
        application_id=app.id,
        secret=password,
        vault=rt.vault,
    )
    must(transition(session, app, "codes_issued", now=now, data={"codes": len(eans)}))
    log.info("codes_issued", application=app.number, codes=len(eans), client=client.login)
    return True
