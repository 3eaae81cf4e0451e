"""Builders of the proof suites' mail: valid applications and ≥ 200 hostile messages.

Hostile files come from `tests.corpus.hostile.CASES` (the parser engineers' 55 files); this
module wraps them in mail, and adds the hostile shapes that only exist at the message level:
deep multipart, thousands of parts, huge header lines, broken boundaries, CR/LF injection in
every field that reaches a reply, and traversal names.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import partial

from mailbot import forms
from tests.corpus import hostile
from tests.fixtures import forms_builders as fb

INFO = "info@example.test"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INJECTED_HEADER = "X-Injected"
INJECTED_RCPT = "evil@injected.test"
# Every injection payload tries to add these two header lines to whatever reply echoes it.
PAYLOAD = f"Заявка\r\nBcc: {INJECTED_RCPT}\r\n{INJECTED_HEADER}: yes\r\n\r\nbody"
ESCAPE_TOKEN = "proof-escape-7f3c"  # traversal names aim at files named with this token
DATE = format_datetime(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))


@dataclass(frozen=True)
class HostileMail:
    """One hostile inbound message and what it attacks."""

    name: str
    build: Callable[[], bytes]


def sender(n: int | str) -> str:
    return f"applicant-{n}@client.example.test"


def _mail(
    frm: str, subject: str = "Заявка на регистрацию", text: str = "Здравствуйте!"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, INFO, subject
    msg["Date"] = DATE
    digest = hashlib.sha256(f"{frm}|{subject}|{len(text)}".encode()).hexdigest()[:24]
    msg["Message-ID"] = f"<{digest}@client.example.test>"
    msg.set_content(text)
    return msg


def attach(msg: EmailMessage, data: bytes, filename: str, mime: str = DOCX) -> None:
    maintype, _, subtype = mime.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def application(frm: str, *, docx: bytes | None = None, xlsx: bytes | None = None) -> bytes:
    """A complete application mail: the form and the product list (valid by default)."""
    msg = _mail(frm)
    attach(msg, docx if docx is not None else forms.sample_application_docx(), "Заявление.docx")
    attach(msg, xlsx if xlsx is not None else forms.sample_products_xlsx(), "Перечень.xlsx", XLSX)
    return bytes(msg)


def invalid_application(frm: str) -> bytes:
    return application(
        frm, docx=forms.invalid_sample_application_docx(), xlsx=forms.invalid_sample_products_xlsx()
    )


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def _with_hostile_file(case: hostile.Hostile, n: int) -> bytes:
    """The hostile file in place of the document of its kind, the other one valid."""
    data = case.build()
    msg = _mail(sender(f"file{n}"))
    is_form = case.name.endswith((".docx", ".docm", ".doc"))
    attach(msg, data, case.name)
    if is_form:
        attach(msg, forms.sample_products_xlsx(), "Перечень.xlsx", XLSX)
    else:
        attach(msg, forms.sample_application_docx(), "Заявление.docx")
    return bytes(msg)


def _zipped_hostile_file(case: hostile.Hostile, n: int) -> bytes:
    msg = _mail(sender(f"zip{n}"))
    attach(msg, _zip({case.name: case.build()}), "документы.zip", "application/zip")
    return bytes(msg)


def _nested_multipart(depth: int) -> bytes:
    head = f"From: {sender('nested')}\r\nTo: {INFO}\r\nSubject: nested\r\nDate: {DATE}\r\n"
    parts = [head + "MIME-Version: 1.0\r\n"]
    for i in range(depth):
        if i:
            parts.append(f"--b{i - 1}\r\n")
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n')
    parts.append(f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\nглубоко\r\n")
    parts.extend(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return "".join(parts).encode()


def _many_attachments(count: int) -> bytes:
    head = (
        f"From: {sender('many')}\r\nTo: {INFO}\r\nSubject: 5000\r\nDate: {DATE}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n'
        "--M\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nфайлы\r\n"
    )
    part = (
        "--M\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="file{}.xlsx"\r\n\r\nx\r\n'
    )
    return (head + "".join(part.format(i) for i in range(count)) + "--M--\r\n").encode()


def _huge_header_line() -> bytes:
    return (
        f"From: {sender('hugeheader')}\r\nTo: {INFO}\r\nSubject: {'Я' * (1024 * 1024)}\r\n"
        f"X-Long: {'a' * (2 * 1024 * 1024)}\r\nDate: {DATE}\r\n\r\nтекст\r\n"
    ).encode()


def _raw_multipart(frm: str, content_type: str, body: str) -> bytes:
    return (
        f"From: {frm}\r\nTo: {INFO}\r\nSubject: boundary\r\nDate: {DATE}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n\r\n{body}"
    ).encode()


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def _boundary_cases() -> Iterator[HostileMail]:
    doc = _b64(forms.sample_application_docx())
    part = (
        f"Content-Type: {DOCX}\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="Заявление.docx"\r\n\r\n{doc}\r\n'
    )
    shapes = {
        "unterminated": ('multipart/mixed; boundary="B"', f"--B\r\n{part}"),
        "no-boundary-param": ("multipart/mixed", f"--B\r\n{part}--B--\r\n"),
        "mismatched": ('multipart/mixed; boundary="B"', f"--C\r\n{part}--C--\r\n"),
        "empty-boundary": ('multipart/mixed; boundary=""', f"--\r\n{part}----\r\n"),
        "unquoted-spaces": ("multipart/mixed; boundary=a b c", f"--a b c\r\n{part}--a b c--\r\n"),
        "unterminated-quote": ('multipart/mixed; boundary="B', f"--B\r\n{part}--B--\r\n"),
        "boundary-in-body": ('multipart/mixed; boundary="B"', f"--B\r\n{part}--B\r\n--B--\r\n"),
        "70-char-limit": (f'multipart/mixed; boundary="{"x" * 500}"', f"--{'x' * 500}\r\n{part}"),
        "bad-base64": (
            'multipart/mixed; boundary="B"',
            f"--B\r\n{part.replace(doc[:40], '!!!@@@###' * 4)}--B--\r\n",
        ),
        "no-headers-part": ('multipart/mixed; boundary="B"', "--B\r\n\r\n--B--\r\n"),
    }
    for name, (ctype, body) in shapes.items():
        yield HostileMail(
            f"boundary-{name}",
            partial(_raw_multipart, sender(f"b-{name}"), ctype, body),
        )


def _injection_cases() -> Iterator[HostileMail]:
    """CR/LF in every field that reaches a reply, raw and hidden in encoded words."""
    encoded = "=?utf-8?b?" + base64.b64encode(PAYLOAD.encode()).decode() + "?="
    q_encoded = "=?utf-8?q?Заявка=0D=0ABcc:_" + INJECTED_RCPT + "=0D=0AX-Injected:_yes?="

    def display(value: str, n: str) -> Callable[[], bytes]:
        return lambda: (
            f"From: {value} <{sender(n)}>\r\nTo: {INFO}\r\nSubject: Заявка\r\nDate: {DATE}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nтекст\r\n"
        ).encode()

    def subject(value: str, n: str) -> Callable[[], bytes]:
        return lambda: (
            f"From: {sender(n)}\r\nTo: {INFO}\r\nSubject: {value}\r\nDate: {DATE}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nтекст\r\n"
        ).encode()

    for label, value in {
        "encoded-b": encoded,
        "encoded-q": q_encoded,
        "folded": "Заявка\r\n Bcc: evil@injected.test",
        "bare-cr": "Заявка\rBcc: evil@injected.test\rX-Injected: yes",
        "nul": "Заявка\x00Bcc: evil@injected.test",
    }.items():
        yield HostileMail(f"inject-from-name-{label}", display(value, f"inj-name-{label}"))
        yield HostileMail(f"inject-subject-{label}", subject(value, f"inj-subj-{label}"))
    # the same with forms attached, so the reply is a problem list or an invoice
    for label, value in {"encoded-b": encoded, "encoded-q": q_encoded}.items():

        def with_forms(v: str = value, lab: str = label) -> bytes:
            msg = EmailMessage()
            msg["From"] = f"{sender('inj-forms-' + lab)}"
            msg["To"], msg["Date"] = INFO, DATE
            raw = bytes(_attach_forms(msg))
            return raw.replace(b"From: ", f"Subject: {v}\r\nFrom: ".encode(), 1)

        yield HostileMail(f"inject-subject-with-forms-{label}", with_forms)
    for label, filename in {
        "filename-crlf": "Заявление\r\nBcc: evil@injected.test\r\n.docx",
        "filename-encoded": "=?utf-8?b?" + base64.b64encode(PAYLOAD.encode()).decode() + "?=.docx",
        "filename-lf": "Заявление\nX-Injected: yes\n.docx",
    }.items():

        def with_name(fn: str = filename, lab: str = label) -> bytes:
            msg = _mail(sender(f"inj-{lab}"))
            attach(msg, b"not a docx", "x.docx")
            raw = bytes(msg)
            return raw.replace(b'filename="x.docx"', f'filename="{fn}"'.encode(), 1)

        yield HostileMail(f"inject-{label}", with_name)
    for field in ("Полное наименование организации / ИП", "Сокращённое наименование",
                  "Контактное лицо", "Руководитель", "Юридический адрес", "E-mail"):  # fmt: skip
        values = {**fb.VALID_ORG, field: fb.VALID_ORG[field] + "\r\nBcc: evil@injected.test\r\n"
                  "X-Injected: yes"}  # fmt: skip
        yield HostileMail(
            f"inject-form-{field[:12]}",
            partial(_form_injection, values, field),
        )


def _form_injection(values: dict[str, str], field: str) -> bytes:
    digest = hashlib.sha256(field.encode()).hexdigest()[:8]
    return application(sender(f"inj-form-{digest}"), docx=fb.application_docx(values))


def _attach_forms(msg: EmailMessage) -> EmailMessage:
    msg.set_content("Заявка во вложении")
    attach(msg, forms.sample_application_docx(), "Заявление.docx")
    attach(msg, forms.sample_products_xlsx(), "Перечень.xlsx", XLSX)
    return msg


TRAVERSAL_NAMES = (
    f"../../../../../../tmp/{ESCAPE_TOKEN}.docx",
    f"/tmp/{ESCAPE_TOKEN}-abs.docx",
    f"..\\..\\..\\..\\tmp\\{ESCAPE_TOKEN}-win.docx",
    f"C:\\Windows\\{ESCAPE_TOKEN}.docx",
    f"Заявление\x00../../{ESCAPE_TOKEN}.docx",
    "../../etc/passwd",
    "/etc/passwd",
    f"var/../../{ESCAPE_TOKEN}-var.xlsx",
    f"./././../{ESCAPE_TOKEN}-dot.xlsx",
    f"{'../' * 200}{ESCAPE_TOKEN}-deep.xlsx",
)


def _traversal_cases() -> Iterator[HostileMail]:
    for i, name in enumerate(TRAVERSAL_NAMES):

        def plain(fn: str = name, n: int = i) -> bytes:
            msg = _mail(sender(f"trav{n}"))
            attach(msg, forms.sample_application_docx(), "x.docx")
            return bytes(msg).replace(b'filename="x.docx"', f'filename="{fn}"'.encode(), 1)

        def rfc2231(fn: str = name, n: int = i) -> bytes:
            msg = _mail(sender(f"trav2231-{n}"))
            attach(msg, forms.sample_products_xlsx(), fn.replace("\x00", ""), XLSX)
            return bytes(msg)

        def zipped(fn: str = name, n: int = i) -> bytes:
            msg = _mail(sender(f"travzip{n}"))
            entries = {
                fn: forms.sample_application_docx(),
                "Перечень.xlsx": forms.sample_products_xlsx(),
            }
            attach(msg, _zip(entries), "forms.zip", "application/zip")
            return bytes(msg)

        yield HostileMail(f"traversal-{i}", plain)
        yield HostileMail(f"traversal-2231-{i}", rfc2231)
        yield HostileMail(f"traversal-zip-{i}", zipped)


def _truncated(whole: bytes, cut: int, n: int) -> bytes:
    return whole[:cut].replace(b"trunc@", f"trunc{n}@".encode())


def _truncations() -> Iterator[HostileMail]:
    whole = application(sender("trunc"))
    for i in range(24):
        cut = max(1, len(whole) * (i + 1) // 25)
        yield HostileMail(f"truncated-{i}", partial(_truncated, whole, cut, i))


def _oddities() -> Iterator[HostileMail]:
    shapes: dict[str, Callable[[], bytes]] = {
        "empty": lambda: b"",
        "only-newlines": lambda: b"\r\n" * 100,
        "garbage": lambda: bytes(range(256)) * 64,
        "no-from": lambda: f"To: {INFO}\r\nSubject: x\r\n\r\nтекст".encode(),
        "eight-bit-headers": lambda: (
            "From: Пётр <" + sender("8bit") + ">\r\nTo: " + INFO + "\r\nSubject: Заявка ё\r\n\r\nя"
        ).encode("cp1251"),
        "unknown-charset": lambda: (
            f"From: {sender('charset')}\r\nTo: {INFO}\r\nSubject: =?x-unknown?b?0JfQsNGP?=\r\n"
            "Content-Type: text/plain; charset=x-klingon\r\n\r\nтекст"
        ).encode(),
        "bad-rfc2231": lambda: (
            f"From: {sender('2231')}\r\nTo: {INFO}\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
            "Content-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*0*=utf-8''%D0; filename*2=zz; "
            "filename*1*=%ZZ\r\n\r\nxx\r\n--B--\r\n"
        ).encode(),
        "many-from": lambda: (
            "".join(f"From: someone{i}@x.test\r\n" for i in range(1000))
            + f"To: {INFO}\r\nSubject: x\r\n\r\nтекст"
        ).encode(),
        "rfc822-loop": lambda: _forwards(150),
        "zip-bomb-attachment": lambda: _zip_bomb_mail(),
        "zip-of-many": lambda: _zip_of_many(),
        "huge-text": lambda: bytes(_mail(sender("hugetext"), text="Я" * 3_000_000)),
        "message-id-flood": lambda: (
            f"From: {sender('refs')}\r\nTo: {INFO}\r\nSubject: Re: x\r\n"
            f"References: {' '.join(f'<{i}@x>' for i in range(50_000))}\r\n\r\nтекст"
        ).encode(),
    }
    for name, build in shapes.items():
        yield HostileMail(f"odd-{name}", build)


def _forwards(depth: int) -> bytes:
    """A forward of a forward … `depth` times (message/rfc822 parts, 8bit, no re-encoding)."""
    raw = f"From: {sender('fwd-inner')}\r\nSubject: inner\r\n\r\nтекст\r\n"
    for i in range(depth):
        raw = (
            f"From: {sender('fwd')}\r\nTo: {INFO}\r\nSubject: Fwd {i}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="f{i}"\r\n\r\n--f{i}\r\n'
            f"Content-Type: message/rfc822\r\n\r\n{raw}\r\n--f{i}--\r\n"
        )
    return raw.encode()


def _zip_bomb_mail() -> bytes:
    inner = _zip({"Перечень.xlsx": b"\x00" * (30 * 1024 * 1024)})
    msg = _mail(sender("zipbomb"))
    attach(msg, inner, "bomb.zip", "application/zip")
    return bytes(msg)


def _zip_of_many() -> bytes:
    msg = _mail(sender("zipmany"))
    attach(msg, _zip({f"{i}.xlsx": b"x" for i in range(5000)}), "many.zip", "application/zip")
    return bytes(msg)


def hostile_mails() -> list[HostileMail]:
    """Every hostile message: ≥ 200, each from its own sender (the reply limit is per sender)."""
    out = [
        HostileMail(f"file-{c.name}", partial(_with_hostile_file, c, n))
        for n, c in enumerate(hostile.CASES)
    ]
    out += [
        HostileMail(f"zipped-{c.name}", partial(_zipped_hostile_file, c, n))
        for n, c in enumerate(hostile.CASES)
        if len(c.build()) < 4 * 1024 * 1024
    ]
    out += [
        HostileMail("nested-multipart-200", lambda: _nested_multipart(200)),
        HostileMail("attachments-5000", lambda: _many_attachments(5000)),
        HostileMail("header-line-2mb", _huge_header_line),
    ]
    out += [*_boundary_cases(), *_injection_cases(), *_traversal_cases()]
    out += [*_truncations(), *_oddities()]
    return out
