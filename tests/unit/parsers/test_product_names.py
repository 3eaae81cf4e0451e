"""Product names (and other free text of a product list): control characters are a problem
the applicant is told about, names fit one mail line, the credentials part stays 8bit."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from types import SimpleNamespace

import pytest

from mailbot.mail.problem_text import render_problems
from mailbot.mail.render import MAX_LINE_OCTETS, SECRET_MASK, Mail, compose, make_env, render_body
from mailbot.parsers.limits import Limits
from mailbot.parsers.problems import ProblemCode
from mailbot.parsers.products_xlsx import parse_products
from mailbot.parsers.schema import NAME_MAX_BYTES, NAME_MAX_LEN, ProductType
from tests.fixtures import forms_builders as fb

H = fb.PRODUCT_HEADER
EMOJI = "\U0001f600"


def row(name: str, *, brand: str = "", note: str = "") -> list[object]:
    return [1, name, "01", brand, 1, "кг", "", "", note]


def parse_csv(rows: list[list[object]], types: tuple[ProductType, ...]):  # type: ignore[no-untyped-def]
    data = fb.csv_bytes([H, *rows], encoding="utf-8")
    return parse_products(data, "perechen.csv", limits=Limits(), product_types=types)


# NUL makes a .csv a binary file (file_wrong_format); NEL (\x85) is whitespace, like \t.
@pytest.mark.parametrize("control", ["\x01", "\x08", "\x1b", "\x7f", "\x9b"])
def test_a_control_character_in_a_name_is_a_problem_with_row_and_column(
    control: str, product_types: tuple[ProductType, ...]
) -> None:
    result = parse_csv([row("Молоко"), row(f"Мол{control}око")], product_types)
    assert result.value is not None
    assert [r.name for r in result.value] == ["Молоко", None]
    [p] = result.problems
    assert (p.code, p.location.row, p.location.column) == (
        ProblemCode.control_character,
        3,
        "Наименование продукции",
    )
    code = f"U+{ord(control):04X}"
    assert p.params["char"] == code
    assert p.value == f"Мол[{code}]око"
    text = " ".join(render_problems(result.problems, make_env()).split())
    assert f"Строка 3, столбец «Наименование продукции»: в тексте «Мол[{code}]око»" in text
    assert "невидимый управляющий символ" in text and "наберите текст" in text


def test_controls_in_brand_and_note_are_reported_in_their_columns(
    product_types: tuple[ProductType, ...],
) -> None:
    result = parse_csv([row("Сыр", brand="A\x02B", note="\x03")], product_types)
    assert result.value is not None
    assert (result.value[0].brand, result.value[0].note) == (None, None)
    got = [(p.code, p.location.row, p.value) for p in result.problems]
    assert got == [
        (ProblemCode.control_character, 2, "A[U+0002]B"),
        (ProblemCode.control_character, 2, "[U+0003]"),
    ]


def test_tabs_and_line_breaks_in_a_cell_are_whitespace_not_a_problem(
    product_types: tuple[ProductType, ...],
) -> None:
    result = parse_csv([row("Сыр\tтвёрдый\r\n45%")], product_types)
    assert result.problems == []
    assert result.value is not None and result.value[0].name == "Сыр твёрдый 45%"


@pytest.mark.parametrize(
    ("name", "too_long", "wide"),
    [
        ("Я" * NAME_MAX_LEN, False, False),  # 510 octets: the longest Cyrillic name
        ("Я" * (NAME_MAX_LEN + 1), True, False),
        (EMOJI * (NAME_MAX_BYTES // 4), False, False),  # 127 emoji
        (EMOJI * 250, True, True),  # 250 characters, 1000 octets
        (EMOJI * 128, True, True),
    ],
)
def test_names_are_limited_in_characters_and_octets(
    name: str, too_long: bool, wide: bool, product_types: tuple[ProductType, ...]
) -> None:
    result = parse_csv([row(name)], product_types)
    codes = [p.code for p in result.problems]
    assert codes == ([ProblemCode.name_too_long] if too_long else [])
    if too_long:
        assert ("wide" in result.problems[0].params) == wide
        text = render_problems(result.problems, make_env())
        assert ("Эмодзи" in text) == wide
        assert all(len(line.encode()) <= MAX_LINE_OCTETS for line in text.splitlines())


def _composed(text: str) -> bytes:
    return compose(
        Mail(to=("a@example.test",), subject="Штрихкоды", text=text),
        message_id="<1.mailbot@example.test>",
        from_addr="info@example.test",
        from_name="Штрихкоды",
        date=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _stays_8bit_with_the_mask(body: bytes) -> None:
    assert SECRET_MASK.encode() in body  # the mask is found: the password can be sealed in
    mail = BytesParser(policy=policy.default).parsebytes(body)
    assert mail["Content-Transfer-Encoding"] == "8bit"
    assert all(len(line) <= MAX_LINE_OCTETS for line in body.splitlines())


def issued_text(names: list[str]) -> str:
    codes = [SimpleNamespace(ean=f"46000000{i:05d}", name=n) for i, n in enumerate(names)]
    service = SimpleNamespace(name="Штрихкоды", email="info@example.test", phone="")
    context = {
        "app": SimpleNamespace(number="EAN-2026-000001"),
        "invoice": None,
        "codes": codes,
        "login": "7707083893",
        "password_mask": SECRET_MASK,
        "service": service,
        "parts": 1,
        "part": 1,
        "files": ["Реестр штрихкодов EAN-2026-000001.xlsx"],
    }
    return render_body(make_env(), "issued", context)


@pytest.mark.parametrize(
    "name",
    [
        EMOJI * 250,  # stored before the octet limit existed
        "Я" * 5000,
        "x" * 20_000,
        EMOJI * (NAME_MAX_BYTES // 4),
    ],
)
def test_no_name_pushes_the_credentials_part_out_of_8bit(name: str) -> None:
    _stays_8bit_with_the_mask(_composed(issued_text([name] * 25)))


@pytest.mark.parametrize(
    "org_name",
    [
        "Я" * 500,  # the longest full name the application form accepts
        EMOJI * 500,
        "ООО «" + "Ромашка " * 60 + "»",
        "Я" * 300 + "\u2028" + "Я" * 300,  # a line separator inside: still one SMTP line
    ],
)
def test_no_organisation_name_pushes_the_password_reset_out_of_8bit(org_name: str) -> None:
    client = SimpleNamespace(org_name=org_name, inn="7707083893", login="7707083893")
    service = SimpleNamespace(name="Штрихкоды", email="info@example.test", phone="")
    text = render_body(
        make_env(),
        "password_reset",
        {"client": client, "password_mask": SECRET_MASK, "service": service},
    )
    _stays_8bit_with_the_mask(_composed(text))
