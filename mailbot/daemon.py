"""Wiring: open the mailbox and the transport from settings, run passes until stopped."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog

from mailbot.config import Settings
from mailbot.intake.base import Intake
from mailbot.intake.imap import ImapIntake, ImapSettings, ImapUnavailable
from mailbot.intake.maildir import MaildirIntake
from mailbot.issuance import issue_paid, retry_waiting
from mailbot.maildir_outbox import MaildirTransport
from mailbot.outbox import send_due
from mailbot.pipeline import PassReport, process_pending, release_done, take_in
from mailbot.pool import sync_prefixes
from mailbot.runtime import Runtime
from mailbot.smtp import SmtpSettings, SmtpTransport
from mailbot.storage.db import transaction
from mailbot.storage.migrate import check_migrated
from mailbot.storage.queries import release_dead_leases
from mailbot.transport import Transport

log = structlog.get_logger()
OUTAGE_BACKOFF = 1.0  # seconds before the first retry of a mailbox that stays down
OUTAGE_BACKOFF_MAX = 300.0


def open_intake(settings: Settings) -> Intake:
    if settings.intake == "imap":
        i = settings.imap
        assert i is not None  # noqa: S101 - config guarantees it
        return ImapIntake(
            ImapSettings(
                host=i.host,
                user=i.user,
                password=str(i.password),
                port=i.port,
                security=i.security,
                mailbox=i.mailbox,
                processed_folder=i.processed_folder,
                quarantine_folder=i.quarantine_folder,
                poll_seconds=i.poll_seconds,
                max_bytes=settings.limits.max_message_bytes,
                ca_file=i.ca_file,
            )
        )
    return MaildirIntake(settings.maildir.inbox, max_bytes=settings.limits.max_message_bytes)


def open_transport(settings: Settings) -> Transport:
    if settings.outbox == "smtp":
        s = settings.smtp
        assert s is not None  # noqa: S101
        return SmtpTransport(
            SmtpSettings(
                host=s.host,
                port=s.port,
                security=s.security,
                user=s.user or None,
                password=str(s.password) or None,
                ca_file=s.ca_file,
            )
        )
    return MaildirTransport(settings.maildir.outbox)


def prepare(rt: Runtime) -> None:
    """Refuse an unmigrated database; bring the pool rows in line with the config."""
    check_migrated(rt.engine)
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=rt.clock())
        freed = release_dead_leases(session)
    if freed:
        log.warning("dead_leases_released", count=freed)
    retry_waiting(rt)


def run_pass(
    rt: Runtime, intake: Intake, transport: Transport, stop: Callable[[], bool] = lambda: False
) -> PassReport:
    """One pass over everything waiting: intake, processing, issuance, sending."""
    received = take_in(rt, intake)
    processed = process_pending(rt, stop)
    release_done(rt, intake)
    if stop():
        return PassReport(received, processed, 0, 0)
    issued = issue_paid(rt)
    report = send_due(rt.engine, transport, sender=rt.sender, vault=rt.vault, clock=rt.clock)
    return PassReport(received, processed, issued, report.sent)


class _Interrupted(Exception):
    """Raised by the signal handler out of a wait (never out of a message in hand)."""


def run_forever(
    rt: Runtime, intake: Intake, transport: Transport, *, idle_timeout: float = 30.0
) -> None:
    """Run passes until SIGTERM/SIGINT; between passes wait on the mailbox (IDLE or poll).

    A signal during a pass lets the message in hand finish, then the daemon exits; during
    the wait it exits at once. A mailbox that stays unreachable is retried with backoff.
    """
    stop = threading.Event()
    waiting = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("daemon_stopping", signal=signum)
        stop.set()
        if waiting:
            raise _Interrupted

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("daemon_started", intake=rt.settings.intake, outbox=rt.settings.outbox)
    outage = 0
    while not stop.is_set():
        try:
            report = run_pass(rt, intake, transport, stop.is_set)
            if report.received or report.sent or report.issued:
                log.info("pass_done", **report.__dict__)
            outage = 0
            if stop.is_set():
                break
            waiting = True
            try:
                intake.wait(min(idle_timeout, 1.0) if report.issued else idle_timeout)
            finally:
                waiting = False
        except _Interrupted:
            break
        except ImapUnavailable as exc:
            outage += 1
            delay = min(OUTAGE_BACKOFF_MAX, OUTAGE_BACKOFF * 2 ** (outage - 1))
            log.error("mailbox_unavailable", error=str(exc), retry_in_s=delay)
            stop.wait(delay)
    intake.close()
    transport.close()
    log.info("daemon_stopped")
