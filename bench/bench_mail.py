"""Mail edge benchmark: ImapIntake and SmtpTransport against floors measured in the same run.

Starts its own loopback stack (tests/mailstack.py) and prints
  * APPEND -> ImapIntake.wait() wake-up latency (median of 20) vs bare imapclient IDLE,
  * fetch_new() msg/s over 500 messages vs bare imapclient BODY.PEEK[] in batches of 20,
  * SmtpTransport.deliver() msg/s vs bare aiosmtplib on one connection, same relay,
  * with --daemon: the real daemon (`python -m mailbot run`, IMAP IDLE + SMTP): APPEND of a
    valid 50-row application -> its invoice reply accepted by SMTP (seen in the recipient's
    mailbox by NOOP polling every 5 ms), p50/p95 over --daemon-runs, beside the bare
    APPEND -> IDLE floor; then the idle daemon's RSS and CPU over --idle-seconds.
Asserts nothing.  Run: /tmp/venv/bin/python bench/bench_mail.py [--fetch N] [--send N]
       [--daemon [--daemon-runs 50] [--idle-seconds 60]]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosmtplib
import structlog
from imapclient import IMAPClient

from mailbot.mail.intake.imap import ImapIntake, ImapSettings
from mailbot.mail.smtp import SmtpSettings, SmtpTransport
from mailbot.mail.transport import Envelope
from tests.mailstack import MailStack, start_mailstack

REPO = Path(__file__).resolve().parents[1]
USER = "info@example.test"
RCPT = "accountant@example.test"
BODY = b"".join(b"%075d\r\n" % i for i in range(800))  # ~60 KB, like FLOORS.md


def message(to: str = USER, body: bytes = BODY) -> tuple[bytes, str]:
    mid = f"<{uuid.uuid4().hex}@bench.test>"
    head = f"From: a@example.test\r\nTo: {to}\r\nSubject: bench\r\nMessage-ID: {mid}\r\n\r\n"
    return head.encode() + body, mid


def intake(stack: MailStack, mailbox: str) -> ImapIntake:
    return ImapIntake(
        ImapSettings(
            host=stack.host,
            port=stack.imap_port,
            security="none",
            user=USER,
            password=stack.password,
            mailbox=mailbox,
        )
    )


def idle_latency_intake(stack: MailStack, rounds: int) -> list[float]:
    box = "bench-idle"
    with stack.imap(USER) as c:
        c.create_folder(box)
    started = threading.Event()
    real_idle = IMAPClient.idle

    def idle(self: Any) -> Any:
        result = real_idle(self)
        started.set()
        return result

    IMAPClient.idle = idle
    reader, out = intake(stack, box), []
    try:
        with stack.imap(USER) as writer, ThreadPoolExecutor(1) as pool:
            for _ in range(rounds):
                list(reader.fetch_new())
                started.clear()
                woke = pool.submit(lambda: (reader.wait(30), time.monotonic()))
                started.wait(10)
                t0 = time.monotonic()
                writer.append(box, message()[0])
                _, t1 = woke.result(timeout=30)
                out.append(t1 - t0)
    finally:
        IMAPClient.idle = real_idle
        reader.close()
    return out


def idle_latency_bare(stack: MailStack, rounds: int) -> list[float]:
    box = f"bench-idle-bare-{uuid.uuid4().hex[:8]}"  # measured twice with --daemon
    out = []
    with stack.imap(USER) as c, stack.imap(USER) as writer:
        c.create_folder(box)
        c.select_folder(box)
        for _ in range(rounds):
            c.idle()
            t0 = time.monotonic()
            writer.append(box, message()[0])
            while not any(r[1:2] == (b"EXISTS",) for r in c.idle_check(timeout=30)):
                pass
            out.append(time.monotonic() - t0)
            c.idle_done()
    return out


def fill(stack: MailStack, box: str, n: int) -> None:
    with stack.imap(USER) as c:
        c.create_folder(box)
        for _ in range(n):
            c.append(box, message()[0])


def fetch_intake(stack: MailStack, box: str) -> tuple[int, float]:
    reader = intake(stack, box)
    t0 = time.monotonic()
    n = sum(1 for _ in reader.fetch_new())
    dt = time.monotonic() - t0
    reader.close()
    return n, dt


def fetch_bare(stack: MailStack, box: str) -> tuple[int, float]:
    with stack.imap(USER) as c:
        t0 = time.monotonic()
        c.select_folder(box)
        uids = c.search("ALL")
        n = 0
        for i in range(0, len(uids), 20):
            n += len(c.fetch(uids[i : i + 20], [b"BODY.PEEK[]"]))
        return n, time.monotonic() - t0


def send_transport(stack: MailStack, n: int) -> float:
    t = SmtpTransport(SmtpSettings(host=stack.host, port=stack.smtp_port, security="none"))
    msgs = [message(RCPT) for _ in range(n)]
    t0 = time.monotonic()
    for data, mid in msgs:
        t.deliver(data, Envelope(mail_from=USER, recipients=(RCPT,), message_id=mid))
    dt = time.monotonic() - t0
    t.close()
    return dt


def send_bare(stack: MailStack, n: int) -> float:
    msgs = [message(RCPT)[0] for _ in range(n)]

    async def run() -> float:
        smtp = aiosmtplib.SMTP(hostname=stack.host, port=stack.smtp_port, start_tls=False)
        await smtp.connect()
        t0 = time.monotonic()
        for data in msgs:
            await smtp.sendmail(USER, [RCPT], data)
        dt = time.monotonic() - t0
        await smtp.quit()
        return dt

    return asyncio.run(run())


def daemon_site(stack: MailStack, root: Path) -> tuple[Path, dict[str, str]]:
    """A workdir whose daemon reads INBOX of USER over IMAP and sends through the relay."""
    from tests.e2e.test_mail_edge import set_key  # the e2e tests' config writer

    root.mkdir()
    text = (REPO / "config.toml").read_text()
    for section, key, value in (
        ("intake", "kind", '"imap"'),
        ("imap", "host", '"127.0.0.1"'),
        ("imap", "port", str(stack.imap_port)),
        ("imap", "security", '"none"'),
        ("outbox", "kind", '"smtp"'),
        ("smtp", "host", '"127.0.0.1"'),
        ("smtp", "port", str(stack.smtp_port)),
        ("smtp", "security", '"none"'),
        ("limits", "replies_per_sender_per_hour", "100000"),
        ("limits", "applications_per_sender_per_hour", "100000"),  # caps on mail to others
        ("limits", "applications_per_domain_per_hour", "100000"),
        ("limits", "mails_per_recipient_per_day", "100000"),
    ):
        text = set_key(text, section, key, value)
    (root / "config.toml").write_text(text)
    env = {**os.environ, "MAILBOT_IMAP_PASSWORD": stack.password,
           "MAILBOT_SMTP_PASSWORD": stack.password,
           "MAILBOT_DATABASE_URL": f"sqlite:///{root / 'mailbot.db'}"}  # fmt: skip
    subprocess.run([sys.executable, "-m", "mailbot", "db", "upgrade"], cwd=root, env=env,
                   check=True, capture_output=True)  # fmt: skip
    return root, env


def _count(client: Any) -> int:
    client.noop()
    return len(client.search("ALL"))


def daemon_latency(
    stack: MailStack, root: Path, runs: int, log: Path | None = None
) -> tuple[list[float], int]:
    """APPEND -> reply in the recipient's INBOX, per run; returns (seconds, daemon pid)."""
    from bench_backlog import application_files, application_mail

    workdir, env = daemon_site(stack, root)
    sink = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "run"], cwd=workdir, env=env,
                            stdout=sink, stderr=sink)  # fmt: skip
    files, out = application_files(50), []
    # replies go to the address in the application (every run the same client)
    with stack.imap(USER) as writer, stack.imap(RCPT) as reader:
        reader.select_folder("INBOX", readonly=True)
        for i in range(runs + 1):  # the first run warms the daemon up, not counted
            before = _count(reader)
            raw = application_mail(RCPT, files)
            time.sleep(0.3)  # let the daemon settle into IDLE after the previous reply
            t0 = time.monotonic()
            writer.append("INBOX", raw)
            deadline = t0 + 60
            while _count(reader) <= before:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise SystemExit("daemon did not answer within 60 s")
                time.sleep(0.005)  # the NOOP poll interval of the measurement
            if i:
                out.append(time.monotonic() - t0)
    return out, proc.pid


