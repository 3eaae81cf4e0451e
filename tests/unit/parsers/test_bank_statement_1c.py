"""1CClientBankExchange statements: encodings, sections, real-export quirks, fingerprints."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from mailbot.parsers.bank_statement_1c import (
    Statement,
    StatementDocument,
    find_invoice_numbers,
    parse_statement,
)
from tests.fixtures.statements import (
    CLIENT_ACCOUNT,
    CLIENT_INN,
    CLIENT_NAME,
    OTHER_CLIENT_ACCOUNT,
    OTHER_CLIENT_INN,
    OUR_ACCOUNT,
    OUR_SECOND_ACCOUNT,
    SUPPLIER_ACCOUNT,
    incoming,
    outgoing,
    split_purpose,
    statement_bytes,
)

OURS = {OUR_ACCOUNT, OUR_SECOND_ACCOUNT}
PURPOSE = "Оплата по счёту № 2026-00123 от 25.11.2026 за регистрацию штрихкодов"


def parse(data: bytes, **kwargs: int) -> Statement:
    return parse_statement(data, our_accounts=OURS, **kwargs)


def only(statement: Statement) -> StatementDocument:
    assert statement.error is None, statement.error
    assert len(statement.documents) == 1, statement.warnings
    return statement.documents[0]


def messages(statement: Statement) -> list[str]:
    return [w.message for w in statement.warnings]


def line_number(data: bytes, text: str, encoding: str = "cp1251") -> int:
    """Return the 1-based number of the first line of `data` equal to `text`."""
    lines = data.decode(encoding).splitlines()
    return lines.index(text) + 1


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "label"),
    [("cp1251", "Windows"), ("cp1251", "windows-1251"), ("cp1251", "WINDOWS"), ("cp866", "DOS")],
)
def test_reads_statement_in_its_declared_single_byte_encoding(encoding: str, label: str) -> None:
    data = statement_bytes([incoming(purpose=PURPOSE)], encoding=encoding, declared_encoding=label)
    statement = parse(data)
    doc = only(statement)
    assert statement.encoding == encoding
    assert doc.purpose == PURPOSE
    assert doc.payer_name == CLIENT_NAME
    assert doc.kind == "Платежное поручение"
    assert statement.warnings == ()


def test_utf8_file_that_still_says_windows_is_read_as_utf8_with_a_warning() -> None:
    data = statement_bytes([incoming(purpose=PURPOSE)], encoding="utf-8")
    assert "Кодировка=Windows".encode() in data
    statement = parse(data)
    assert statement.encoding == "utf-8"
    assert only(statement).purpose == PURPOSE
    assert any("Кодировка=Windows but the file is utf-8" in m for m in messages(statement))


def test_utf8_file_with_bom_is_read() -> None:
    data = statement_bytes([incoming(purpose=PURPOSE)], encoding="utf-8", bom=True)
    statement = parse(data)
    assert statement.encoding == "utf-8"
    assert only(statement).purpose == PURPOSE


def test_cp866_file_that_says_windows_is_read_by_its_bytes() -> None:
    data = statement_bytes(
        [incoming(purpose=PURPOSE)], encoding="cp866", declared_encoding="Windows"
    )
    statement = parse(data)
    assert statement.encoding == "cp866"
    assert only(statement).purpose == PURPOSE
    assert any("but the file is cp866" in m for m in messages(statement))


# --- header and sections ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.02", "1.03"])
def test_reads_format_versions_1_02_and_1_03(version: str) -> None:
    statement = parse(statement_bytes([incoming()], version=version))
    assert statement.version == version
    assert only(statement).amount == Decimal("12400.00")
    assert statement.warnings == ()


def test_unknown_format_version_is_read_with_a_warning() -> None:
    statement = parse(statement_bytes([incoming()], version="2.00"))
    assert only(statement).number == "412"
    assert messages(statement) == ["unknown ВерсияФормата=2.00"]


@pytest.mark.parametrize("bank", ["sber", "vtb", "tbank"])
def test_reads_header_of_each_bank_style(bank: str) -> None:
    statement = parse(statement_bytes([incoming()], bank=bank))
    assert statement.sender in {"СберБизнес", "ВТБ Бизнес Онлайн", "Т-Бизнес"}
    assert statement.receiver is not None
    assert statement.date_from == date(2026, 11, 1)
    assert statement.date_to == date(2026, 11, 30)
    assert statement.warnings == ()


def test_several_account_lines_and_blocks_are_listed_and_skipped() -> None:
    data = statement_bytes(
        [incoming(), incoming("413", our_account=OUR_SECOND_ACCOUNT)],
        extra_accounts=[OUR_SECOND_ACCOUNT, "40702810938000000001"],
    )
    assert data.count("СекцияРасчСчет".encode("cp1251")) == 3
    statement = parse(data)
    assert statement.accounts == (OUR_ACCOUNT, OUR_SECOND_ACCOUNT, "40702810938000000001")
    assert [d.number for d in statement.documents] == ["412", "413"]
    assert all(d.incoming for d in statement.documents)
    assert statement.warnings == ()


def test_account_section_without_its_end_is_closed_by_the_next_document() -> None:
    data = statement_bytes([incoming()]).replace("КонецРасчСчет\r\n".encode("cp1251"), b"")
    statement = parse(data)
    assert only(statement).number == "412"
    assert messages(statement) == ["СекцияРасчСчет has no КонецРасчСчет"]


# --- documents -------------------------------------------------------------------------------


def test_document_fields_and_first_line_number() -> None:
    data = statement_bytes([incoming(), incoming("77", amount="500")])
    statement = parse(data)
    first, second = statement.documents
    assert first.line == line_number(data, "СекцияДокумент=Платежное поручение")
    assert second.line > first.line
    assert (first.number, first.date, first.amount) == (
        "412",
        date(2026, 11, 26),
        Decimal("12400.00"),
    )
    assert (first.payer_inn, first.payer_account) == (CLIENT_INN, CLIENT_ACCOUNT)
    assert (first.payee_account, first.received_on) == (OUR_ACCOUNT, date(2026, 11, 26))


def test_incoming_payment_with_written_off_date_is_still_incoming() -> None:
    doc = only(parse(statement_bytes([incoming(ДатаСписано="26.11.2026")])))
    assert doc.written_off_on == date(2026, 11, 26)
    assert doc.received_on == date(2026, 11, 26)
    assert doc.incoming is True


def test_outgoing_documents_are_flagged_not_incoming() -> None:
    statement = parse(statement_bytes([outgoing(), incoming()]))
    out, inc = statement.documents
    assert (out.incoming, out.payee_account, out.received_on) == (False, SUPPLIER_ACCOUNT, None)
    assert out.written_off_on == date(2026, 11, 27)
    assert inc.incoming is True


def test_direction_comes_from_our_account_not_from_the_filled_dates() -> None:
    paid_to_stranger = incoming(ПолучательСчет=SUPPLIER_ACCOUNT)  # ДатаПоступило set, not ours
    doc = only(parse(statement_bytes([paid_to_stranger])))
    assert doc.received_on is not None
    assert doc.incoming is False


def test_purpose_split_in_six_parts_is_joined_with_spaces() -> None:
    parts = [
        "Оплата по счёту",
        "№ 2026-00123",
        "от 25.11.2026",
        "за регистрацию",
        "штрихкодов",
        "НДС 22%",
    ]
    doc = incoming()
    del doc["НазначениеПлатежа"]
    doc.update({f"НазначениеПлатежа{i}": part for i, part in enumerate(parts, start=1)})
    parsed = only(parse(statement_bytes([doc])))
    assert parsed.purpose == " ".join(parts)
    assert find_invoice_numbers(parsed.purpose) == ["2026-00123"]


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("700", "700.00"),
        ("700.00", "700.00"),
        ("700,00", "700.00"),
        ("700.5", "700.50"),
        ("1 500,25", "1500.25"),
        ("0.01", "0.01"),
    ],
)
def test_amount_is_a_decimal_with_two_places(raw: str, amount: str) -> None:
    doc = only(parse(statement_bytes([incoming(amount=raw)])))
    assert doc.amount == Decimal(amount)
    assert str(doc.amount) == amount


@pytest.mark.parametrize("raw", ["", "abc", "700.001", "-700", "0", "0.00", "7e2", "700 руб."])
def test_bad_amount_keeps_the_document_whole_as_unreadable(raw: str) -> None:
    data = statement_bytes([incoming(amount=raw), incoming("413")])
    statement = parse(data)
    assert [d.number for d in statement.documents] == ["413"]
    first = line_number(data, "СекцияДокумент=Платежное поручение")
    assert statement.warnings[0].line == first
    assert statement.warnings[0].message.startswith(
        "document unreadable, held for the accountant: bad or missing Сумма"
    )
    (kept,) = statement.unreadable
    assert kept.line == first
    assert kept.reason.startswith("bad or missing Сумма")
    lines = kept.raw.splitlines()
    assert lines[0] == "СекцияДокумент=Платежное поручение"
    assert f"Сумма={raw}".strip() in lines
    assert lines[-1] != "СекцияДокумент=Платежное поручение"  # the next document is not in it


def test_an_unreadable_document_paid_by_us_is_skipped_not_held() -> None:
    doc = incoming(amount="abc")
    doc["ПолучательСчет"] = "40702810900000000999"  # someone else's account: not money for us
    statement = parse(statement_bytes([doc]))
    assert statement.unreadable == ()
    assert statement.warnings[0].message.startswith("outgoing document skipped: bad or missing")


def test_bad_document_date_skips_it_and_bad_received_date_is_dropped_with_warnings() -> None:
    statement = parse(
        statement_bytes([incoming(on="31.02.2026"), incoming("5", ДатаПоступило="вчера")])
    )
    assert [d.number for d in statement.documents] == ["5"]
    assert statement.documents[0].received_on is None
    assert messages(statement) == [
        "document unreadable, held for the accountant: bad or missing Дата '31.02.2026'",
        "bad ДатаПоступило 'вчера' ignored",
    ]


def test_keys_in_odd_case_are_read() -> None:
    doc = {
        "НОМЕР": "9",
        "дата": "26.11.2026",
        "СУММА": "100",
        "плательщикинн": CLIENT_INN,
        "ПлательщикКорСчет": "30101810145250000411",
        "ПолучательСЧЕТ": OUR_ACCOUNT,
        "назначениеПлатежа": PURPOSE,
    }
    parsed = only(parse(statement_bytes([doc])))
    assert (parsed.number, parsed.amount, parsed.payer_inn) == ("9", Decimal("100.00"), CLIENT_INN)
    assert parsed.incoming is True
    assert parsed.purpose == PURPOSE


def test_document_without_end_is_read_at_the_next_document_and_warned() -> None:
    data = statement_bytes([incoming(_end=False), incoming("413")])
    statement = parse(data)
    assert [d.number for d in statement.documents] == ["412", "413"]
    (warning,) = statement.warnings
    assert warning.line == statement.documents[0].line
    assert warning.message.startswith("document has no КонецДокумента")


def test_last_document_without_end_is_read_at_end_of_file_marker() -> None:
    statement = parse(statement_bytes([incoming(), incoming("413", _end=False)]))
    assert [d.number for d in statement.documents] == ["412", "413"]
    assert len(statement.warnings) == 1


def test_truncated_file_keeps_complete_documents_and_skips_the_cut_one() -> None:
    data = statement_bytes([incoming(), incoming("413", _end=False)], end_of_file=False)
    statement = parse(data)
    assert [d.number for d in statement.documents] == ["412"]
    assert messages(statement) == [
        "document unreadable, held for the accountant: file ends inside a document (truncated?)",
        "no КонецФайла; the file may be truncated",
    ]
    (cut,) = statement.unreadable
    assert cut.raw.splitlines()[0] == "СекцияДокумент=Платежное поручение"
    assert "Номер=413" in cut.raw.splitlines()


def test_junk_and_blank_lines_are_ignored_and_warned_with_line_numbers() -> None:
    doc = incoming(_lines=["", "Исполнено банком", "   ", "=без ключа"])
    data = statement_bytes([doc], newline="\n")
    statement = parse(data)
    assert only(statement).amount == Decimal("12400.00")
    blank = line_number(data, "Исполнено банком") - 1
    assert [(w.line - blank, w.message) for w in statement.warnings] == [
        (0, "blank line ignored"),
        (1, "line without key=value ignored: 'Исполнено банком'"),
        (2, "blank line ignored"),
        (3, "line without key=value ignored: '=без ключа'"),
    ]


def test_purpose_containing_equals_sign_is_kept_whole() -> None:
    doc = only(parse(statement_bytes([incoming(purpose="Оплата сч. 2026-00123, сумма=700")])))
    assert doc.purpose == "Оплата сч. 2026-00123, сумма=700"


def test_lines_after_end_of_file_are_ignored_with_one_warning() -> None:
    data = statement_bytes([incoming()]) + "Сумма=1\r\nмусор\r\n".encode("cp1251")
    statement = parse(data)
    assert only(statement).number == "412"
    assert messages(statement) == ["2 lines after КонецФайла ignored"]


def test_old_mac_line_endings_are_read() -> None:
    assert only(parse(statement_bytes([incoming()], newline="\r"))).number == "412"


# --- not a statement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
        b"PK\x03\x04\x14\x00\x00\x00",
        b"<html><body>1CClientBankExchange</body></html>",
        "Выписка по счёту\r\n1CClientBankExchange\r\n".encode("cp1251"),
        b"1CClientBankExchange\r\n\x00\x01\x02",
        b"1CClientBankExchangeX\r\n",
    ],
)
def test_not_a_statement_returns_an_error_and_nothing_else(data: bytes) -> None:
    statement = parse(data)
    assert statement.error is not None
    assert statement.documents == ()


def test_file_over_the_size_limit_is_refused() -> None:
    data = statement_bytes([incoming()])
    statement = parse(data, max_bytes=len(data) - 1)
    assert statement.error is not None
    assert "over the limit" in statement.error
    assert parse(data, max_bytes=len(data)).error is None


def test_file_over_the_document_limit_is_refused() -> None:
    data = statement_bytes([incoming(str(n)) for n in range(4)])
    assert parse(data, max_documents=3).error == "more than 3 documents, over the limit"
    assert len(parse(data, max_documents=4).documents) == 4


def test_never_raises_on_damaged_statements() -> None:
    rng = random.Random(1251)  # noqa: S311 - reproducible damage, not secrets
    base = statement_bytes([incoming(), outgoing(), split_purpose(incoming("5"))])
    for _ in range(300):
        damaged = bytearray(base)
        for _ in range(rng.randint(1, 40)):
            damaged[rng.randrange(25, len(damaged))] = rng.randrange(256)
        statement = parse(bytes(damaged))
        assert statement.error is not None or statement.encoding is not None


# --- fingerprints ----------------------------------------------------------------------------


def test_same_file_parsed_twice_gives_equal_fingerprints() -> None:
    data = statement_bytes([incoming(), incoming("413"), outgoing()])
    first, second = parse(data), parse(data)
    assert [d.fingerprint for d in first.documents] == [d.fingerprint for d in second.documents]
    assert len({d.fingerprint for d in first.documents}) == 3
    assert all(len(d.fingerprint) == 64 for d in first.documents)


def test_same_payment_in_overlapping_statements_of_other_shapes_has_one_fingerprint() -> None:
    one = parse(statement_bytes([incoming(), outgoing()], period=("01.11.2026", "30.11.2026")))
    two = parse(
        statement_bytes(
            [incoming("413"), split_purpose(incoming("0412"))],
            encoding="cp866",
            bank="vtb",
            period=("26.11.2026", "15.12.2026"),
        )
    )
    assert one.documents[0].fingerprint == two.documents[1].fingerprint
    assert one.documents[0].line != two.documents[1].line


@pytest.mark.parametrize(
    "change",
    [
        {"number": "413"},
        {"on": "27.11.2026"},
        {"amount": "12400.01"},
        {"payer_inn": OTHER_CLIENT_INN},
        {"payer_account": OTHER_CLIENT_ACCOUNT},
        {"our_account": OUR_SECOND_ACCOUNT},
        {"purpose": "Оплата по счёту № 2026-00124"},
    ],
)
def test_payments_differing_in_one_identifying_field_have_different_fingerprints(
    change: dict[str, str],
) -> None:
    base = only(parse(statement_bytes([incoming()])))
    other = only(parse(statement_bytes([incoming(**change)])))
    assert base.fingerprint != other.fingerprint


def test_non_identifying_fields_do_not_change_the_fingerprint() -> None:
    base = only(parse(statement_bytes([incoming()])))
    other = only(parse(statement_bytes([incoming(Очередность="3", ДатаПоступило="27.11.2026")])))
    assert replace(other, received_on=base.received_on, line=base.line) == base


def test_the_same_payment_twice_in_one_file_is_warned() -> None:
    statement = parse(statement_bytes([incoming(), incoming()]))
    assert len(statement.documents) == 2
    assert messages(statement) == ["the same payment appears twice in this file"]


# --- invoice numbers in purposes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "numbers"),
    [
        ("Оплата по счёту №2026-00123 от 25.11.2026", ["2026-00123"]),
        ("Оплата по счету N 2026-00123", ["2026-00123"]),
        ("Оплата сч. 2026-00123 за штрихкоды", ["2026-00123"]),
        ("счет 2026-00123, НДС не облагается", ["2026-00123"]),
        ("по счёту № 2026 - 00123", ["2026-00123"]),
        ("по счёту № 2026–00123 (тире)", ["2026-00123"]),
        ("счета 2026-00123 и 2026-00124, повторно 2026-00123", ["2026-00123", "2026-00124"]),
        ("Оплата по счёту №2026-123", []),
        ("заявка EAN-2026-000123", []),
        ("договор 12026-00123 и 2026-001234", []),
        ("Оплата за ноябрь 2026 года, без счёта", []),
        ("", []),
    ],
)
def test_find_invoice_numbers(purpose: str, numbers: list[str]) -> None:
    assert find_invoice_numbers(purpose) == numbers


# --- size ------------------------------------------------------------------------------------


def test_ten_thousand_documents_are_all_read_with_distinct_fingerprints() -> None:
    docs = [incoming(str(n), amount=f"{n}.00") for n in range(1, 10_001)]
    statement = parse(statement_bytes(docs))
    assert len(statement.documents) == 10_000
    assert len({d.fingerprint for d in statement.documents}) == 10_000
    assert statement.warnings == ()


def test_byte_undefined_in_cp1251_is_replaced_and_warned_not_fatal() -> None:
    data = statement_bytes([incoming(purpose="Оплата сч. 2026-00123 ~")])
    statement = parse(data.replace(b"~", b"\x98"))
    assert statement.encoding == "cp1251"
    assert only(statement).purpose == "Оплата сч. 2026-00123 \ufffd"
    assert messages(statement) == ["bytes not valid in cp1251 replaced (the first on this line)"]
