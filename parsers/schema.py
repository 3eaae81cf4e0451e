"""The one schema of our forms: application fields, product list columns, product types.

Blank forms, samples, parsers and problem texts all read these tables (FORMS.md §1–3).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_TRAILING = " \t:;.,!?-–—"
_PARENS = re.compile(r"\s*\([^()]*\)\s*")


def fold(label: str) -> str:
    """Return a label folded for matching: lower, ё→е, one space, no `*`, `:` or end punctuation."""
    s = label.replace("\xa0", " ").replace("*", "").lower().replace("ё", "е")
    s = " ".join(s.split())
    return s.strip(_TRAILING).lstrip(":").strip()


def fold_loose(label: str) -> str:
    """Return fold() of the label without parenthesised hints («ИНН (10 или 12 цифр)»)."""
    return fold(_PARENS.sub(" ", label))


@dataclass(frozen=True)
class FieldSpec:
    """One row of the application form."""

    key: str
    label: str
    synonyms: tuple[str, ...]
    required: bool
    rule: str = ""
    max_len: int | None = None


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the product list."""

    key: str
    title: str
    synonyms: tuple[str, ...]
    required: bool
    width: int = 16


APPLICATION_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "org_name",
        "Полное наименование организации / ИП",
        ("Наименование организации", "Наименование"),
        required=True,
        max_len=500,
    ),
    FieldSpec("short_name", "Сокращённое наименование", (), required=False),
    FieldSpec("inn", "ИНН", (), required=True, rule="inn"),
    FieldSpec("kpp", "КПП", (), required=False, rule="kpp: required with a 10-digit INN"),
    FieldSpec("ogrn", "ОГРН", ("ОГРНИП", "ОГРН/ОГРНИП"), required=True, rule="ogrn"),
    FieldSpec("legal_address", "Юридический адрес", ("Адрес регистрации",), required=True),
    FieldSpec(
        "postal_address",
        "Почтовый адрес",
        ("Фактический адрес",),
        required=False,
        rule="defaults to legal_address",
    ),
    FieldSpec(
        "director", "Руководитель", ("ФИО руководителя", "Генеральный директор"), required=True
    ),
    FieldSpec(
        "director_title",
        "Должность руководителя",
        (),
        required=False,
        rule="default «Генеральный директор» / «Индивидуальный предприниматель»",
    ),
    FieldSpec("contact_name", "Контактное лицо", ("ФИО контактного лица",), required=True),
    FieldSpec("phone", "Телефон", ("Контактный телефон",), required=True, rule="phone"),
    FieldSpec(
        "email",
        "E-mail",
        ("Электронная почта", "Адрес электронной почты"),
        required=True,
        rule="email",
    ),
    FieldSpec("bank_name", "Банк", ("Наименование банка",), required=True),
    FieldSpec("bik", "БИК", (), required=True, rule="bik"),
    FieldSpec("account", "Расчётный счёт", ("Р/с",), required=True, rule="account"),
    FieldSpec(
        "corr_account", "Корреспондентский счёт", ("К/с",), required=True, rule="corr_account"
    ),
    FieldSpec(
        "barcode_count",
        "Количество штрихкодов",
        ("Количество кодов",),
        required=False,
        rule="count",
    ),
    FieldSpec("date", "Дата", (), required=False, rule="date"),
)

PRODUCT_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("n", "№ п/п", ("№", "N"), required=False, width=6),
    ColumnSpec(
        "name",
        "Наименование продукции",
        ("Наименование товара", "Наименование"),
        required=True,
        width=48,
    ),
    ColumnSpec("product_type", "Вид продукции", (), required=True, width=34),
    ColumnSpec("brand", "Торговая марка", ("Бренд",), required=False, width=18),
    ColumnSpec("net_quantity", "Масса/объём нетто", ("Вес", "Объём"), required=False, width=12),
    ColumnSpec("unit", "Ед. изм.", ("Единица измерения",), required=False, width=9),
    ColumnSpec("okpd2", "ОКПД2", ("Код ОКПД2",), required=False, width=14),
    ColumnSpec("tnved", "ТН ВЭД", ("Код ТН ВЭД ЕАЭС",), required=False, width=14),
    ColumnSpec("note", "Примечание", (), required=False, width=24),
)

UNITS: tuple[str, ...] = ("г", "кг", "мл", "л", "шт", "м")
NAME_MAX_LEN = 255
# A name is shown on one line of our mails (the codes list of the deliverables mail, which
# also carries the password): at most 510 octets as UTF-8 — 255 Cyrillic letters, but only
# 127 emoji — keeps that line far under SMTP's 998 octets, so the text stays 8bit.
NAME_MAX_BYTES = 510
DEFAULT_DIRECTOR_TITLE = "Генеральный директор"
SOLE_TRADER_TITLE = "Индивидуальный предприниматель"

FIELDS_BY_KEY = {f.key: f for f in APPLICATION_FIELDS}
COLUMNS_BY_KEY = {c.key: c for c in PRODUCT_COLUMNS}


def _index(items: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, labels in items:
        for label in labels:
            out.setdefault(fold(label), key)
    return out


_FIELD_INDEX = _index((f.key, (f.label, *f.synonyms)) for f in APPLICATION_FIELDS)
_COLUMN_INDEX = _index((c.key, (c.title, *c.synonyms)) for c in PRODUCT_COLUMNS)


def _match(label: str, index: dict[str, str]) -> str | None:
    folded = fold(label)
    if not folded:
        return None
    return index.get(folded) or index.get(fold_loose(label))


def field_key(label: str) -> str | None:
    """Return the application field key a label means, or None."""
    return _match(label, _FIELD_INDEX)


def column_key(title: str) -> str | None:
    """Return the product list column key a header title means, or None."""
    return _match(title, _COLUMN_INDEX)


@dataclass(frozen=True)
class ProductType:
    """An allowed product type with its stable two-digit code."""

    code: str
    name: str

    @property
    def label(self) -> str:
        """«01 Продукты питания»."""
        return f"{self.code} {self.name}"


def parse_product_types(text: str) -> tuple[ProductType, ...]:
    """Return product types from product_types.toml text; raises ValueError on a broken file.

    This is our own shipped/admin-edited data, so a broken file is a bug, not input.
    """
    data = tomllib.loads(text)
    items = data.get("product_type", [])
    types = tuple(ProductType(f"{int(i['code']):02d}", str(i["name"]).strip()) for i in items)
    if not types or len({t.code for t in types}) != len(types):
        raise ValueError("product types: empty list or duplicate codes")
    return types


def load_product_types(path: Path) -> tuple[ProductType, ...]:
    """Return product types read from a product_types.toml file."""
    return parse_product_types(path.read_text(encoding="utf-8"))
