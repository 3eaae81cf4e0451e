"""Timed work: invoice reminders and expiry, run by apscheduler inside the daemon.

A job only writes outbox rows and state changes, never sends. Its effects are keyed in the
database (`invoice:ID:reminder`, the `expired` transition), so running it twice, or after a
restart that missed a tick, neither repeats nor skips a reminder: the schedule itself needs
no job store, only an interval and a first run at start.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, col, select

from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body, reply_subject
from mailbot.runtime import Runtime
from mailbot.service.alerts import alert_stuck
from mailbot.storage.db import is_outage, transaction
from mailbot.storage.models import Application, Invoice, InvoiceStatus, JobState, OutboxMessage
from mailbot.storage.models import ApplicationState as S
from mailbot.workflow import transition

log = structlog.get_logger()
SWEEP_MINUTES = 15


@dataclass(frozen=True)
class SweepReport:
    reminded: int = 0
    expired: int = 0


def _recipients(app: Application) -> tuple[str, ...]:
    email = str(app.form.get("email") or "").lower()
    return tuple(dict.fromkeys(a for a in (app.sender, email) if a))


def _mail(session: Session, rt: Runtime, app: Application, invoice: Invoice, name: str) -> Mail:
    thread = session.exec(
        select(OutboxMessage.message_id)
        .where(OutboxMessage.application_id == app.id)
        .order_by(col(OutboxMessage.id))
    ).first()
    body = render_body(
        rt.env,
        name,
        {
            "app": app,
            "invoice": invoice,
            "service": rt.settings.service,
            "due": invoice.total - invoice.from_balance,
        },
    )
    return Mail(
        to=_recipients(app),
        subject=reply_subject(app.subject, app.number),
        text=body,
        in_reply_to=thread or app.root_message_id,
        references=tuple(x for x in (app.root_message_id,) if x),
    )


def sweep_invoices(rt: Runtime) -> SweepReport:
    """Remind once about invoices unpaid for N days; expire applications unpaid for M days."""
    now = rt.clock()
    remind_before = now.date() - timedelta(days=rt.settings.invoice_remind_after_days)
    expire_before = now.date() - timedelta(days=rt.settings.invoice_expire_after_days)
    reminded = expired = 0
    with transaction(rt.engine) as session:
        rows = session.exec(
            select(Invoice, Application)
            .join(Application, col(Application.id) == col(Invoice.application_id))
            .where(
                Invoice.status == InvoiceStatus.issued,
                Application.state == S.invoiced,
                Invoice.issued_on <= remind_before,
            )
            .order_by(col(Invoice.id))
            .with_for_update(skip_locked=True)
        ).all()
        for invoice, app in rows:
            if invoice.issued_on <= expire_before:
                if (
                    transition(session, app, "expired", now=now, data={"invoice": invoice.number})
                    is None
                ):
                    enqueue(
                        session,
                        _mail(session, rt, app, invoice, "invoice_expired"),
                        Outgoing(
                            dedupe_key=f"invoice:{invoice.id}:expired",
                            kind="invoice_expired",
                            application_id=app.id,
                        ),
                        sender=rt.sender,
                        now=now,
                    )
                    expired += 1
                continue
            key = f"invoice:{invoice.id}:reminder"
            done = session.exec(
                select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)
            ).first()
            if done is None:
                enqueue(
                    session,
                    _mail(session, rt, app, invoice, "invoice_reminder"),
                    Outgoing(dedupe_key=key, kind="invoice_reminder", application_id=app.id),
                    sender=rt.sender,
                    now=now,
                )
                reminded += 1
    if reminded or expired:
        log.info("invoices_swept", reminded=reminded, expired=expired)
    return SweepReport(reminded, expired)


JOBS: dict[str, Callable[[Runtime], object]] = {"invoice_sweep": sweep_invoices}


def run_job(rt: Runtime, name: str) -> bool:
    """Run the job `name` once under the shunt; True when it succeeded.

    A failure is recorded with its reason and the count of failures in a row (`JobState`,
    shown by `mailbot status` and `mailbot quarantine list`; the admin is told at the first
    one) and never leaves this function: the next tick runs the job again. The database
    being away is the daemon's outage, not the job's failure: one log line, nothing kept.
    """
    try:
        JOBS[name](rt)
    except Exception as exc:  # noqa: BLE001 - the per-job boundary: record it, go on
        if is_outage(exc):
            log.warning("job_skipped_database_unavailable", job=name, error=str(exc)[:200])
            return False
        _record(rt, name, "".join(traceback.format_exception(exc))[-4000:])
        return False
    _record(rt, name, "")
    return True


def _record(rt: Runtime, name: str, error: str) -> None:
    now = rt.clock()
    with transaction(rt.engine) as session:
        job = session.get(JobState, name) or JobState(name=name)
        if not error:
            if job.failures or job.last_ok_at is None:
                job.failures, job.last_ok_at = 0, now
                session.add(job)
            return
        job.failures += 1
        job.last_error, job.failed_at = error, now
        session.add(job)
        reason = error.strip().splitlines()[-1]
        log.error("job_failed", job=name, failures=job.failures, error=reason)
        if job.failures == 1:
            alert_stuck(session, rt, what="задание", ref=f"job:{name}", reason=reason)


def start_scheduler(rt: Runtime) -> BackgroundScheduler:
    """Background jobs with stable ids; the first sweep runs at start (catches up)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        run_job,
        "interval",
        args=[rt, "invoice_sweep"],
        id="invoice_sweep",
        minutes=SWEEP_MINUTES,
        next_run_time=datetime.now(UTC),
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
    scheduler.start()
    return scheduler
