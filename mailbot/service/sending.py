"""The one way every caller (daemon, `tickets reply`, `news send`) drains the outbox.

Retry policy and the shunt's admin alert live in one place, so a CLI run never fails
queued mail sooner than the daemon would (see mail/outbox.send_due).
"""

from __future__ import annotations

from sqlmodel import Session

from mailbot.mail.outbox import Delivery, SendReport, send_due
from mailbot.mail.transport import Transport
from mailbot.runtime import Runtime
from mailbot.service.alerts import alert_stuck
from mailbot.storage.models import OutboxMessage


def send_queued(rt: Runtime, transport: Transport) -> SendReport:
    """Deliver every due outbox row; a row that can never go is failed and the admin told."""

    def on_failed(session: Session, row: OutboxMessage, reason: str) -> None:
        if row.kind == "alert":  # an alert about an alert would loop
            return
        ref = f"o{row.id}"
        alert_stuck(session, rt, what="письмо", ref=ref, reason=reason)

    delivery = Delivery(transport, rt.sender, rt.vault, rt.clock, on_failed=on_failed)
    return send_due(rt.engine, delivery)
