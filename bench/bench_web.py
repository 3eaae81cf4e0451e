"""The web account under load: status and balance pages beside the bare /hello of the same app.

A fresh site (SQLite file, or a fresh PostgreSQL database with --pg) gets N clients, each
with an issued application (codes, invoice, events: the status page's real work); a real
`mailbot web` process serves it on loopback. Then, with httpx on asyncio:
- log-ins: `--clients` clients log in at once (argon2-bound); beside it the floor, argon2
  verifications per second in this process;
- for `--seconds` each, `--clients` logged-in clients hammer /hello (no session, no database:
  the floor), /applications (the status page) and /balance, one request in flight per client;
- p50/p99 latency and requests/s per route, the ratio status p99 / hello p99, the web
  process RSS (/proc) after each phase.
The load generator runs on the same cores as the server: its own CPU time is printed too.
Asserts nothing.

    python bench/bench_web.py [--seconds 30] [--clients 50] [--accounts 200]
                              [--pg [postgresql://postgres@127.0.0.1:5432/postgres]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psycopg
import structlog
from sqlalchemy import text
from sqlmodel import select
from stdnum.ru import inn as ru_inn

from mailbot.billing.invoices import create_invoice
from mailbot.config import load_settings
from mailbot.issuance.credentials import HASHER, hash_password
from mailbot.issuance.issue import issue_paid
from mailbot.issuance.pool import sync_prefixes
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.db import transaction
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import (
    Client,
    InvoiceStatus,
)
from tests.fixtures.records import paid_application

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-пароль-для-нагрузки"  # noqa: S105 - the benchmark's clients
COOKIE = "mb_session"
LOGIN_CSRF = re.compile(r'name="csrf" value="([^"]*)"')
ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one request in flight
MB = 1024 * 1024
ROUTES = ("/hello", "/applications", "/balance")
SERIAL_SECONDS = 2.0


# ---- the site -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def database(pg: str | None, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database dropped at the end."""
    if pg is None:
        yield f"sqlite:///{folder / 'var/mailbot.db'}"
        return
    name = f"mailbot_bench_web_{uuid.uuid4().hex[:8]}"
    base = pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(pg, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def company_inn(i: int) -> str:
    body = f"77{i:07d}"
    return body + str(ru_inn.calc_company_check_digit(body))


def settle_statistics(rt: Runtime) -> None:
    """PostgreSQL: VACUUM ANALYZE the freshly filled database, as a live one has long been.
    Without it autovacuum's first round (a minute in) lands in the middle of a measured
    phase: whichever page ran then had a p99 of 120-160 ms against 10-15 ms before and after."""
    if rt.engine.dialect.name != "postgresql":
        return
    with rt.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def populate(rt: Runtime, accounts: int) -> list[str]:
    """`accounts` clients with one issued 5-code application each; their logins."""
    now = rt.clock()
    inns = [company_inn(i + 1) for i in range(accounts)]
    with transaction(rt.engine) as session:
        sync_prefixes(session, rt.settings.prefixes, now=now)
        for n, inn in enumerate(inns, start=1):
            app = paid_application(session, now, n, 5, inn=inn)
            invoice = create_invoice(
                session, app, count=5, new_client=True, settings=rt.settings, now=now
            )
            invoice.status, invoice.paid_at = InvoiceStatus.paid, now
    issued = issue_paid(rt)
    assert issued == accounts, f"issued {issued} of {accounts}"
    shared = hash_password(PASSWORD)
    with transaction(rt.engine) as session:
        for client in session.exec(select(Client)):
            client.password_hash, client.must_change = shared, False
            session.add(client)
    return inns


def write_config(folder: Path, port: int) -> None:
    text = (REPO / "config.toml").read_text()
    text = text.replace("port = 8080", f"port = {port}")
    text = text.replace('"http://localhost:8080"', f'"http://localhost:{port}"')
    (folder / "config.toml").write_text(text)


def serve(folder: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--log-level", "warning", "web", "--port", str(port)],
        cwd=folder,
        env={**os.environ, "MAILBOT_DATABASE_URL": url},
        stdout=(folder / f"web-{port}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mailbot web exited {proc.returncode}: see {folder}/web-{port}.log")
        hello = f"http://127.0.0.1:{port}/hello"
        with contextlib.suppress(OSError), urllib.request.urlopen(hello, timeout=1) as r:
            if r.status == 200:
                return proc
        time.sleep(0.05)  # poll interval
    raise SystemExit("mailbot web did not answer /hello within 60 s")


def rss_mb(pids: list[int]) -> float:
    """The largest RSS of the web processes (the target is per process)."""
    sizes = []
    for pid in pids:
        with open(f"/proc/{pid}/statm", "rb") as f:
            sizes.append(int(f.read().split()[1]) * resource.getpagesize() / MB)
    return max(sizes)


# ---- the load ---------------------------------------------------------------------------------


@dataclass
class Phase:
    route: str
    seconds: float
    rate: float = 0.0  # requests/s offered by all clients together; 0: back to back
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def achieved(self) -> float:
        """Requests/s answered 200."""
        return len(self.latencies) / self.seconds


def source(i: int) -> str:
    """Client i's own loopback address: 50 clients are 50 addresses, not one office's NAT
    (the per-address log-in throttle would otherwise count them as one guesser)."""
    return f"127.0.{1 + i // 250}.{2 + i % 250}"


async def log_in(bases: list[str], logins: list[str]) -> tuple[list[str], float, list[str]]:
    """Every login at once, each from its own address: their session cookies, the wall time
    (the log-in page's GET included), the failures."""

    async def one(i: int, login: str) -> str:
        transport = httpx.AsyncHTTPTransport(local_address=source(i))
        async with httpx.AsyncClient(
            base_url=bases[i % len(bases)],
            transport=transport,
            follow_redirects=False,
            timeout=120,
        ) as c:
            form = LOGIN_CSRF.search((await c.get("/login")).text)  # the log-in form's token
            csrf = {"csrf": html.unescape(form.group(1))} if form else {}
            r = await c.post("/login", data={"login": login, "password": PASSWORD, **csrf})
            if r.status_code != 303 or COOKIE not in c.cookies:
                return f"!{login}: {r.status_code}"
            return str(c.cookies[COOKIE])

    started = time.perf_counter()
    got = await asyncio.gather(*(one(i, x) for i, x in enumerate(logins)))
    wall = time.perf_counter() - started
    return [g for g in got if not g.startswith("!")], wall, [g for g in got if g.startswith("!")]


async def hammer(clients: list[httpx.AsyncClient], phase: Phase) -> None:
    """Each client keeps one request in flight for the phase's seconds: back to back
    (saturation), or paced so that all together offer `phase.rate` requests/s. A paced
    request's latency counts from its scheduled start, so a late generator or a queue in the
    server shows in the figures instead of hiding them (coordinated omission)."""
    start = time.perf_counter()
    deadline = start + phase.seconds
    period = len(clients) / phase.rate if phase.rate else 0.0

    async def one(i: int, c: httpx.AsyncClient) -> None:
        due = start + i * period / len(clients)
        while (now := time.perf_counter()) < deadline and due < deadline:
            if period and due > now:
                await asyncio.sleep(due - now)
            t0 = due if period else time.perf_counter()
            due += period
            try:
                r = await c.get(phase.route, timeout=30)
                key = "" if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            if key:
                phase.errors[key] = phase.errors.get(key, 0) + 1
            else:
                phase.latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))


