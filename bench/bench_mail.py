"""Mail edge benchmark: ImapIntake and SmtpTransport against floors measured in the same run.

Starts its own loopback stack (tests/mailstack.py) and prints
  * APPEND -> ImapIntake.wait() wake-up latency (median of 20) vs bare imapclient IDLE,
  * fetch_new() msg/s over 500 messages vs bare imapclient BODY.PEEK[] in batches of 20,
  * SmtpTransport.deliver() msg/s vs bare aiosmtplib on one connection, same relay.
Asserts nothing.  Run: /tmp/venv/bin/python bench/bench_mail.py [--fetch N] [--send N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
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

from mailbot.intake.imap import ImapIntake, ImapSettings
from mailbot.smtp import SmtpSettings, SmtpTransport
from mailbot.transport import Envelope
from tests.mailstack import MailStack, start_mailstack

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
    box = "bench-idle-bare"
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


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fetch", type=int, default=500)
    ap.add_argument("--send", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    # info lines per message would drown the figures (and cost ~0.1 ms each on a TTY)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="bench-mail-", dir="/tmp") as tmp:
        t0 = time.monotonic()
        stack = start_mailstack(Path(tmp))
        print(f"mail stack up in {(time.monotonic() - t0) * 1000:.0f} ms")
        try:
            run(stack, a)
        finally:
            stack.stop()


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
