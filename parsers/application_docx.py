"""«Заявление о регистрации» (.docx) → ApplicationForm, with every problem found."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mailbot.parsers import fields as check
from mailbot.parsers.container import Kind, vet
from mailbot.parsers.docx_text import Block, blocks, body_of
from mailbot.parsers.limits import Limits, parse_xml, read_member
from mailbot.parsers.problems import Document, Location, ParseResult, Problem, ProblemCode
from mailbot.parsers.schema import (
    APPLICATION_FIELDS,
    DEFAULT_DIRECTOR_TITLE,
    SOLE_TRADER_TITLE,
    field_key,
    fold,
)

_HEADER_WORDS = {"реквизит", "реквизиты", "значение", "поле", "наименование поля", "сведения"}
_NUMBERING = re.compile(r"\d{1,2}[.)]?")
_INN_KPP = {"инн/кпп", "инн / кпп", "инн-кпп"}


@dataclass(frozen=True)
class ApplicationForm:
    """The application's fields, normalised; a field that failed its rule is None."""

    org_name: str | None = None
    short_name: str | None = None
    inn: str | None = None
    kpp: str | None = None
    ogrn: str | None = None
    legal_address: str | None = None
    postal_address: str | None = None
    director: str | None = None
    director_title: str | None = None
    contact_name: str | None = None
    phone: str | None = None
    email: str | None = None
    bank_name: str | None = None
    bik: str | None = None
    account: str | None = None
    corr_account: str | None = None
    barcode_count: int | None = None
    date: dt.date | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_sole_trader(self) -> bool:
        """True for an ИП (12-digit INN)."""
        return self.inn is not None and len(self.inn) == 12


@dataclass(frozen=True)
class _Entry:
    key: str
    label: str  # as the applicant wrote it
    value: str


def _split_label(text: str) -> tuple[str, str] | None:
    """Return (label, value) of «Label: value» text, or None."""
    label, sep, value = text.partition(":")
    return (label, value.strip()) if sep and 0 < len(label) <= 80 else None


def _entries_of_text(label: str, value: str) -> list[_Entry]:
    if fold(label) in _INN_KPP:
        parts = [p for p in re.split(r"[/\\\s]+", value) if p]
        return [_Entry(k, label, v) for k, v in zip(("inn", "kpp"), parts, strict=False)]
    key = field_key(label)
    return [_Entry(key, label, value)] if key else []


def _row_entries(cells: tuple[str, ...], notes: list[str]) -> list[_Entry]:
    """Pair labels with the cell after them; a row without labels becomes a note."""
    texts = [c for c in cells if c]
    if len(texts) >= 3 and _NUMBERING.fullmatch(texts[0]):
        texts = texts[1:]  # «1 | ИНН | 7707083893»
    found: list[_Entry] = []
    i = 0
    while i < len(texts):
        is_label = field_key(texts[i]) is not None or fold(texts[i]) in _INN_KPP
        nxt = texts[i + 1] if i + 1 < len(texts) else ""
        nxt_is_label = field_key(nxt) is not None
        if is_label:
            found += _entries_of_text(texts[i], "" if nxt_is_label else nxt)
            i += 1 if nxt_is_label else 2
            continue
        split = _split_label(texts[i])
        found += _entries_of_text(*split) if split else []
        i += 1
    if not found and len(texts) >= 2 and not {fold(t) for t in texts} <= _HEADER_WORDS:
        notes.append(f"{texts[0]}: {' | '.join(texts[1:])}")
    elif not found and len(texts) == 1 and (split := _split_label(texts[0])) and split[1]:
        notes.append(texts[0])
    return found


def _collect(items: Iterable[Block]) -> tuple[dict[str, _Entry], list[str]]:
    """Return the first filled entry per key (else the first seen) and the notes."""
    notes: list[str] = []
    chosen: dict[str, _Entry] = {}
    for block in items:
        if block.in_table:
            entries = _row_entries(block.cells, notes)
        else:
            split = _split_label(block.cells[0])
            entries = _entries_of_text(*split) if split else []
            if split and split[1] and not entries and len(split[0]) <= 60:
                notes.append(block.cells[0])
        for e in entries:
            old = chosen.get(e.key)
            if old is None or (check.blank(old.value) and not check.blank(e.value)):
                chosen[e.key] = e
            elif not check.blank(e.value) and e.value != old.value:
                notes.append(f"{e.label}: {e.value}")
    return chosen, notes


