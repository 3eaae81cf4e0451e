"""A client's balance as movements: every credit and every use, read from the event log.

The balance itself is `Client.balance` (changed under a row lock, in the same transaction as
its event); the movements are the `client` events that changed it, so the two cannot drift
apart without the event log showing where. The CLI (`clients balance`) and the web account
(«Баланс») read the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from mailbot.storage.models import Event

# event name → sign of the movement; every event that changes Client.balance is listed here
MOVEMENT_EVENTS: dict[str, int] = {
    "balance_credited": 1,  # a payment without an invoice, an overpayment's surplus
    "balance_used": -1,  # an invoice (partly) paid from the balance
    "balance_returned": 1,  # a cancelled invoice gives back what the balance had covered
    "balance_reversed": -1,  # a reversed payment takes back what it had credited
}


@dataclass(frozen=True, slots=True)
class Movement:
    """One change of a client's balance: positive in, negative out."""

    at: datetime
    event: str
    amount: Decimal  # signed
    balance: Decimal  # the balance right after it
    ref: str  # invoice or application number, payment id: what it concerned


def movements(session: Session, client_id: int) -> list[Movement]:
    """The client's balance movements, oldest first."""
    rows = session.exec(
        select(Event)
        .where(
            Event.entity == "client",
            Event.entity_id == client_id,
            col(Event.event).in_(list(MOVEMENT_EVENTS)),
        )
        .order_by(col(Event.id))
    ).all()
    return [_movement(e) for e in rows]


def _movement(e: Event) -> Movement:
    data = e.data or {}
    amount = Decimal(str(data.get("amount", "0"))) * MOVEMENT_EVENTS[e.event]
    ref = str(data.get("surplus_of") or data.get("application") or data.get("invoice") or "") or (
        f"payment {data['payment']}" if "payment" in data else ""
    )
    return Movement(
        at=e.at,
        event=e.event,
        amount=amount,
        balance=Decimal(str(data.get("balance", "0"))),
        ref=ref,
    )
