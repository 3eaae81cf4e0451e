"""The one schema: label folding, synonyms, product types data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mailbot.parsers.application_docx import ApplicationForm
from mailbot.parsers.product_values import UNIT_ALIASES
from mailbot.parsers.products_xlsx import ProductRow
from mailbot.parsers.schema import (
    APPLICATION_FIELDS,
    PRODUCT_COLUMNS,
    UNITS,
    ProductType,
    column_key,
    field_key,
    fold,
    parse_product_types,
)


@pytest.mark.parametrize(
    ("label", "folded"),
    [
        ("Расчётный  счёт*:", "расчетный счет"),
        ("  ИНН : ", "инн"),
        ("E-mail.", "e-mail"),
        ("Ед. изм.", "ед. изм"),
        ("Сокращённое\xa0наименование;", "сокращенное наименование"),
    ],
)
def test_fold_lowers_replaces_yo_collapses_spaces_and_strips_marks(label: str, folded: str) -> None:
    assert fold(label) == folded


@pytest.mark.parametrize(
    ("label", "key"),
    [
        ("ОГРНИП", "ogrn"),
        ("ОГРН/ОГРНИП:", "ogrn"),
        ("р/с", "account"),
        ("К/С", "corr_account"),
        ("Наименование банка", "bank_name"),
        ("Наименование", "org_name"),
        ("ИНН (10 или 12 цифр)", "inn"),
        ("Адрес электронной почты*", "email"),
        ("Генеральный директор", "director"),
        ("Фактический адрес", "postal_address"),
    ],
)
def test_application_labels_match_by_synonym_after_folding(label: str, key: str) -> None:
    assert field_key(label) == key


def test_unknown_application_label_matches_nothing() -> None:
    assert field_key("Сайт компании") is None
    assert field_key("") is None


@pytest.mark.parametrize(
    ("title", "key"),
    [
        ("№", "n"),
        ("N", "n"),
        ("Наименование товара", "name"),
        ("Вес", "net_quantity"),
        ("Единица измерения", "unit"),
        ("Код ТН ВЭД ЕАЭС", "tnved"),
        ("Бренд", "brand"),
        ("Вид продукции (код или название)", "product_type"),
    ],
)
def test_product_columns_match_by_synonym(title: str, key: str) -> None:
    assert column_key(title) == key


def test_application_form_has_one_attribute_per_schema_field() -> None:
    names = [f.name for f in dataclasses.fields(ApplicationForm)]
    assert names == [f.key for f in APPLICATION_FIELDS] + ["notes"]


def test_product_row_has_an_attribute_per_product_column() -> None:
    names = {f.name for f in dataclasses.fields(ProductRow)}
    keys = {c.key for c in PRODUCT_COLUMNS} - {"n", "product_type"}
    assert keys | {"row", "product_type_code", "product_type_name"} == names


def test_unit_aliases_cover_exactly_the_schema_units() -> None:
    assert set(UNIT_ALIASES.values()) == set(UNITS)


def test_shipped_product_types_are_32_with_stable_two_digit_codes(
    product_types: tuple[ProductType, ...],
) -> None:
    assert [t.code for t in product_types] == [f"{i:02d}" for i in range(1, 33)]
    assert product_types[0].label == "01 Продукты питания"
    assert product_types[8].name == "Лекарственные средства и БАД"
    assert product_types[-1].label == "32 Прочее"


def test_product_types_with_duplicate_codes_are_refused() -> None:
    text = '[[product_type]]\ncode = "01"\nname = "А"\n[[product_type]]\ncode = "1"\nname = "Б"\n'
    with pytest.raises(ValueError, match="duplicate"):
        parse_product_types(text)


def test_product_types_load_from_text_as_well_as_from_path(tmp_path: Path) -> None:
    text = '[[product_type]]\ncode = 7\nname = " Средства гигиены "\n'
    (tmp_path / "t.toml").write_text(text, encoding="utf-8")
    assert parse_product_types(text) == (ProductType("07", "Средства гигиены"),)
