"""MIME as applicants' mail programs really send it: parse_message never crashes or lies."""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

from mailbot.handlers.filing import pick
from mailbot.mail.classify import MessageKind, classify
from mailbot.mail.message import ParsedMessage, parse_message
from mailbot.mail.render import Mail, compose, reply_subject

DOCX_BYTES = b"PK\x03\x04 docx body"
XLSX_BYTES = b"PK\x03\x04 xlsx body"


def mime(parts: str, *, headers: str = "", subject: str = "Заявка") -> bytes:
    head = (
        "From: Client <client@example.test>\r\nTo: info@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m1@example.test>\r\nMIME-Version: 1.0\r\n{headers}"
        'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    )
    return (head + parts + "--XX--\r\n").encode("utf-8", "surrogateescape")


def part(headers: str, body: bytes) -> str:
    b64 = base64.b64encode(body).decode()
    return f"--XX\r\n{headers}Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"


def kind_of(msg: ParsedMessage) -> MessageKind:
    return classify(
        msg,
        our_addresses=frozenset({"info@example.test"}),
        accountants=frozenset(),
        authserv_id="",
        in_thread=False,
        known_client=False,
    ).kind


def test_rfc2231_filename_in_utf8_is_decoded() -> None:
    raw = mime(part(
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        "filename*=UTF-8''%D0%97%D0%B0%D1%8F%D0%B2%D0%BB%D0%B5%D0%BD%D0%B8%D0%B5.docx\r\n",
        DOCX_BYTES,
    ))  # fmt: skip
    [att] = parse_message(raw).attachments
    assert (att.filename, att.data) == ("Заявление.docx", DOCX_BYTES)


def test_rfc2047_filename_inside_quotes_as_outlook_writes_it_is_decoded() -> None:
    encoded = "=?windows-1251?B?" + base64.b64encode("Перечень.xlsx".encode("cp1251")).decode()
    raw = mime(part(
        f'Content-Type: application/octet-stream; name="{encoded}?="\r\n'
        f'Content-Disposition: attachment; filename="{encoded}?="\r\n',
        XLSX_BYTES,
    ))  # fmt: skip
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == ["Перечень.xlsx"]
    assert pick(msg)[1] is not None  # octet-stream is judged by the name, not the type


def test_cyrillic_text_in_koi8r_is_read() -> None:
    body = "Добрый день, высылаю заявку.".encode("koi8-r")
    raw = mime(part("Content-Type: text/plain; charset=koi8-r\r\n", body))
    assert parse_message(raw).text == "Добрый день, высылаю заявку."


def test_unknown_or_wrong_charset_labels_fall_back_instead_of_crashing() -> None:
    cp1251 = "Прошу выставить счёт".encode("cp1251")
    for label in ("x-unknown-8bit", "utf-8", "windows-9999"):
        raw = mime(part(f"Content-Type: text/plain; charset={label}\r\n", cp1251))
        assert parse_message(raw).text == "Прошу выставить счёт", label


def test_unknown_charset_in_an_rfc2231_filename_does_not_crash() -> None:
    raw = mime(part(
        "Content-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*=x-nonsense''%FF%FE.docx\r\n",
        DOCX_BYTES,
    ))  # fmt: skip
    [att] = parse_message(raw).attachments
    assert att.data == DOCX_BYTES
    assert "\n" not in att.filename


def test_forwarded_application_inside_message_rfc822_is_found() -> None:
    inner = (
        "From: boss@client.test\r\nSubject: заявка\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="YY"\r\n\r\n'
        "--YY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nвот\r\n"
        "--YY\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="Заявление.docx"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(DOCX_BYTES).decode()}\r\n"
        "--YY\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="Перечень.xlsx"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(XLSX_BYTES).decode()}\r\n"
        "--YY--\r\n"
    )
    raw = mime(
        "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nПересылаю.\r\n"
        "--XX\r\nContent-Type: message/rfc822\r\n"
        'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n' + inner + "\r\n",
        subject="Fwd: заявка",
    )
    msg = parse_message(raw)
    form, products, others = pick(msg)
    assert form is not None and form.data == DOCX_BYTES
    assert products is not None and products.data == XLSX_BYTES
    assert others == []
    assert kind_of(msg) == MessageKind.application


def _zip(members: dict[str, bytes], *, utf8_names: bool = True) -> bytes:
    """A zip; without utf8_names the names are cp866 bytes without the UTF-8 flag (Windows)."""
    buf, swaps = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (name, data) in enumerate(members.items()):
            if utf8_names:
                zf.writestr(name, data)
                continue
            legacy = name.encode("cp866")
            placeholder = chr(65 + i).encode() * len(legacy)  # same length, plain ASCII
            swaps.append((placeholder, legacy))
            zf.writestr(placeholder.decode(), data)
    out = buf.getvalue()
    for placeholder, legacy in swaps:
        out = out.replace(placeholder, legacy)
    return out


def _zipped_mail(zdata: bytes) -> ParsedMessage:
    return parse_message(mime(part(
        'Content-Type: application/zip; name="forms.zip"\r\n'
        'Content-Disposition: attachment; filename="forms.zip"\r\n',
        zdata,
    )))  # fmt: skip


def test_forms_inside_a_zip_are_taken_out_and_the_zip_is_not_reported() -> None:
    zdata = _zip(
        {"Заявление.docx": DOCX_BYTES, "папка/Перечень.xlsx": XLSX_BYTES, "readme.txt": b"x"},
        utf8_names=False,
    )
    msg = _zipped_mail(zdata)
    assert sorted(a.filename for a in msg.attachments) == ["Заявление.docx", "Перечень.xlsx"]
    form, products, others = pick(msg)
    assert (form and form.data, products and products.data, others) == (
        DOCX_BYTES,
        XLSX_BYTES,
        [],
    )


def test_zip_member_names_never_become_paths() -> None:
    msg = _zipped_mail(_zip({"../../etc/Заявление.docx": DOCX_BYTES, "C:\\x\\П.xlsx": XLSX_BYTES}))
    assert sorted(a.filename for a in msg.attachments) == ["Заявление.docx", "П.xlsx"]


def test_zip_bomb_is_not_unpacked_and_is_answered_as_a_file_we_cannot_read() -> None:
    bomb = _zip({"Перечень.xlsx": b"\0" * 30_000_000})
    msg = _zipped_mail(bomb)
    assert [a.filename for a in msg.attachments] == ["forms.zip"]
    assert [a.filename for a in pick(msg)[2]] == ["forms.zip"]


def test_zip_with_too_many_members_or_corrupt_is_kept_as_is() -> None:
    many = _zip({f"f{i}.csv": b"a;b\n" for i in range(100)})
    assert [a.filename for a in _zipped_mail(many).attachments] == ["forms.zip"]
    assert [a.filename for a in _zipped_mail(b"PK\x03\x04garbage").attachments] == ["forms.zip"]


def test_inline_attachment_is_a_file_but_an_embedded_signature_image_is_not() -> None:
    raw = mime(
        part(
            "Content-Type: application/octet-stream\r\n"
            'Content-Disposition: inline; filename="Заявление.docx"\r\n',
            DOCX_BYTES,
        )
        + part(
            'Content-Type: image/png; name="image001.png"\r\nContent-ID: <image001@01D>\r\n'
            'Content-Disposition: inline; filename="image001.png"\r\n',
            b"\x89PNG",
        )
    )
    assert [a.filename for a in parse_message(raw).attachments] == ["Заявление.docx"]


def test_tnef_winmail_dat_is_left_alone_and_answered_as_a_wrong_format() -> None:
    raw = mime(part(
        'Content-Type: application/ms-tnef; name="winmail.dat"\r\n'
        'Content-Disposition: attachment; filename="winmail.dat"\r\n',
        b"\x78\x9f\x3e\x22 tnef",
    ))  # fmt: skip
    msg = parse_message(raw)
    assert kind_of(msg) == MessageKind.application  # so it gets the "send .docx/.xlsx" reply
    assert [a.filename for a in pick(msg)[2]] == ["winmail.dat"]


def test_an_attachment_filename_folded_over_two_lines_becomes_one_line() -> None:
    raw = mime(part(
        "Content-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="../../../etc/passwd\r\n .docx"\r\n',
        DOCX_BYTES,
    ))  # fmt: skip
    [att] = parse_message(raw).attachments
    # The path stays as written: a file name is only shown in replies, never used as a path
    # (the archive is content-addressed; see tests/proof for traversal names end to end).
    assert att.filename == "../../../etc/passwd .docx"


def test_encoded_newlines_in_name_and_subject_cannot_inject_headers_into_our_reply() -> None:
    evil = "=?utf-8?q?Hi=0D=0ABcc:_victim@example.org=0D=0AX-Evil:_1?="
    raw = mime("", headers="", subject=evil).replace(b"From: Client", f"From: {evil}".encode())
    msg = parse_message(raw)
    assert "\n" not in msg.subject and "\r" not in msg.subject
    assert "\n" not in msg.from_name
    body = compose(
        Mail(to=(msg.from_addr,), subject=reply_subject(msg.subject, "EAN-2026-000001"),
             text="Здравствуйте!", in_reply_to="<a@b>\r\nBcc: x@y"),
        message_id="<x@example.test>", from_addr="info@example.test",
        from_name=msg.from_name, date=datetime(2026, 11, 25, tzinfo=UTC),
    )  # fmt: skip
    reply = BytesParser(policy=policy.default).parsebytes(body)
    assert reply["Bcc"] is None and reply["X-Evil"] is None
    assert sorted(reply.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
         "Auto-Submitted", "X-Auto-Response-Suppress", "MIME-Version", "Content-Type",
         "Content-Transfer-Encoding"]
    )  # fmt: skip


