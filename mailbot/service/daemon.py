"""Wiring: open the mailbox and the transport from settings, run passes until stopped."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mailbot.config import Settings
from mailbot.invariant import InvariantError
from mailbot.issuance.issue import issue_paid, retry_waiting
from mailbot.issuance.pool import sync_prefixes
from mailbot.mail.intake.base import Intake
from mailbot.mail.intake.imap import ImapIntake, ImapSettings, ImapUnavailable
from mailbot.mail.intake.maildir import MaildirIntake
from mailbot.mail.maildir_outbox import MaildirTransport
from mailbot.mail.outbox import send_due
from mailbot.mail.smtp import SmtpSettings, SmtpTransport
from mailbot.mail.transport import Transport
from mailbot.pipeline import PassReport, process_pending, release_done, take_in
from mailbot.runtime import Runtime
from mailbot.service import sdnotify
from mailbot.service.metrics import Metrics
from mailbot.service.scheduler import start_scheduler
from mailbot.service.workers import ReaderLock, forget, heartbeat
from mailbot.storage.db import transaction
from mailbot.storage.migrate import check_migrated
from mailbot.storage.queries import release_dead_leases

log = structlog.get_logger()
OUTAGE_BACKOFF = 1.0  # seconds before the first retry of a mailbox that stays down
OUTAGE_BACKOFF_MAX = 300.0
NON_READER_WAIT = 1.0  # seconds a non-reader waits before looking for work again
BEAT_IN_PASS = 10.0  # seconds between heartbeats (and watchdog pings) inside a long pass


def open_intake(settings: Settings) -> Intake:
    if settings.intake == "imap":
        i = settings.imap
        if i is None:
            raise InvariantError("config guarantees it")
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
        if s is None:
            raise InvariantError("s is missing")
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


def run_pass(  # noqa: PLR0913 - branch shunt rewrites the daemon loop
    rt: Runtime,
    intake: Intake,
    transport: Transport,
    stop: Callable[[], bool] = lambda: False,
    *,
    reader: bool = True,
    metrics: Metrics | None = None,
) -> PassReport:
    """One pass over everything waiting: intake, processing, issuance, sending, acknowledging.

    Only the reader (see mailbot.service.workers) takes mail in and acknowledges it; every daemon
    processes, issues and sends.
    """
    received = take_in(rt, intake) if reader else 0
    started = time.perf_counter()
    processed = process_pending(rt, stop)
    if metrics is not None and processed:
        each = (time.perf_counter() - started) / processed  # per-pass mean, see metrics.py
        for _ in range(processed):
            metrics.processing_seconds.labels(kind="any").observe(each)
    issued = sent = 0
    if not stop():  # replies first: moving the handled mail out of the inbox can wait
        issued = issue_paid(rt)
        sent = send_due(rt.engine, transport, sender=rt.sender, vault=rt.vault, clock=rt.clock).sent
    if reader:
        release_done(rt, intake)
    return PassReport(received, processed, issued, sent)


class _Interrupted(Exception):
    """Raised by the signal handler out of a wait (never out of a message in hand)."""


def run_forever(  # noqa: PLR0915 - branch shunt rewrites run_forever
    rt: Runtime,
    intake: Intake,
    transport: Transport,
    *,
    idle_timeout: float = 30.0,
    metrics: Metrics | None = None,
) -> None:
    """Run passes until SIGTERM/SIGINT; between passes wait on the mailbox (IDLE or poll).

    A signal during a pass lets the message in hand finish, then the daemon exits; during
    the wait it exits at once. A mailbox that stays unreachable is retried with backoff.
    systemd hears READY=1 once running, WATCHDOG=1 at least every `watchdog_interval`,
    STOPPING=1 on the signal.
    """
    stop = threading.Event()
    waiting = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("daemon_stopping", signal=signum)
        sdnotify.notify("STOPPING=1")
        stop.set()
        if waiting:
            raise _Interrupted

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    lock = ReaderLock(rt.engine, rt.settings.var_dir / "reader.lock")
    watchdog = sdnotify.watchdog_interval()
    if watchdog is not None:
        idle_timeout = min(idle_timeout, watchdog)
    beat_every = min(BEAT_IN_PASS, watchdog or BEAT_IN_PASS)
    started_at = rt.clock()
    log.info("daemon_started", intake=rt.settings.intake, outbox=rt.settings.outbox)
    sdnotify.notify("READY=1")
    outage = 0
    scheduler = start_scheduler(rt)  # invoice reminders and expiry (writes outbox rows only)
    try:
        while not stop.is_set():
            reader = lock.try_acquire()
            try:
                _release_dead(rt)
                heartbeat(  # role known before a long first pass
                    rt.engine,
                    now=rt.clock(),
                    started_at=started_at,
                    reader=reader,
                    imap_contact=False,
                )
                carry_on = _KeepAlive(rt, started_at, reader=reader, stop=stop, every=beat_every)
                report = run_pass(rt, intake, transport, carry_on, reader=reader, metrics=metrics)
                if report.received or report.sent or report.issued or report.processed:
                    log.info("pass_done", reader=reader, **report.__dict__)
                outage = 0
                _beat(rt, started_at, reader=reader, imap=reader, metrics=metrics)
                if stop.is_set():
                    break
                waiting = True
                try:
                    timeout = min(idle_timeout, 1.0) if report.issued else idle_timeout
                    if reader:
                        intake.wait(timeout)
                    else:  # not the reader: look for work archived by the reader
                        stop.wait(min(timeout, NON_READER_WAIT))
                finally:
                    waiting = False
            except _Interrupted:
                break
            except ImapUnavailable as exc:
                outage += 1
                delay = min(OUTAGE_BACKOFF_MAX, OUTAGE_BACKOFF * 2 ** (outage - 1))
                log.error("mailbox_unavailable", error=str(exc), retry_in_s=delay)
                _beat(rt, started_at, reader=reader, imap=False, metrics=metrics)
                while delay > 0 and not stop.is_set():  # wait, still pinging the watchdog
                    step = min(delay, watchdog or delay)
                    stop.wait(step)
                    delay -= step
                    sdnotify.notify("WATCHDOG=1")
    finally:
        scheduler.shutdown(wait=True)
        lock.release()
        intake.close()
        transport.close()
        with contextlib.suppress(SQLAlchemyError):
            forget(rt.engine)
    log.info("daemon_stopped")


class _KeepAlive:
    """The `stop` callback of a pass, asked before each message: should the pass end?

    It also writes the heartbeat and pings the systemd watchdog every BEAT_IN_PASS seconds,
    so a long pass (a backlog after an outage outlasts WatchdogSec) is not taken for a hang.
    """

    def __init__(
        self,
        rt: Runtime,
        started_at: datetime,
        *,
        reader: bool,
        stop: threading.Event,
        every: float = BEAT_IN_PASS,
    ) -> None:
        self.rt, self.started_at, self.reader, self.stop = rt, started_at, reader, stop
        self.every, self.last = every, time.monotonic()

    def __call__(self) -> bool:
        if time.monotonic() - self.last >= self.every:
            heartbeat(self.rt.engine, now=self.rt.clock(), started_at=self.started_at,
                      reader=self.reader, imap_contact=False)  # fmt: skip
            sdnotify.notify("WATCHDOG=1")
            self.last = time.monotonic()
        return self.stop.is_set()


def _release_dead(rt: Runtime) -> None:
    """Free the leases of this host's crashed daemons (other hosts' leases time out)."""
    with transaction(rt.engine) as session:
        freed = release_dead_leases(session)
    if freed:
        log.warning("dead_leases_released", count=freed)


def _beat(
    rt: Runtime, started_at: datetime, *, reader: bool, imap: bool, metrics: Metrics | None
) -> None:
    now = rt.clock()
    heartbeat(rt.engine, now=now, started_at=started_at, reader=reader, imap_contact=imap)
    sdnotify.notify("WATCHDOG=1")
    if metrics is not None:
        metrics.imap_connected.set(1 if imap and rt.settings.intake == "imap" else 0)
        metrics.last_pass.set(now.timestamp())
