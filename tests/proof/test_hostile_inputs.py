"""≥ 200 hostile files and messages through the real pipeline, on SQLite and PostgreSQL.

Each message is archived (`archive_one`) and processed (`process_pending`) in this process,
like the daemon does. Every one must end answered in Russian, recorded without an answer
(robots, duplicates), or parked (failed/quarantined) — and the process must live on, no reply
may carry an injected header, no file may land outside var/, every guarded parse must end
within its time limit, and memory must stay under the bounds below.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlmodel import Session, col, select

from mailbot import guard, pipeline
from mailbot.handlers import applications, orders
from mailbot.mail.intake.base import OversizedMessage, RawMessage
from mailbot.parsers.problems import Location, ParseResult
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, OutboxMessage
from tests.proof.builders import (
    ESCAPE_TOKEN,
    INJECTED_HEADER,
    INJECTED_RCPT,
    HostileMail,
    hostile_mails,
)

T = TypeVar("T")
MB = 1024 * 1024
# The daemon may grow by at most this much over its size before the run, whatever it reads
# (the biggest message is 30 MB, held a few times over while parsed and archived).
RSS_GROWTH_BOUND_MB = 600  # measured: ~425 MB on SQLite
# A guarded parse runs in a child capped at its size at fork + parse_memory_mb (512 MB):
# the largest child may not exceed the worker's size plus that cap.
TOP_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
}
PART_HEADERS = {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
UNANSWERED_KINDS = {"automatic", "bounce", "duplicate"}
INJECTED_LINE = re.compile(rf"^(bcc|{INJECTED_HEADER}):", re.I | re.M)
CYRILLIC = re.compile(r"[А-Яа-яЁё]{3,}")


def _rss_now() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _files_outside_var(root: Path) -> set[Path]:
    return {
        p
        for p in root.rglob("*")
        if p.is_file() and "var" not in p.relative_to(root).parts and "db-" not in p.name
    }


FROM_NAME_CASES = "inject-from-name-"  # checked by the angle-address test at the end


_BUILT: dict[str, bytes] = {}


def built(mail: HostileMail) -> bytes:
    """The message bytes, built once per test session (both databases get the same)."""
    if mail.name not in _BUILT:
        _BUILT[mail.name] = mail.build()
    return _BUILT[mail.name]


@pytest.fixture
def parse_times(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, float, float]]]:
    """(file, seconds, budget seconds) of every guarded parse the handlers run."""
    seen: list[tuple[str, float, float]] = []

    def timed(parse: Callable[[], ParseResult[T]], where: Location, budget: guard.Budget) -> Any:
        started = time.monotonic()
        try:
            return guard.guarded(parse, where, budget)
        finally:
            seen.append((where.file, time.monotonic() - started, budget.seconds))

    monkeypatch.setattr(applications, "guarded", timed)
    monkeypatch.setattr(orders, "guarded", timed)
    yield seen


def _item(rt: Runtime, name: str, data: bytes) -> RawMessage | OversizedMessage:
    key = f"proof:{name}"
    if len(data) > rt.settings.limits.max_message_bytes:  # what the intake hands over
        return OversizedMessage(key, len(data), data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    return RawMessage(key, data, len(data))


def _headers_of(mail: EmailMessage) -> Iterator[tuple[str, set[str]]]:
    yield "top", {k.lower() for k in mail}
    for part in mail.walk():
        if part is not mail:
            yield "part", {k.lower() for k in part}


def violations(inbound: list[InboundMessage], outbox: list[OutboxMessage]) -> list[str]:
    """Every broken promise, as «key: what» lines (empty when all hold)."""
    out: list[str] = []
    replies: dict[int | None, list[OutboxMessage]] = {}
    for o in outbox:
        replies.setdefault(o.inbound_id, []).append(o)
    for r in inbound:
        if r.status not in ("processed", "failed", "quarantined", "duplicate"):
            out.append(f"{r.key}: left {r.status}")
        elif r.status == "processed" and r.kind not in UNANSWERED_KINDS and not replies.get(r.id):
            out.append(f"{r.key}: {r.kind} from {r.from_addr!r} not answered")
        for o in replies.get(r.id, []):
            out += [f"{r.key}: {o.kind} {v}" for v in _reply_problems(o)]
    return out


def _reply_problems(o: OutboxMessage) -> Iterator[str]:
    mail = BytesParser(policy=policy.default).parsebytes(o.body)
    for where, names in _headers_of(mail):
        allowed = TOP_HEADERS if where == "top" else PART_HEADERS
        if not names <= allowed:
            yield f"unexpected {where} headers {sorted(names - allowed)}"
    head = o.body.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    if INJECTED_LINE.search(head):
        yield "an injected header line"
    # the applicant, plus the e-mail written in the form for an invoice
    if not 1 <= len(o.recipients) <= 2 or any(INJECTED_RCPT in r for r in o.recipients):
        yield f"recipients {o.recipients}"
    text = mail.get_body(("plain",))
    if text is None or not CYRILLIC.search(str(text.get_content())):
        yield "no Russian text"


def archive_all(rt: Runtime, mails: list[HostileMail]) -> list[str]:
    """Archive every mail as take_in does; an exception here would stop the daemon's pass."""
    crashed = []
    for mail in mails:
        try:
            pipeline.archive_one(rt, _item(rt, mail.name, built(mail)))
        except Exception as exc:  # noqa: BLE001 - reported as a broken promise below
            crashed.append(f"proof:{mail.name}: archive_one raised {type(exc).__name__}")
    return crashed


