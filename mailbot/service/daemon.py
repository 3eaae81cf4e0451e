"""Wiring: open the mailbox and the transport from settings, run passes until stopped."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
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
from mailbot.mail.smtp import SmtpSettings, SmtpTransport
from mailbot.mail.transport import Transport
from mailbot.pipeline import PassReport, process_pending, release_done, take_in
from mailbot.runtime import Runtime
from mailbot.service import sdnotify
from mailbot.service.metrics import Metrics
from mailbot.service.scheduler import start_scheduler
from mailbot.service.sending import send_queued
from mailbot.service.workers import ReaderLock, forget, heartbeat
from mailbot.storage.db import is_outage, transaction
from mailbot.storage.migrate import check_migrated
from mailbot.storage.queries import release_dead_leases, release_own_leases

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
    secure_files(rt.settings.var_dir)
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=rt.clock())
        freed = release_dead_leases(session)
    if freed:
        log.warning("dead_leases_released", count=freed)
    retry_waiting(rt)


def secure_files(var_dir: Path) -> None:
    """umask 077 from now on; var/ and everything under it 0700/0600 (the Maildir outbox
    holds delivered passwords, var/ the database and the key). A 0700 var/ alone keeps
    others out; the walk also mends files made before (an older version, a copy)."""
    os.umask(0o077)
    if not var_dir.exists():
        return
    var_dir.chmod(0o700)
    for root, dirs, files in os.walk(var_dir):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def run_pass(  # noqa: PLR0913 - stop, reader and metrics are the daemon's own knobs; the CLI passes none
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
    processes, issues and sends. Items are set aside by each stage's own boundary (the
    shunt); what escapes a stage is the database or the mailbox being away.
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
        sent = send_queued(rt, transport).sent
    if reader:
        release_done(rt, intake)
    return PassReport(received, processed, issued, sent)


EXIT_RESTART = 75  # EX_TEMPFAIL: memory past limits.max_rss_mb; systemd starts a fresh one
EXIT_DATABASE = 69  # EX_UNAVAILABLE: the database stayed away past database_grace_seconds


class _Interrupted(Exception):
    """Raised by the signal handler out of a wait (never out of a message in hand)."""


class _Signals:
    """SIGTERM/SIGINT set `event`; during a wait they also end the wait at once."""

    def __init__(self) -> None:
        self.event, self.waiting, self.signum = threading.Event(), False, 0
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        # No logging here: the signal may land while this thread holds the log's lock
        # (writing a line to a full pipe), and logging again would deadlock the daemon.
        self.signum = signum
        sdnotify.notify("STOPPING=1")
        self.event.set()
        if self.waiting:
            raise _Interrupted

    def wait(self, wait: Callable[[], object]) -> None:
        self.waiting = True
        try:
            # A signal that landed after the loop's last check but before `waiting` was set
            # did not interrupt anything: do not start a wait that nothing will end early.
            if self.event.is_set():
                raise _Interrupted
            wait()
        finally:
            self.waiting = False


@dataclass
class _Daemon:
    """What the loop keeps between passes."""

    rt: Runtime
    intake: Intake
    transport: Transport
    signals: _Signals
    lock: ReaderLock
    metrics: Metrics | None
    watchdog: float | None
    idle_timeout: float
    started_at: datetime
    mailbox: Outage
    database: Outage


def run_forever(
    rt: Runtime,
    intake: Intake,
    transport: Transport,
    *,
    idle_timeout: float = 30.0,
    metrics: Metrics | None = None,
) -> int:
    """Run passes until SIGTERM/SIGINT; between passes wait on the mailbox (IDLE or poll).

    Returns the exit code: 0 when stopped by a signal, EXIT_RESTART past the memory limit
    (after the message in hand), EXIT_DATABASE when the database stayed away past its grace.
    A signal during a pass lets the message in hand finish; during the wait it exits at
    once. A mailbox or database that is away is waited for with backoff; no item's fault
    ends the loop (each stage sets its item aside). systemd hears READY=1 once running,
    WATCHDOG=1 at least every `watchdog_interval`, STOPPING=1 on the signal.
    """
    watchdog = sdnotify.watchdog_interval()
    grace = rt.settings.limits.database_grace_seconds
    lock = ReaderLock(rt.engine, rt.settings.var_dir / "reader.lock")
    idle = min(idle_timeout, watchdog or idle_timeout)
    d = _Daemon(rt, intake, transport, _Signals(), lock, metrics, watchdog, idle, rt.clock(),
                Outage("mailbox", watchdog), Outage("database", watchdog, grace))  # fmt: skip
    os.umask(0o077)
    log.info("daemon_started", intake=rt.settings.intake, outbox=rt.settings.outbox)
    sdnotify.notify("READY=1")
    scheduler = start_scheduler(rt)  # invoice reminders and expiry (writes outbox rows only)
    code: int | None = None
    try:
        while code is None and not d.signals.event.is_set():
            code = _cycle(d)
    finally:
        if d.signals.signum:
            log.info("daemon_stopping", signal=d.signals.signum)
        scheduler.shutdown(wait=True)
        d.lock.release()
        intake.close()
        transport.close()
        with contextlib.suppress(SQLAlchemyError):
            forget(rt.engine)
    log.info("daemon_stopped", exit_code=code or 0)
    return code or 0


def _cycle(d: _Daemon) -> int | None:
    """One pass and the wait after it; an exit code when the daemon must end."""
    rt, stop = d.rt, d.signals.event
    every = min(BEAT_IN_PASS, d.watchdog or BEAT_IN_PASS)
    carry_on = _KeepAlive(rt, d.started_at, reader=False, stop=stop, every=every)
    reader = False
    try:
        reader = carry_on.reader = d.lock.try_acquire()  # on PostgreSQL it needs the database
        _release_dead(rt)
        # The role is known (heartbeat) before a long first pass.
        heartbeat(rt.engine, now=rt.clock(), started_at=d.started_at, reader=reader,
                  imap_contact=False)  # fmt: skip
        report = run_pass(rt, d.intake, d.transport, carry_on, reader=reader, metrics=d.metrics)
        if report.received or report.sent or report.issued or report.processed:
            log.info("pass_done", reader=reader, **report.__dict__)
        d.mailbox.over()
        d.database.over()
        _beat(rt, d.started_at, reader=reader, imap=reader, metrics=d.metrics)
        if carry_on.rss_mb is not None:
            log.warning("memory_limit_restart", rss_mb=carry_on.rss_mb,
                        limit_mb=rt.settings.limits.max_rss_mb)  # fmt: skip
            return EXIT_RESTART
        if stop.is_set():
            return 0
        timeout = min(d.idle_timeout, 1.0) if report.issued else d.idle_timeout
        if not reader:  # not the reader: look again soon for work the reader archived
            timeout = min(timeout, NON_READER_WAIT)
        d.signals.wait(lambda: d.intake.wait(timeout) if reader else stop.wait(timeout))
    except _Interrupted:
        return 0
    except ImapUnavailable as exc:
        _beat(rt, d.started_at, reader=reader, imap=False, metrics=d.metrics)
        d.mailbox.wait(str(exc), stop)
    except Exception as exc:
        if not is_outage(exc):
            raise  # the daemon's own fault (an item's is set aside inside its stage)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [repr(exc)]
        if carry_on.asked > 1:  # a message was done since the last wait: a new outage
            d.database.over()
        if not d.database.wait(reason[0], stop):
            return EXIT_DATABASE
        _recover(rt)
    return None


class Outage:
    """The mailbox or the database away: one log line, waits with backoff (pinging the
    watchdog), and with a `grace` the verdict that it has been away too long."""

    def __init__(self, what: str, watchdog: float | None, grace: float | None = None) -> None:
        self.what, self.watchdog, self.grace = what, watchdog, grace
        self.count, self.since = 0, 0.0

    def wait(self, error: str, stop: threading.Event) -> bool:
        """Wait before the next try; False when away for longer than the grace."""
        now = time.monotonic()
        if self.count == 0:
            self.since = now
        self.count += 1
        if self.grace is not None and now - self.since > self.grace:
            log.error(f"{self.what}_gone", error=error, away_s=round(now - self.since))
            return False
        delay = min(OUTAGE_BACKOFF_MAX, OUTAGE_BACKOFF * 2 ** (self.count - 1))
        if self.grace is not None:
            delay = min(delay, max(0.0, self.since + self.grace - now) + OUTAGE_BACKOFF)
        if self.count == 1 or self.what == "mailbox":
            log.error(f"{self.what}_unavailable", error=error, retry_in_s=delay)
        while delay > 0 and not stop.is_set():  # wait, still pinging the watchdog
            step = min(delay, self.watchdog or delay)
            stop.wait(step)
            delay -= step
            sdnotify.notify("WATCHDOG=1")
        return True

    def over(self) -> None:
        if self.count:
            log.info(f"{self.what}_back", away_s=round(time.monotonic() - self.since))
        self.count = 0


def _recover(rt: Runtime) -> None:
    """After a database outage: drop the broken connections, free what this process held
    (the message in hand is claimed again at once; its attempt stays counted)."""
    rt.engine.dispose()
    try:
        with transaction(rt.engine) as session:
            release_own_leases(session)
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise  # still away: the next pass fails and waits again


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _KeepAlive:
    """The `stop` callback of a pass, asked before each message: should the pass end?

    It also writes the heartbeat and pings the systemd watchdog every BEAT_IN_PASS seconds,
    so a long pass (a backlog after an outage outlasts WatchdogSec) is not taken for a hang;
    and it ends the pass when the process has grown past limits.max_rss_mb (`rss_mb` set),
    so the daemon restarts between messages instead of being killed in one.
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
        self.rss_mb: float | None = None
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        if time.monotonic() - self.last >= self.every:
            heartbeat(self.rt.engine, now=self.rt.clock(), started_at=self.started_at,
                      reader=self.reader, imap_contact=False)  # fmt: skip
            sdnotify.notify("WATCHDOG=1")
            self.last = time.monotonic()
        # Only once a message of this pass is done (process_pending asks once per message):
        # a daemon that starts above a limit set too low would restart forever, idle.
        rss = rss_mb() if self.asked > 1 else 0.0
        if rss > self.rt.settings.limits.max_rss_mb:
            self.rss_mb = round(rss)
        return self.stop.is_set() or self.rss_mb is not None


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
    sdnotify.notify("WATCHDOG=1")
    try:
        heartbeat(rt.engine, now=now, started_at=started_at, reader=reader, imap_contact=imap)
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise
        return  # the database is away too: the next pass finds out and waits
    if metrics is not None:
        metrics.imap_connected.set(1 if imap and rt.settings.intake == "imap" else 0)
        metrics.last_pass.set(now.timestamp())