def idle_footprint(pid: int, seconds: float) -> tuple[float, float]:
    """(RSS MB at the end, CPU seconds used) of an idle process over `seconds`."""

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    start = cpu()
    time.sleep(seconds)  # the measurement window
    used = cpu() - start
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS")))
    return rss_kb / 1024, used


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fetch", type=int, default=500)
    ap.add_argument("--send", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--daemon", action="store_true", help="also time the real daemon")
    ap.add_argument("--daemon-only", action="store_true", help="only the daemon figures")
    ap.add_argument("--daemon-runs", type=int, default=50)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--daemon-log", type=Path, help="keep the daemon's log lines in this file")
    a = ap.parse_args()
    # info lines per message would drown the figures (and cost ~0.1 ms each on a TTY)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="bench-mail-", dir="/tmp") as tmp:
        t0 = time.monotonic()
        stack = start_mailstack(Path(tmp) / "stack", catchall=RCPT)
        print(f"mail stack up in {(time.monotonic() - t0) * 1000:.0f} ms")
        try:
            if not a.daemon_only:
                run(stack, a)
            if a.daemon or a.daemon_only:
                run_daemon(stack, Path(tmp) / "site", a)
        finally:
            stack.stop()


def run_daemon(stack: MailStack, root: Path, a: argparse.Namespace) -> None:
    lat, pid = daemon_latency(stack, root, a.daemon_runs, a.daemon_log)
    floor = statistics.median(idle_latency_bare(stack, a.rounds)) * 1000
    p50 = statistics.median(lat) * 1000
    p95 = statistics.quantiles(lat, n=20)[-1] * 1000 if len(lat) > 1 else p50
    print(f"APPEND valid 50-row application -> invoice reply accepted, {len(lat)} runs:")
    print(f"  daemon                   p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    print(f"  floor: bare IDLE         p50 {floor:7.1f} ms   "
          f"(mailbot adds {p50 - floor:.0f} ms at p50; target <= 150 ms)")  # fmt: skip
    rss, cpu = idle_footprint(pid, a.idle_seconds)
    print(
        f"idle daemon over {a.idle_seconds:.0f} s: RSS {rss:.1f} MB (target <= 120), "
        f"CPU {cpu:.2f} s ({cpu / a.idle_seconds * 100:.2f} %)"
    )
    os.kill(pid, 15)


def run(stack: MailStack, a: argparse.Namespace) -> None:
    ours = statistics.median(idle_latency_intake(stack, a.rounds)) * 1000
    floor = statistics.median(idle_latency_bare(stack, a.rounds)) * 1000
    print(f"APPEND -> wake-up, median of {a.rounds}:")
    print(f"  ImapIntake.wait()        {ours:8.1f} ms")
    print(f"  bare imapclient IDLE     {floor:8.1f} ms   (ratio {ours / floor:.2f})")

    fill(stack, "bench-fetch", a.fetch)
    n_ours, t_ours = min((fetch_intake(stack, "bench-fetch") for _ in range(a.repeat)),
                         key=lambda r: r[1])  # fmt: skip
    n_bare, t_bare = min((fetch_bare(stack, "bench-fetch") for _ in range(a.repeat)),
                         key=lambda r: r[1])  # fmt: skip
    print(f"fetch {a.fetch} messages of {len(message()[0]) // 1024} KB, best of {a.repeat}:")
    print(f"  ImapIntake.fetch_new()   {n_ours / t_ours:8.0f} msg/s")
    print(f"  bare BODY.PEEK[] x20     {n_bare / t_bare:8.0f} msg/s   "
          f"(ratio {(n_ours / t_ours) / (n_bare / t_bare):.2f})")  # fmt: skip

    t_ours = best(lambda: send_transport(stack, a.send), a.repeat)
    t_bare = best(lambda: send_bare(stack, a.send), a.repeat)
    print(f"SMTP -> relay -> LMTP, {a.send} messages, one connection, best of {a.repeat}:")
    print(f"  SmtpTransport.deliver()  {a.send / t_ours:8.0f} msg/s")
    print(f"  bare aiosmtplib          {a.send / t_bare:8.0f} msg/s   "
          f"(ratio {t_bare / t_ours:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
