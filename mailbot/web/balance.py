"""«Баланс»: the client's balance and its movements, and how to top it up without an invoice.

The balance is `Client.balance`, the movements `billing.ledger.movements` (what the CLI
shows). A top-up is a bank transfer the statement import credits to this client
(`billing.matching`: no invoice number in the purpose, the payer's INN is the client's and
no other client's), so the purpose written here names no invoice and the page says that the
payment must come from the client's own account. The QR is the invoice's ГОСТ Р 56042
payload (`documents.qr.transfer_payload`) for the amount the client types.

There is no «счёт на пополнение»: an invoice row belongs to an application and paying it
moves that application on (matching applies a named invoice to it), so a top-up invoice
cannot be a real invoice of ours without a new kind of invoice in billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session, func, select
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailbot.billing.entry import EntryError, parse_amount
from mailbot.billing.invoices import service_party
from mailbot.billing.ledger import Movement, movements
from mailbot.billing.money import VatMode, format_rub, vat_included, vat_label
from mailbot.documents.qr import qr_png, transfer_payload
from mailbot.storage.db import read_only
from mailbot.storage.models import Client
from mailbot.web.status import when
from mailbot.web.visit import Visit, not_found, page, render

MOVEMENT_TEXT = {
    "balance_credited": "Поступление",
    "balance_used": "Оплата заявки",
    "balance_returned": "Возврат с аннулированного счёта",
    "balance_reversed": "Отмена ошибочного платежа",
}
AMOUNT_TEXT = "Укажите сумму в рублях, например 5 000 или 5000,00."
AMOUNT_ERRORS = {
    "negative": "Сумма должна быть больше нуля.",
    "zero": "Сумма должна быть больше нуля.",
    "decimals": "Не больше двух знаков после запятой (копейки).",
    "larger": "Слишком большая сумма: проверьте её.",
}


def topup_purpose(inn: str, vat_mode: VatMode, amount: Decimal | None) -> str:
    """The payment purpose of a top-up: names the payer's INN and no invoice number."""
    vat = vat_included(amount, vat_mode) if amount is not None else None
    label = vat_label(vat_mode)
    vat_text = label if vat is None else f"{label} — {format_rub(vat)} руб."
    return f"Пополнение баланса (аванс) за регистрацию штрихкодов, ИНН {inn}. {vat_text}"


def amount_of(text: str) -> tuple[Decimal | None, str]:
    """(amount, "") for a valid sum, (None, why in Russian) otherwise."""
    try:
        return parse_amount(text), ""
    except EntryError as exc:
        reason = next((ru for key, ru in AMOUNT_ERRORS.items() if key in str(exc)), AMOUNT_TEXT)
        return None, reason


@dataclass(frozen=True)
class Line:
    at: str
    text: str
    ref: str
    amount: str  # signed, «+1 000,00» or «−500,00»
    balance: str
    incoming: bool


def movement_line(m: Movement) -> Line:
    """One movement in the client's words."""
    ref = m.ref
    if ref.startswith("payment "):
        ref = "платёж из банковской выписки"
    elif ref.startswith("EAN-"):
        ref = f"заявка {ref}"
    elif ref:
        ref = f"переплата по счёту № {ref}" if m.event == "balance_credited" else f"счёт № {ref}"
    sign = "+" if m.amount > 0 else "−"
    return Line(
        at=when(m.at),
        text=MOVEMENT_TEXT.get(m.event, m.event),
        ref=ref,
        amount=f"{sign}{format_rub(abs(m.amount))}",
        balance=format_rub(m.balance),
        incoming=m.amount > 0,
    )


def _shared_inn(session: Session, inn: str) -> bool:
    """True when another client has this INN: the import cannot tell whose a payment is."""
    count = session.exec(select(func.count()).where(Client.inn == inn)).one()
    return int(count) > 1


def _balance(v: Visit) -> Response:
    raw = v.request.query_params.get("amount", "").strip()[:40]
    amount, error = amount_of(raw) if raw else (None, "")
    with read_only(v.rt.engine) as session:
        client = session.get(Client, v.client_id)
        if client is None:
            raise not_found()
        lines = [movement_line(m) for m in reversed(movements(session, v.client_id))]
        shared = _shared_inn(session, client.inn)
    service = v.rt.settings.service
    return render(
        v,
        v.request,
        "balance.html.j2",
        balance=format_rub(client.balance),
        lines=lines,
        service=service,
        purpose=topup_purpose(client.inn, v.rt.settings.vat_mode, amount),
        inn=client.inn,
        shared_inn=shared,
        amount_raw=raw,
        amount=format_rub(amount) if amount is not None else "",
        amount_error=error,
        qr_query=str(amount) if amount is not None else "",
    )


def _qr(v: Visit) -> Response:
    amount, error = amount_of(v.request.query_params.get("amount", "")[:40])
    if amount is None:
        raise HTTPException(400, error)
    purpose = topup_purpose(v.client.inn, v.rt.settings.vat_mode, amount)
    try:
        payload = transfer_payload(
            service_party(v.rt.settings.service), amount=amount, purpose=purpose
        )
    except ValueError:
        raise not_found() from None  # our requisites are incomplete: no QR to offer
    return Response(qr_png(payload), media_type="image/png")


routes: list[BaseRoute] = [
    Route("/balance", page(_balance), methods=["GET"]),
    Route("/balance/qr.png", page(_qr), methods=["GET"]),
]