def test_a_reply_repeats_at_most_200_characters_of_a_huge_subject_and_keeps_its_tag() -> None:
    subject = reply_subject("Re: " + "Я" * 1_000_000, "EAN-2026-000001")
    assert subject == "Re: " + "Я" * 200 + "… [EAN-2026-000001]"
    assert reply_subject("Заявка [EAN-2026-000001]", "EAN-2026-000001") == (
        "Re: Заявка [EAN-2026-000001]"
    )


def test_a_content_disposition_cut_off_inside_a_parameter_is_still_an_attachment() -> None:
    # Found by the fuzzer: the standard library raises IndexError on «filename*» cut short.
    raw = (
        b"From: a@client.example.test\nSubject: x\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhi\n'
        b"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment;\n"
        b" filename*"
    )
    assert [a.filename for a in parse_message(raw).attachments] == ["attachment"]


def test_a_reply_with_a_line_too_long_for_smtp_is_folded_and_reads_back_the_same() -> None:
    pasted = "Наименование: " + "очень длинное название продукции " * 60  # ~3.7 KB, one line
    for text, cte in (("Здравствуйте!\n" + pasted + "\n", "quoted-printable"),
                      ("Здравствуйте!\n", "8bit")):  # fmt: skip
        raw = compose(
            Mail(to=("a@client.example.test",), subject="Re: x", text=text),
            message_id="<x@example.test>", from_addr="info@example.test", from_name="mailbot",
            date=datetime(2026, 11, 25, tzinfo=UTC),
        )  # fmt: skip
        assert max(len(line) for line in raw.split(b"\n")) <= 998
        reply = BytesParser(policy=policy.default).parsebytes(raw)
        assert reply["Content-Transfer-Encoding"] == cte
        assert reply.get_content() == text


def test_a_reply_is_auto_replied_and_a_mail_that_answers_nothing_is_auto_generated() -> None:
    def header(in_reply_to: str) -> str:
        raw = compose(
            Mail(to=("a@client.example.test",), subject="x", text="x", in_reply_to=in_reply_to),
            message_id="<x@example.test>", from_addr="info@example.test", from_name="mailbot",
            date=datetime(2026, 11, 25, tzinfo=UTC),
        )  # fmt: skip
        return str(BytesParser(policy=policy.default).parsebytes(raw)["Auto-Submitted"])

    assert header("<a@client.example.test>") == "auto-replied"
    assert header("") == "auto-generated"


def test_a_subject_longer_than_a_column_is_cut_where_replies_still_fit() -> None:
    """Every subject column is varchar(998); a reply adds «Re: » and a tag (PostgreSQL refused
    a 2,000-character subject's ticket before the cut)."""
    msg = parse_message(mime(part("Content-Type: text/plain", b"x"), subject="Ж" * 2000))
    assert len(msg.subject) == 900
    assert len(reply_subject(msg.subject, "[Обращение №2026-00001]")) <= 998