NUL_HEADER_CASES = ("inject-subject-nul",)  # checked on PostgreSQL by the test at the end


@pytest.mark.parametrize(
    "db_factory",
    ["sqlite", pytest.param("postgresql", marks=[pytest.mark.pg, pytest.mark.slow])],
    indirect=True,
)
def test_two_hundred_hostile_mails_end_answered_or_parked_and_nothing_escapes(
    rt: Runtime, tmp_path: Path, parse_times: list[tuple[str, float, float]]
) -> None:
    mails = [
        m
        for m in hostile_mails()
        if not m.name.startswith(FROM_NAME_CASES) and m.name not in NUL_HEADER_CASES
    ]
    assert len(mails) >= 200
    before_files = _files_outside_var(tmp_path)
    peak_before, rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, _rss_now()
    crashed = archive_all(rt, mails)
    pipeline.process_pending(rt)  # returns: the process is alive and the loop kept going
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    with Session(rt.engine) as s:
        inbound = list(s.exec(select(InboundMessage).order_by(col(InboundMessage.id))))
        outbox = list(s.exec(select(OutboxMessage)))
    assert len(inbound) == len(mails) - len(crashed)
    broken = crashed + violations(inbound, outbox)
    assert not broken, "\n".join(broken)
    assert _files_outside_var(tmp_path) == before_files
    assert not any(ESCAPE_TOKEN in p.name for p in Path("/tmp").iterdir())
    assert not any(ESCAPE_TOKEN in p.name for p in Path.cwd().rglob(f"*{ESCAPE_TOKEN}*"))

    overran = [(f, round(t, 2)) for f, t, limit in parse_times if t > limit + 2.0]
    assert parse_times and overran == []
    limit = rt.settings.limits.parse_memory_mb * MB
    assert peak_after <= max(peak_before, rss_before + RSS_GROWTH_BOUND_MB * MB)
    assert children_peak <= peak_after + limit
    assert os.getpid() > 0  # still here


def test_a_reply_goes_to_the_angle_address_whatever_the_display_name_holds(rt: Runtime) -> None:
    cases = [m for m in hostile_mails() if m.name.startswith(FROM_NAME_CASES)]
    for mail in cases:
        pipeline.archive_one(rt, _item(rt, mail.name, built(mail)))
    pipeline.process_pending(rt)
    with Session(rt.engine) as s:
        inbound = list(s.exec(select(InboundMessage)))
        outbox = list(s.exec(select(OutboxMessage)))
    assert [r.from_addr for r in inbound if "injected" in r.from_addr] == []
    assert violations(inbound, outbox) == []


@pytest.mark.parametrize(
    "db_factory", [pytest.param("postgresql", marks=pytest.mark.pg)], indirect=True
)
def test_a_nul_in_a_header_is_archived_and_answered_on_postgresql(rt: Runtime) -> None:
    cases = [m for m in hostile_mails() if m.name in NUL_HEADER_CASES]
    assert archive_all(rt, cases) == []
    pipeline.process_pending(rt)
    with Session(rt.engine) as s:
        inbound = list(s.exec(select(InboundMessage)))
        outbox = list(s.exec(select(OutboxMessage)))
    assert len(inbound) == len(cases)
    assert violations(inbound, outbox) == []


def test_a_from_header_read_as_a_group_is_archived_and_answered(rt: Runtime) -> None:
    raw = b"From: Content-Type: text/plain; charset=utf-8\r\nTo: info@example.test\r\n\r\nhi"
    assert archive_all(rt, [HostileMail("group-from", lambda: raw)]) == []