def parse_application(
    data: bytes, filename: str, *, limits: Limits
) -> ParseResult[ApplicationForm]:
    """Return the application read from .docx bytes and every problem in it. Never raises."""
    where = Location(file=filename, document=Document.application)
    kind, problems = vet(data, where, limits, accept=frozenset({Kind.docx}))
    if kind is None:
        return ParseResult(None, problems)
    root = parse_xml(read_member(data, "word/document.xml") or b"")
    body = body_of(root) if root is not None else None
    if body is None:
        return ParseResult(None, [Problem(ProblemCode.file_damaged, where)])
    chosen, notes = _collect(blocks(body))
    if not chosen:
        return ParseResult(None, [Problem(ProblemCode.form_not_recognised, where)])
    values, problems = _validate(chosen, where)
    return ParseResult(ApplicationForm(**values, notes=tuple(notes)), problems)


_Checker = Callable[[str, Location], object]


def _validate(chosen: dict[str, _Entry], where: Location) -> tuple[dict[str, Any], list[Problem]]:
    """Return normalised values by key and the problems, applying every rule."""
    raw = {k: e.value.strip() for k, e in chosen.items() if not check.blank(e.value)}
    problems: list[Problem] = []
    values: dict[str, Any] = {}

    def at(key: str) -> Location:
        entry = chosen.get(key)
        label = entry.label.strip(" *:") if entry else _LABELS[key]
        return Location(file=where.file, field=label, document=Document.application)

    def run(key: str, checker: _Checker) -> None:
        if key in raw:
            result = checker(raw[key], at(key))
            if isinstance(result, Problem):
                problems.append(result)
            else:
                values[key] = result

    for spec in APPLICATION_FIELDS:
        if spec.required and spec.key not in raw:
            problems.append(Problem(ProblemCode.missing_field, at(spec.key)))
        elif not spec.rule and spec.key in raw:
            too_long = spec.max_len is not None and len(raw[spec.key]) > spec.max_len
            if too_long:
                problems.append(
                    Problem(
                        ProblemCode.value_too_long, at(spec.key), params={"max": str(spec.max_len)}
                    )
                )
            else:
                values[spec.key] = " ".join(raw[spec.key].split())
    inn_digits = check.digits_of(raw.get("inn", "")) or ""
    run("inn", check.check_inn)
    _check_kpp(raw, inn_digits, at("kpp"), values, problems)
    run("ogrn", lambda v, loc: check.check_ogrn(v, loc, inn=raw.get("inn")))
    run("bik", check.check_bik)
    bik = values.get("bik")
    bik_s = bik if isinstance(bik, str) else None
    run("account", lambda v, loc: check.check_account(v, loc, bik=bik_s))
    run("corr_account", lambda v, loc: check.check_corr_account(v, loc, bik=bik_s))
    run("phone", check.check_phone)
    run("email", check.check_email)
    run("barcode_count", check.check_count)
    run("date", check.check_date)
    values.setdefault("postal_address", values.get("legal_address"))
    sole = len(inn_digits) == 12
    values.setdefault("director_title", SOLE_TRADER_TITLE if sole else DEFAULT_DIRECTOR_TITLE)
    return values, problems


def _check_kpp(
    raw: dict[str, str],
    inn_digits: str,
    where: Location,
    values: dict[str, Any],
    problems: list[Problem],
) -> None:
    """КПП: required with a 10-digit INN, not given for a 12-digit one."""
    kpp = raw.get("kpp")
    if kpp is None:
        if len(inn_digits) == 10:
            problems.append(Problem(ProblemCode.kpp_missing, where))
        return
    if len(inn_digits) == 12:
        problems.append(Problem(ProblemCode.kpp_not_applicable, where, kpp))
        return
    result = check.check_kpp(kpp, where)
    if isinstance(result, Problem):
        problems.append(result)
    else:
        values["kpp"] = result


_LABELS = {f.key: f.label for f in APPLICATION_FIELDS}
