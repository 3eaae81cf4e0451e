"""Header measurement on raw bytes (mailbot.mail.measure) and bounded reading (mail.reading)."""

from __future__ import annotations

import io
import select
import time
import zipfile
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import SimpleNamespace

import pytest

from mailbot import guard
from mailbot.config import Limits
from mailbot.mail import message
from mailbot.mail.measure import (
    Excess,
    HeaderLimits,
    fields,
    measure_headers,
    raw_facts,
)
from mailbot.mail.message import parse_message
from mailbot.mail.reading import Unreadable, read_message
from mailbot.mail.render import make_env, render_body

LIMITS = HeaderLimits()
WORD = "=?utf-8?b?0J/RgNC40LLQtdGC?="


def mail(*headers: str, body: str = "Здравствуйте") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (head + "\r\n" + body).encode()


NORMAL = mail(
    "From: Иван <ivan@example.test>",
    "To: info@example.test",
    f"Subject: {' '.join([WORD] * 30)}",
    "Message-ID: <1@example.test>",
)


def test_fields_split_the_header_block_as_the_stdlib_does() -> None:
    raw = b"From: a@b.test\r\nSubject: one\r\n two\rX-A: 1\nnot a header line\r\nTo: x\r\n\r\nB"
    names = [n for n, _, _ in fields(raw)]
    parsed = BytesParser(policy=policy.compat32).parsebytes(raw)
    assert names == [b"from", b"subject", b"x-a"]
    assert [k.lower().encode() for k in parsed] == names
    _, start, end = list(fields(raw))[1]
    assert raw[start:end] == b"Subject: one\r\n two\r"


def test_a_normal_message_is_within_every_limit() -> None:
    assert measure_headers(NORMAL, LIMITS) is None
    assert measure_headers(b"", LIMITS) is None
    assert measure_headers(b"\r\nbody only", LIMITS) is None


@pytest.mark.parametrize(
    ("raw", "what", "name"),
    [
        (mail(f"Subject: {' '.join([WORD] * 201)}"), Excess.encoded_words, "subject"),
        (mail("From: a@b.test", "X-Big: " + "a" * 70_000), Excess.header, "x-big"),
        (mail(*[f"Received: from h{i} by mx" for i in range(1001)]), Excess.headers, ""),
        (mail(*[f"X-H{i}: " + "v" * 60_000 for i in range(5)]), Excess.total, ""),
        (b"Subject: " + b"=?" * 300 + b"\r\n\r\n", Excess.encoded_words, "subject"),
        (b"Subject: x" + b"\r " * 40_000 + b"\r\n\r\n", Excess.header, "subject"),
        (b"X: " + b"y" * 300_000, Excess.total, ""),  # no line end at all
    ],
)
def test_each_limit_is_found_with_the_header_named(raw: bytes, what: Excess, name: str) -> None:
    excess = measure_headers(raw, LIMITS)
    assert excess is not None
    assert (excess.what, excess.name) == (what, name)
    assert excess.measured > excess.limit
    assert "not parsed" in excess.describe()


def test_limits_are_exact() -> None:
    small = HeaderLimits(total_bytes=10_000, header_bytes=100, encoded_words=3, count=3)
    line = "X: " + "a" * 95  # 98 bytes + CRLF = 100
    assert measure_headers(mail(line), small) is None
    assert measure_headers(mail(line + "a"), small) is not None
    assert measure_headers(mail(f"S: {WORD} {WORD} {WORD}"), small) is None
    assert measure_headers(mail(f"S: {WORD} {WORD} {WORD} {WORD}"), small) is not None
    assert measure_headers(mail("A: 1", "B: 2", "C: 3"), small) is None
    assert measure_headers(mail("A: 1", "B: 2", "C: 3", "D: 4"), small) is not None


