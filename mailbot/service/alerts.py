"""Mail to the admin when a barcode prefix runs low: once per prefix and day, via the outbox."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import or_, update
from sqlmodel import Session, col

from mailbot.issuance.pool import pool_states
from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import BarcodePool

log = structlog.get_logger()


def alert_low_pools(session: Session, rt: Runtime, *, now: datetime) -> list[str]:
    """Queue an alert for every active prefix under the threshold not alerted today.

    `BarcodePool.alerted_on` is claimed with a conditional UPDATE, so two workers never
    both alert; the outbox dedupe key (prefix and day) guards the mail itself. Returns the
    prefixes alerted.
    """
    threshold, today = rt.settings.pool_low_threshold, now.date()
    states = pool_states(session)
    total_free = sum(p.free for p in states)
    alerted = []
    for p in states:
        if not p.active or p.free >= threshold or p.alerted_on == today:
            continue
        claimed = session.execute(
            update(BarcodePool)
            .where(
                col(BarcodePool.prefix) == p.prefix,
                or_(col(BarcodePool.alerted_on).is_(None), col(BarcodePool.alerted_on) != today),
            )
            .values(alerted_on=today)
            .returning(col(BarcodePool.id))
        ).scalar_one_or_none()
        if claimed is None:
            continue
        log.warning("pool_low", prefix=p.prefix, free=p.free, threshold=threshold)
        alerted.append(p.prefix)
        if not rt.settings.admin_email:
            continue
        text = render_body(
            rt.env,
            "pool_low",
            {"pool": p, "threshold": threshold, "total_free": total_free, "day": today},
        )
        enqueue(
            session,
            Mail(
                to=(rt.settings.admin_email,),
                subject=f"mailbot: осталось {p.free} свободных штрихкодов в префиксе {p.prefix}",
                text=text,
            ),
            Outgoing(dedupe_key=f"pool:{p.prefix}:low:{today.isoformat()}", kind="pool_low"),
            sender=rt.sender,
            now=now,
        )
    return alerted


def alert_stuck(session: Session, rt: Runtime, *, what: str, ref: str, reason: str) -> None:
    """Queue one mail to the admin about an item set aside by the shunt (once per item and
    attempt count, by its dedupe key); nothing without [admin] email, beyond the log line."""
    now = rt.clock()
    log.error("item_shunted", what=what, ref=ref, reason=reason[:300])
    if not rt.settings.admin_email:
        return
    enqueue(
        session,
        Mail(
            to=(rt.settings.admin_email,),
            subject=f"mailbot: {what} {ref} отложено, нужна проверка",
            text=render_body(rt.env, "stuck", {"what": what, "ref": ref, "reason": reason}),
        ),
        Outgoing(dedupe_key=f"stuck:{ref}:{now.isoformat()}"[:200], kind="alert"),
        sender=rt.sender,
        now=now,
    )
