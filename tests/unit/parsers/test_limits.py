"""Hostile and wrong files are named plainly and never reach the document libraries."""

from __future__ import annotations

import pytest

from mailbot.parsers.application_docx import parse_application
from mailbot.parsers.limits import Container, Limits, check_zip, sniff
from mailbot.parsers.problems import Location, ProblemCode
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import ProductType
from tests.fixtures import forms_builders as fb

AT = Location("f.docx")


def codes_of_application(
    data: bytes, name: str = "z.docx", limits: Limits | None = None
) -> list[ProblemCode]:
    result = parse_application(data, name, limits=limits or Limits())
    assert result.value is None
    return [p.code for p in result.problems]


def test_docx_zip_bomb_by_ratio_is_refused_without_inflating() -> None:
    bomb = fb.zip_bomb(fb.application_docx(), megabytes=8)
    assert len(bomb) < 100_000
    assert codes_of_application(bomb) == [ProblemCode.zip_bomb]


def test_zip_over_total_uncompressed_limit_is_refused() -> None:
    data = fb.add_entries(fb.application_docx(), {"word/media/a.bin": bytes(range(256)) * 8192})
    assert check_zip(data, AT, Limits(max_uncompressed_bytes=1_000_000))[0].params == {
        "reason": "size"
    }


def test_zip_with_too_many_entries_is_refused() -> None:
    data = fb.add_entries(fb.application_docx(), {f"word/x{i}.xml": b"<a/>" for i in range(30)})
    problems = check_zip(data, AT, Limits(max_zip_entries=20))
    assert [p.code for p in problems] == [ProblemCode.zip_bomb]


def test_ordinary_docx_passes_the_zip_check() -> None:
    assert check_zip(fb.application_docx(), AT, Limits()) == []


def test_password_protected_docx_is_reported_as_encrypted() -> None:
    assert codes_of_application(fb.encrypted_office_bytes()) == [ProblemCode.file_encrypted]


def test_password_protected_xlsx_is_reported_as_encrypted(
    product_types: tuple[ProductType, ...],
) -> None:
    result = parse_products(
        fb.encrypted_office_bytes(), "p.xlsx", limits=Limits(), product_types=product_types
    )
    assert [p.code for p in result.problems] == [ProblemCode.file_encrypted]


def test_old_word_doc_is_the_wrong_format() -> None:
    assert codes_of_application(fb.old_binary_doc_bytes(), "z.doc") == [
        ProblemCode.file_wrong_format
    ]


def test_old_word_doc_sent_as_product_list_is_the_wrong_format(
    product_types: tuple[ProductType, ...],
) -> None:
    result = parse_products(
        fb.old_binary_doc_bytes(), "p.doc", limits=Limits(), product_types=product_types
    )
    assert [p.code for p in result.problems] == [ProblemCode.file_wrong_format]


def test_docx_with_macros_is_refused() -> None:
    assert codes_of_application(fb.with_macros(fb.application_docx()), "z.docm") == [
        ProblemCode.file_macros
    ]


def test_docx_declared_macro_enabled_is_refused_even_without_a_vba_part() -> None:
    data = fb.with_macros(fb.application_docx(), vba=False)
    assert codes_of_application(data, "z.docx") == [ProblemCode.file_macros]


def test_xlsx_with_macros_is_refused(product_types: tuple[ProductType, ...]) -> None:
    data = fb.with_macros(fb.xlsx_bytes([fb.PRODUCT_HEADER, *fb.product_rows(1)]), main_part="xl")
    result = parse_products(data, "p.xlsm", limits=Limits(), product_types=product_types)
    assert [p.code for p in result.problems] == [ProblemCode.file_macros]


def test_file_over_size_limit_is_refused_with_the_limit_in_mb() -> None:
    result = parse_application(
        b"PK\x03\x04" + b"\x00" * 2_000_000, "z.docx", limits=Limits(max_file_bytes=1024 * 1024)
    )
    assert [(p.code, dict(p.params)) for p in result.problems] == [
        (ProblemCode.file_too_large, {"max_mb": "1"})
    ]


def test_truncated_docx_is_damaged() -> None:
    data = fb.application_docx()
    assert codes_of_application(data[: len(data) // 2]) == [ProblemCode.file_damaged]


def test_docx_whose_document_xml_is_not_xml_is_damaged() -> None:
    data = fb.rezip(
        fb.application_docx(), lambda n, raw: b"<w:document" if n == "word/document.xml" else raw
    )
    assert codes_of_application(data) == [ProblemCode.file_damaged]


def test_docx_with_an_xml_entity_bomb_is_refused_as_damaged() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>'
    )
    data = fb.rezip(fb.application_docx(), lambda n, raw: evil if n == "word/document.xml" else raw)
    assert codes_of_application(data) == [ProblemCode.file_damaged]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.7\n", "z.pdf"),
        (b"\xff\xd8\xff\xe0JFIF", "scan.jpg"),
        (b"\x89PNG\r\n", "a.png"),
        (b"{\\rtf1\\ansi", "z.rtf"),
        (b"just text", "z.txt"),
    ],
)
def test_pdf_photo_rtf_or_text_as_application_is_the_wrong_format(data: bytes, name: str) -> None:
    assert codes_of_application(data, name) == [ProblemCode.file_wrong_format]


def test_xlsx_sent_as_application_is_the_wrong_format_asking_for_docx() -> None:
    result = parse_application(fb.xlsx_bytes([["a"]]), "z.xlsx", limits=Limits())
    assert [(p.code, p.params["expected"]) for p in result.problems] == [
        (ProblemCode.file_wrong_format, "docx")
    ]


def test_docx_sent_as_product_list_is_the_wrong_format_asking_for_xlsx(
    product_types: tuple[ProductType, ...],
) -> None:
    result = parse_products(
        fb.application_docx(), "p.docx", limits=Limits(), product_types=product_types
    )
    assert [(p.code, p.params["expected"]) for p in result.problems] == [
        (ProblemCode.file_wrong_format, "xlsx")
    ]


def test_empty_file_is_reported_as_empty() -> None:
    assert codes_of_application(b"  \n") == [ProblemCode.file_empty]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"PK\x03\x04", Container.zip),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Container.cfb),
        (b"\x00\x00\x00\x18ftypheic", Container.image),
        (b"RIFF\x00\x00\x00\x00WEBP", Container.image),
        (b"hello", Container.other),
    ],
)
def test_sniff_tells_containers_by_magic(head: bytes, kind: Container) -> None:
    assert sniff(head) is kind