def test_measuring_a_huge_header_block_is_linear_and_quick() -> None:
    """2 MB of encoded words and 30,000 Received lines: measured, not parsed."""
    subject = mail("From: a@b.test", "Subject: " + " ".join([WORD] * 70_000))
    received = mail(*[f"Received: from h{i}.example.test by mx" for i in range(30_000)])
    for raw in (subject, received):
        started = time.process_time()
        assert measure_headers(raw, LIMITS) is not None
        assert raw_facts(raw).from_addr in ("a@b.test", "")
        assert time.process_time() - started < 2.0  # CPU seconds; quadratic would be hours


@pytest.mark.parametrize(
    ("from_line", "addr"),
    [
        ("From: Иван <Ivan@Example.test>", "ivan@example.test"),
        ("From: ivan@example.test", "ivan@example.test"),
        ("From: =?utf-8?q?evil=40x.test=0D=0A?= <real@example.test>", "real@example.test"),
        ("From: a@b.test, c@d.test", ""),  # not one plain address
        ("From: a@b.test\r\n\tBcc: x@y.test", ""),  # folded junk: no address
        ("From: " + "x" * 5000 + " <a@b.test>", ""),  # too long to read raw
        ("From: no address here", ""),
    ],
)
def test_the_sender_is_read_raw_only_when_it_is_one_plain_address(
    from_line: str, addr: str
) -> None:
    raw = mail(from_line, "Message-ID: <m1@example.test>", "Subject: x")
    facts = raw_facts(raw)
    assert facts.from_addr == addr
    assert facts.message_id == "<m1@example.test>"
    assert not facts.automatic


def test_two_from_headers_give_no_sender() -> None:
    assert raw_facts(mail("From: a@b.test", "From: c@d.test")).from_addr == ""


@pytest.mark.parametrize(
    "marker",
    [
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "List-Id: <news.example.test>",
        "Return-Path: <>",
        "Content-Type: multipart/report; report-type=delivery-status",
    ],
)
def test_robot_mail_is_marked_automatic(marker: str) -> None:
    assert raw_facts(mail("From: a@b.test", marker)).automatic
    assert raw_facts(mail("From: MAILER-DAEMON@b.test")).automatic
    assert not raw_facts(mail("From: a@b.test", "Auto-Submitted: no")).automatic


def test_read_message_refuses_over_a_limit_and_parses_within() -> None:
    lim = Limits()
    parsed = read_message(NORMAL, lim)
    assert not isinstance(parsed, Unreadable)
    assert parsed == parse_message(NORMAL)
    assert parsed.subject.startswith("Привет")
    refused = read_message(mail(f"Subject: {' '.join([WORD] * 201)}"), lim)
    assert isinstance(refused, Unreadable)
    assert (refused.problem, refused.params) == (
        "encoded_words",
        {"name": "subject", "limit": "200"},
    )
    head = read_message(NORMAL, lim, headers_only=True)
    assert not isinstance(head, Unreadable) and head.text == ""


def test_read_message_configured_limits_apply() -> None:
    lim = Limits(max_headers=2)
    refused = read_message(mail("A: 1", "B: 2", "C: 3"), lim)
    assert isinstance(refused, Unreadable) and refused.problem == "headers"


def zip_of(size: int) -> bytes:
    """A zip of one .xlsx member `size` bytes long, compressing ~30:1 (under the bomb ratio)."""
    block = bytearray(1000)
    data = bytearray()
    seed = 1
    while len(data) < size:
        for j in range(0, 1000, 40):  # a few pseudo-random bytes per KB defeat deflate
            seed = (seed * 1103515245 + 12345) % 2**31
            block[j] = seed & 0xFF
        data += block
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("list.xlsx", bytes(data[:size]))
    return buf.getvalue()