async def pages(
    bases: list[str], cookies: list[str], args: argparse.Namespace, pids: list[int]
) -> float:
    """Every page phase on the same connections (opened and warmed up first); the peak RSS."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=bases[i % len(bases)],  # client i always talks to one process
                    cookies={COOKIE: cookie},
                    transport=httpx.AsyncHTTPTransport(local_address=source(i), limits=ONE),
                    follow_redirects=False,
                )
            )
            for i, cookie in enumerate(cookies)
        ]
        await asyncio.gather(*(c.get("/hello") for c in clients))  # connections open
        print(f"  one client alone, {SERIAL_SECONDS:g} s per route (the service time):")
        for route in ROUTES:
            alone = Phase(route, SERIAL_SECONDS)
            await hammer(clients[:1], alone)
            report_phase(alone, None, 0.0)
        peak = rss_mb(pids)
        paced: dict[str, Phase] = {}
        full: dict[str, Phase] = {}
        titles = (
            f"paced: {len(clients)} clients offering {args.rate:g} requests/s together",
            f"saturated: {len(clients)} clients, each request sent when the last came back",
        )
        for title, rate, phases in zip(titles, (args.rate, 0.0), (paced, full), strict=True):
            print(f"  {title}, {args.seconds:g} s per route:")
            for route in ROUTES:
                phase = phases[route] = Phase(route, args.seconds, rate)
                cpu = cpu_self()
                await hammer(clients, phase)
                hello = phases.get("/hello") if route != "/hello" else None
                report_phase(phase, hello, cpu_self() - cpu)
                peak = max(peak, rss_mb(pids))
    summary(paced, full, peak)
    return peak


def argon2_floor(repeat: int = 20) -> float:
    """Verifications per second of the shipped argon2id parameters, in this process."""
    stored = HASHER.hash(PASSWORD)
    started = time.perf_counter()
    for _ in range(repeat):
        HASHER.verify(stored, PASSWORD)
    return repeat / (time.perf_counter() - started)


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the run ----------------------------------------------------------------------------------


def report_phase(phase: Phase, hello: Phase | None, cpu: float) -> None:
    errors = ", ".join(f"{k} ×{v}" for k, v in sorted(phase.errors.items())) or "none"
    ratio = f"   p99 ×{phase.pct(0.99) / hello.pct(0.99):.2f} /hello" if hello else ""
    print(
        f"  {phase.route:<14} p50 {phase.pct(0.50):7.1f} ms   p99 {phase.pct(0.99):7.1f} ms   "
        f"{phase.achieved:7.1f} req/s   ({len(phase.latencies)} ok, errors: {errors}; "
        f"generator CPU {cpu:.1f} s){ratio}"
    )


def run(args: argparse.Namespace) -> None:
    kind = "PostgreSQL" if args.pg else "SQLite"
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    print(f"web account on {kind}, {args.processes} web process(es): {args.accounts} clients, "
          f"{args.clients} concurrent, {args.seconds:g} s per route "
          f"(load {os.getloadavg()[0]:.2f} at start)")  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with database(args.pg, folder) as url:
            port = free_port()
            write_config(folder, port)
            settings = load_settings(folder / "config.toml", env={"MAILBOT_DATABASE_URL": url})
            rt = build_runtime(settings)
            upgrade(rt.engine)
            started = time.perf_counter()
            logins = populate(rt, args.accounts)
            settle_statistics(rt)
            rt.engine.dispose()
            print(f"  setup: {args.accounts} issued applications in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            ports = [port] + [free_port() for _ in range(args.processes - 1)]
            procs.extend(serve(folder, url, p) for p in ports)
            pids = [p.pid for p in procs]
            print(f"  web process RSS after start: {rss_mb(pids):.1f} MB")
            bases = [f"http://127.0.0.1:{p}" for p in ports]
            measure(bases, pids, logins[: args.clients], args)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def measure(bases: list[str], pids: list[int], logins: list[str], args: argparse.Namespace) -> None:
    cookies, wall, failed = asyncio.run(log_in(bases, logins))
    floor = argon2_floor()
    rate = len(cookies) / wall
    print(f"  log-in:  {len(cookies)} clients at once in {wall:.2f} s = {rate:.1f} log-ins/s"
          f"   floor argon2id verify here {floor:.1f}/s (×{rate / floor:.2f})"
          + (f"   failed: {', '.join(failed[:3])}" if failed else ""))  # fmt: skip
    print(f"  web process RSS after the log-ins: {rss_mb(pids):.1f} MB")
    if not cookies:
        print("  no client could log in: no page figures")
        return
    asyncio.run(pages(bases, cookies, args, pids))


def summary(paced: dict[str, Phase], full: dict[str, Phase], peak: float) -> None:
    status, hello = paced["/applications"], paced["/hello"]
    print(f"  status page, {status.rate:g} req/s offered, {status.achieved:.1f} answered: "
          f"p99 {status.pct(0.99):.1f} ms (target on PostgreSQL: ≤ 50 ms at ≥ 200/s)")  # fmt: skip
    print(f"  status p99 / hello p99: ×{status.pct(0.99) / hello.pct(0.99):.2f} (target ≤ 3)")
    print(f"  saturated: status page {full['/applications'].achieved:.1f} req/s, "
          f"bare /hello {full['/hello'].achieved:.1f} req/s")  # fmt: skip
    print(f"  web process RSS peak: {peak:.1f} MB (target ≤ 150 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per route")
    parser.add_argument("--clients", type=int, default=50, help="concurrent logged-in clients")
    parser.add_argument("--rate", type=float, default=200.0, help="paced phases: requests/s")
    parser.add_argument("--accounts", type=int, default=200, help="clients in the database")
    parser.add_argument("--processes", type=int, default=1, help="`mailbot web` processes")
    parser.add_argument("--pg", nargs="?", const=PG_ADMIN, default=None, help="admin DSN")
    args = parser.parse_args()
    args.clients = min(args.clients, args.accounts)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(30)  # warnings and above
    )
    run(args)


if __name__ == "__main__":
    main()
