"""Values of one product list row: product type, quantity with unit, ОКПД2, ТН ВЭД."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from decimal import Decimal

from mailbot.parsers.fields import check_decimal
from mailbot.parsers.schema import ProductType, fold

_CODE_AND_NAME = re.compile(r"(\d{1,2})(?:[\s.)\-–—]+(.*))?")
_QTY_UNIT = re.compile(r"([0-9][0-9\s\xa0]*(?:[.,][0-9]+)?)\s*([^\d\s].*)?")
_SPACES = re.compile(r"\s")
_OKPD2 = re.compile(r"\d{2}(?:\.\d{1,2}(?:\.\d{1,2}(?:\.\d{1,3})?)?)?")
UNIT_ALIASES = {
    "г": "г",
    "гр": "г",
    "грамм": "г",
    "граммов": "г",
    "g": "г",
    "кг": "кг",
    "килограмм": "кг",
    "kg": "кг",
    "мл": "мл",
    "ml": "мл",
    "миллилитр": "мл",
    "л": "л",
    "литр": "л",
    "литров": "л",
    "литра": "л",
    "l": "л",
    "шт": "шт",
    "штук": "шт",
    "штука": "шт",
    "штуки": "шт",
    "pcs": "шт",
    "м": "м",
    "метр": "м",
    "метров": "м",
    "m": "м",
}


class TypeMatcher:
    """Finds a product type by code, name or «code name», and suggests a near miss."""

    def __init__(self, types: Sequence[ProductType]) -> None:
        self._by_code = {t.code: t for t in types} | {str(int(t.code)): t for t in types}
        self._by_name = {fold(t.name): t for t in types}
        self._seen: dict[str, ProductType | None] = {}

    def match(self, text: str) -> ProductType | None:
        """Return the type the cell names, or None (memoised: lists repeat a few types)."""
        if text not in self._seen:
            self._seen[text] = self._match(text)
        return self._seen[text]

    def _match(self, text: str) -> ProductType | None:
        folded = fold(text)
        if folded in self._by_name:
            return self._by_name[folded]
        m = _CODE_AND_NAME.fullmatch(folded)
        if m is None:
            return None
        by_code = self._by_code.get(m[1])
        if by_code is None or (m[2] and fold(m[2]) != fold(by_code.name)):
            return None
        return by_code

    def suggest(self, text: str) -> ProductType | None:
        """Return the closest type name to a misspelt cell, if one is close enough."""
        folded = fold(text)
        m = _CODE_AND_NAME.fullmatch(folded)
        name = m[2] if m and m[2] else folded
        close = difflib.get_close_matches(name, list(self._by_name), n=1, cutoff=0.75)
        return self._by_name[close[0]] if close else None


@functools.lru_cache(maxsize=4096)  # product lists repeat these values
def unit_of(text: str) -> str | None:
    """Return the schema unit for «гр.», «Кг», «литров»…, or None if unknown."""
    return UNIT_ALIASES.get(fold(text).rstrip("."))


@functools.lru_cache(maxsize=4096)  # product lists repeat these values
def quantity_of(text: str) -> tuple[Decimal, str] | None:
    """Return (number, unit text) of «0,5», «250 г», «1 000»; unit text may be empty."""
    m = _QTY_UNIT.fullmatch(text.strip())
    if m is None:
        return None
    number = check_decimal(m[1])
    return (number, (m[2] or "").strip()) if number is not None else None


@functools.lru_cache(maxsize=4096)  # product lists repeat these values
def okpd2_of(text: str) -> str | None:
    """Return an ОКПД2 code NN.NN.NN.NNN (a prefix is fine), or None."""
    v = _SPACES.sub("", text).replace(",", ".")
    return v if _OKPD2.fullmatch(v) else None


@functools.lru_cache(maxsize=4096)  # product lists repeat these values
def tnved_of(text: str, *, was_number: bool) -> str | None:
    """Return a 4–10 digit ТН ВЭД code; a number cell gets back its lost leading zero."""
    v = _SPACES.sub("", text)
    if not v.isascii() or not v.isdigit():
        return None
    if was_number and len(v) in (3, 5, 7, 9):
        v = "0" + v
    return v if 4 <= len(v) <= 10 else None
