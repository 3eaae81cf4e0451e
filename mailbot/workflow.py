"""The application lifecycle of DOMAIN.md: the only place an application changes state.

received ─► needs_fix ─(corrected files)─► received …
    └────► accepted ─► invoiced ─► paid ─► issued
                          │  ◄─────┘ (payment reversed)
                          └─► expired ─► cancelled (admin)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailbot.invariant import InvariantError
from mailbot.storage.models import Application
from mailbot.storage.models import ApplicationState as S
from mailbot.storage.queries import record_event

# (state, event) → next state. Events are past-tense facts.
TRANSITIONS: dict[tuple[S, str], S] = {
    (S.received, "form_invalid"): S.needs_fix,
    (S.received, "form_valid"): S.accepted,
    (S.needs_fix, "correction_received"): S.received,
    (S.accepted, "invoice_issued"): S.invoiced,
    (S.accepted, "paid_from_balance"): S.paid,
    (S.invoiced, "payment_matched"): S.paid,
    (S.invoiced, "expired"): S.expired,
    (S.expired, "payment_matched"): S.paid,  # a late payment is still money received
    (S.paid, "codes_issued"): S.issued,
    (S.paid, "payment_reversed"): S.invoiced,  # the accountant reversed a mistaken payment
    (S.issued, "payment_matched"): S.issued,  # its invoice paid again after a reversal
    **{
        (s, "cancelled"): S.cancelled
        for s in (S.received, S.needs_fix, S.accepted, S.invoiced, S.expired)
    },
}


@dataclass(frozen=True)
class IllegalTransition:
    """An event that does not apply to the application's current state."""

    number: str
    state: str
    event: str

    def __str__(self) -> str:
        return f"{self.number}: cannot apply {self.event!r} in state {self.state!r}"


def next_state(state: str, event: str) -> S | None:
    return TRANSITIONS.get((S(state), event))


def transition(  # noqa: PLR0913 - keyword-only columns of the event row
    session: Session,
    app: Application,
    event: str,
    *,
    now: datetime,
    correlation_id: str = "",
    data: dict[str, Any] | None = None,
) -> IllegalTransition | None:
    """Apply `event` to `app` and log it in the same transaction; an error value if illegal."""
    target = next_state(app.state, event)
    if target is None:
        return IllegalTransition(app.number, app.state, event)
    if app.id is None:
        raise InvariantError("flushed applications only")
    record_event(
        session,
        entity="application",
        entity_id=app.id,
        event=event,
        at=now,
        from_state=app.state,
        to_state=target,
        correlation_id=correlation_id,
        data=data,
    )
    app.state = target
    app.updated_at = now
    session.add(app)
    return None


def must(result: IllegalTransition | None) -> None:
    """For callers that already checked the state: an illegal transition is a bug."""
    if result is not None:
        raise RuntimeError(str(result))
