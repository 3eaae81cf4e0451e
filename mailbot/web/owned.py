"""Every lookup of an object a route takes by id, in one place: the client's id is part of
the query, so another client's object (or none) is the same 404 (ASVS 8.2.2, 8.4.1).

The authorization matrix test (tests/web) walks every route with a path parameter; a new
kind of id needs its lookup here.
"""

from __future__ import annotations

from sqlmodel import Session, select

from mailbot.storage.models import Application, Invoice, SupportTicket
from mailbot.storage.models_web import WebSession
from mailbot.web.visit import not_found


def application(session: Session, client_id: int, number: str) -> Application:
    app = session.exec(
        select(Application).where(Application.number == number, Application.client_id == client_id)
    ).first()
    if app is None:
        raise not_found()
    return app


def invoice(session: Session, client_id: int, number: str) -> Invoice:
    row = session.exec(
        select(Invoice)
        .join(Application, Application.id == Invoice.application_id)  # type: ignore[arg-type]
        .where(Invoice.number == number, Application.client_id == client_id)
    ).first()
    if row is None:
        raise not_found()
    return row


def ticket(session: Session, client_id: int, number: str) -> SupportTicket:
    row = session.exec(
        select(SupportTicket).where(
            SupportTicket.number == number, SupportTicket.client_id == client_id
        )
    ).first()
    if row is None:
        raise not_found()
    return row


def web_session(session: Session, client_id: int, session_id: int) -> WebSession:
    row = session.get(WebSession, session_id)
    if row is None or row.client_id != client_id:
        raise not_found()
    return row