def zips_mail(count: int, size: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@b.test", "zips"
    msg.set_content("x")
    packed = zip_of(size)
    for i in range(count):
        msg.add_attachment(packed, "application", "zip", filename=f"z{i}.zip")
    return bytes(msg)


def test_all_zips_of_a_message_unpack_to_at_most_the_total_budget() -> None:
    raw = zips_mail(6, 15_000_000)
    parsed = read_message(raw, Limits())
    assert not isinstance(parsed, Unreadable)
    unpacked = [a for a in parsed.attachments if a.filename == "list.xlsx"]
    zips = [a for a in parsed.attachments if a.filename.endswith(".zip")]
    fit = message.ZIP_MAX_TOTAL_BYTES // 15_000_000
    assert fit >= 1 and len(unpacked) == fit
    assert len(zips) == 6 - fit  # kept as zips: answered as files we cannot read
    assert sum(len(a.data) for a in unpacked) <= message.ZIP_MAX_TOTAL_BYTES


def _hog(raw: bytes, *, headers_only: bool = False) -> object:
    """A parse that wants 4 GB: far past any cap, whatever free heap the worker inherited."""
    return bytearray(4 << 30)


def test_a_parse_over_its_memory_cap_is_unreadable_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker runs under RLIMIT_AS: a parse that allocates past it is a verdict.

    Workers are forked after the patch (they run the hog) and after the undo (they parse).
    """
    lim = Limits(parse_memory_mb=48)
    monkeypatch.setattr(message, "parse_message", _hog)
    guard.stop_worker()  # the next parse forks a worker that has the patch
    verdict = read_message(NORMAL, lim)
    assert isinstance(verdict, Unreadable)
    assert verdict.problem == "memory"
    assert "48 MB" in verdict.reason
    monkeypatch.undo()
    guard.stop_worker()
    after = read_message(NORMAL, lim)
    assert not isinstance(after, Unreadable) and after.from_addr == "ivan@example.test"


def _stuck(raw: bytes, *, headers_only: bool = False) -> object:
    """A parse that never ends (blocked, not spinning: the machine is shared)."""
    select.select([], [], [])
    return None


def test_a_parse_past_its_deadline_is_unreadable_and_the_worker_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lim = Limits(parse_seconds=0.5)
    monkeypatch.setattr(message, "parse_message", _stuck)
    guard.stop_worker()
    verdict = read_message(NORMAL, lim)
    assert isinstance(verdict, Unreadable)
    assert (verdict.problem, verdict.params) == ("time", {"seconds": "0.5"})
    monkeypatch.undo()
    after = read_message(NORMAL, lim)  # the killed worker's successor parses
    assert not isinstance(after, Unreadable) and after.from_addr == "ivan@example.test"


@pytest.mark.parametrize(
    ("raw_or_why", "sentence"),
    [
        (
            mail(*[f"X-H{i}: " + "v" * 60_000 for i in range(5)]),
            "заголовки письма занимают больше 256 КБ",
        ),
        (mail("X-Big: " + "a" * 70_000), "заголовок «x-big» длиннее 64 КБ"),
        (
            mail(f"Subject: {' '.join([WORD] * 201)}"),
            "заголовок «subject» состоит из слишком многих",
        ),
        (mail(*[f"R: {i}" for i in range(1001)]), "в письме больше 1000 заголовков"),
        (mail("Message-ID: " + "(" * 60_000), "оно повреждено или устроено слишком сложно"),
        (Unreadable("time", "", {"seconds": "10"}), "его разбор не уложился в 10 с"),
        (
            Unreadable("memory", "", {"memory_mb": "512"}),
            "для его разбора не хватило отведённой памяти (512 МБ)",
        ),
    ],
)
def test_every_refusal_has_its_russian_sentence(
    raw_or_why: bytes | Unreadable, sentence: str
) -> None:
    why = raw_or_why if isinstance(raw_or_why, Unreadable) else read_message(raw_or_why, Limits())
    assert isinstance(why, Unreadable)
    service = SimpleNamespace(name="Штрихкоды", email="info@example.test", phone="")
    text = render_body(
        make_env(), "unreadable", {"problem": why.problem, **why.params, "service": service}
    )
    assert sentence in " ".join(text.split())
    assert "Пришлите, пожалуйста, заявление (.docx)" in " ".join(text.split())
    assert ":\n" + sentence.split()[0] in text and ".\n\nТак бывает" in text
