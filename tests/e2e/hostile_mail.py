"""The hostile messages of issue 15 (attacker bytes at the message level), built in memory.

Shared by tests/e2e/test_hostile_daemon.py and bench/bench_hostile.py. Each comes from its own
sender, so the reply (if any) can be told apart; `answer` says what must happen to it.
"""

from __future__ import annotations

import base64
import functools
import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from tests.proof.builders import DATE, INFO, PAYLOAD, attach, sender

WORD = "=?utf-8?b?" + base64.b64encode("Заявка на штрихкоды".encode()).decode() + "?="
ZIP_UNPACKED = 20_000_000  # each zip's one member: at the per-member limit, ratio < 200


@dataclass(frozen=True)
class Hostile:
    name: str
    sender: str
    build: Callable[[], bytes]
    quarantined: bool  # refused unparsed (and answered), or read and answered normally


def message_id(frm: str) -> str:
    return f"<hostile.{frm.replace('@', '.')}>"


def _head(frm: str, *extra: str, subject: str = "Заявка") -> str:
    lines = [f"From: {frm}", f"To: {INFO}", f"Date: {DATE}", *extra]
    if not any(x.lower().startswith("subject:") for x in extra):
        lines.append(f"Subject: {subject}")
    if not any(x.lower().startswith("message-id:") for x in extra):
        lines.append(f"Message-ID: {message_id(frm)}")
    return "".join(f"{x}\r\n" for x in lines)


def encoded_subject(frm: str) -> bytes:
    """A Subject of 2 MB of RFC 2047 encoded words (the stdlib parser is quadratic in them)."""
    words = " ".join([WORD] * (2 * 1024 * 1024 // (len(WORD) + 1)))
    return (_head(frm, f"Subject: {words}")
            + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nтекст\r\n"
            ).encode()  # fmt: skip


def many_received(frm: str) -> bytes:
    received = "".join(
        f"Received: from relay{i}.example.test (relay{i}.example.test [192.0.2.{i % 250}])"
        f" by mx.example.test; {DATE}\r\n"
        for i in range(30_000)
    )
    return (received + _head(frm) + "\r\nтекст\r\n").encode()


def zip_member(size: int = ZIP_UNPACKED) -> bytes:
    """One zip with one .xlsx member of `size` bytes, compressing ~160:1 (bomb limit: 200)."""
    rnd = random.Random(7)  # noqa: S311 - reproducible filler, not a secret
    block = bytearray(1500)
    out = bytearray()
    while len(out) < size:
        block[0], block[750] = rnd.randrange(256), rnd.randrange(256)
        out += block
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Перечень.xlsx", bytes(out[:size]))
    return buf.getvalue()


def hundred_zips(frm: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Date"] = frm, INFO, "Заявка в архивах", DATE
    msg["Message-ID"] = message_id(frm)
    msg.set_content("Здравствуйте! Файлы в архивах.")
    packed = zip_member()
    for i in range(100):
        attach(msg, packed, f"Перечень-{i:03d}.zip", "application/zip")
    return bytes(msg)


def broken_base64(frm: str) -> bytes:
    junk = "QUJD!!!@@@###\r\n====\r\nZm9v*&^%\r\n" + "A" * 77 + "\r\n=\r\n"
    return (
        _head(frm)
        + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        + "--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Transfer-Encoding: base64\r\n\r\n0J/RgNC4!!!0LLQtdGC\r\n"
        + "--B\r\nContent-Type: application/vnd.openxmlformats-officedocument"
        + ".wordprocessingml.document\r\nContent-Transfer-Encoding: base64\r\n"
        + 'Content-Disposition: attachment; filename="Заявление.docx"\r\n\r\n'
        + junk
        + "--B--\r\n"
    ).encode()


def nul_bytes(frm: str) -> bytes:
    return (
        _head(frm, "X-Nul: a\x00b", subject="Заявка\x00\x00 на коды")
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "текст\x00\x00\x00 с нулями\r\n"
    ).encode()


def crlf_injection(frm: str) -> bytes:
    encoded = "=?utf-8?b?" + base64.b64encode(PAYLOAD.encode()).decode() + "?="
    return (
        _head(frm, f"Subject: {encoded}", "Reply-To: =?utf-8?q?a=0D=0ABcc:_evil@injected.test?=")
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nтекст\r\n"
    ).encode()


def hostile_kinds(make_sender: Callable[[str], str] = sender) -> list[Hostile]:
    kinds: list[tuple[str, Callable[[str], bytes], bool]] = [
        ("encoded-subject-2mb", encoded_subject, True),
        ("received-30000", many_received, True),
        ("zips-100x20mb", hundred_zips, False),
        ("broken-base64", broken_base64, False),
        ("nul-bytes", nul_bytes, False),
        ("crlf-injection", crlf_injection, False),
    ]
    return [
        Hostile(
            name,
            make_sender(f"hostile-{name}"),
            functools.partial(build, make_sender(f"hostile-{name}")),
            q,
        )
        for name, build, q in kinds
    ]
