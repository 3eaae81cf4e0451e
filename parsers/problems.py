"""Problems found in applicants' files: codes, locations and the parse result carrying them.

Problems are values, never exceptions; the Russian wording lives in templates/_problems.ru.j2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

T = TypeVar("T")

_EMPTY: Mapping[str, str] = MappingProxyType({})


class ProblemCode(StrEnum):
    """One code per distinct problem; each has a sentence in _problems.ru.j2."""

    # application fields
    missing_field = "missing_field"
    value_too_long = "value_too_long"
    inn_length = "inn_length"
    inn_checksum = "inn_checksum"
    kpp_format = "kpp_format"
    kpp_missing = "kpp_missing"
    kpp_not_applicable = "kpp_not_applicable"
    ogrn_format = "ogrn_format"
    ogrn_checksum = "ogrn_checksum"
    ogrn_type_mismatch = "ogrn_type_mismatch"
    bik_format = "bik_format"
    account_format = "account_format"
    account_key = "account_key"
    corr_account_format = "corr_account_format"
    corr_account_key = "corr_account_key"
    phone_format = "phone_format"
    email_invalid = "email_invalid"
    date_format = "date_format"
    barcode_count_invalid = "barcode_count_invalid"
    barcode_count_mismatch = "barcode_count_mismatch"
    form_not_recognised = "form_not_recognised"
    # product list
    header_not_found = "header_not_found"
    column_missing = "column_missing"
    no_products = "no_products"
    too_many_rows = "too_many_rows"
    name_too_long = "name_too_long"
    control_character = "control_character"  # an invisible control character in a text cell
    duplicate_name = "duplicate_name"
    unknown_product_type = "unknown_product_type"
    quantity_invalid = "quantity_invalid"
    unit_missing = "unit_missing"
    unit_unknown = "unit_unknown"
    okpd2_format = "okpd2_format"
    tnved_format = "tnved_format"
    formula_without_value = "formula_without_value"
    # the file itself
    file_wrong_format = "file_wrong_format"
    file_encrypted = "file_encrypted"
    file_damaged = "file_damaged"
    file_too_large = "file_too_large"
    file_macros = "file_macros"
    file_empty = "file_empty"
    file_missing = "file_missing"  # one of the two forms is not attached at all
    zip_bomb = "zip_bomb"
    file_too_complex = "file_too_complex"  # the guarded parse ran out of time or memory


class Document(StrEnum):
    """Which of our forms a file was read as (chooses the header line of a reply)."""

    application = "application"
    products = "products"


@dataclass(frozen=True)
class Location:
    """Where a problem is; column and field are labels as the applicant wrote them."""

    file: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    field: str | None = None
    document: Document | None = None


@dataclass(frozen=True)
class Problem:
    """One thing the applicant must fix; `params` feed the sentence in the template."""

    code: ProblemCode
    location: Location
    value: str | None = None
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, MappingProxyType):
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __reduce__(self) -> tuple[type[Problem], tuple[object, ...]]:
        """Pickle with params as a dict (a mappingproxy cannot be pickled; see mailbot.guard)."""
        return (Problem, (self.code, self.location, self.value, dict(self.params)))


@dataclass
class ParseResult(Generic[T]):
    """A parsed value (None when the file could not be read at all) and every problem found."""

    value: T | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when there is a value and nothing to fix."""
        return self.value is not None and not self.problems
