"""Validators of company requisites (DOMAIN.md «Company requisites — validation rules»).

Each takes the raw text and where it was found and returns the normalised value or a Problem.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from email_validator import EmailNotValidError, validate_email
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.ru import inn as stdnum_inn

from mailbot.parsers.problems import Location, Problem, ProblemCode

_SPACES = re.compile(r"\s")
_SEPARATORS = re.compile(r"[\s\-‐‑–—]+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_KPP = re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}")
_PLACEHOLDER = re.compile(r"[\s_\-–—.]*|нет|отсутствует|не имеется", re.IGNORECASE)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            "января",
            "февраля",
            "марта",
            "апреля",
            "мая",
            "июня",
            "июля",
            "августа",
            "сентября",
            "октября",
            "ноября",
            "декабря",
        )
    )
}
_DOTTED = re.compile(r"(\d{1,2})[./](\d{1,2})[./](\d{4})(?:\s*(?:г\.?|года))?")
_WORDED = re.compile(r"«?\s*(\d{1,2})\s*»?\s+([а-яё]+)\s+(\d{4})(?:\s*(?:г\.?|года))?")


def blank(raw: str | None) -> bool:
    """True for an empty value or a placeholder («—», «___», «нет»)."""
    return raw is None or _PLACEHOLDER.fullmatch(raw.strip()) is not None


def digits_of(raw: str) -> str | None:
    """Return the value without spaces and dashes if what is left is ASCII digits, else None."""
    compact = _SEPARATORS.sub("", raw)
    return compact if _ASCII_DIGITS.fullmatch(compact) else None


def _bad(code: ProblemCode, raw: str, where: Location, **params: str) -> Problem:
    return Problem(code, where, raw.strip(), params)


def check_inn(raw: str, where: Location) -> str | Problem:
    """Return a 10/12-digit INN with valid control digits."""
    v = digits_of(raw)
    if v is None or len(v) not in (10, 12):
        return _bad(ProblemCode.inn_length, raw, where)
    try:
        stdnum_inn.validate(v)
    except InvalidChecksum:
        return _bad(ProblemCode.inn_checksum, raw, where)
    except ValidationError:
        return _bad(ProblemCode.inn_length, raw, where)
    return v


def check_kpp(raw: str, where: Location) -> str | Problem:
    """Return a 9-char KPP: 4 digits, 2 digits or capital Latin letters, 3 digits."""
    v = _SEPARATORS.sub("", raw).upper()
    return v if _KPP.fullmatch(v) else _bad(ProblemCode.kpp_format, raw, where)


def ogrn_valid(v: str) -> bool:
    """True when a 13-digit OGRN or 15-digit OGRNIP has the right control digit.

    Not stdnum.ru.ogrn: it drops the final `% 10` for OGRNIP (FLOORS.md).
    """
    if len(v) == 13:
        return int(v[:12]) % 11 % 10 == int(v[12])
    if len(v) == 15:
        return int(v[:14]) % 13 % 10 == int(v[14])
    return False


def check_ogrn(raw: str, where: Location, *, inn: str | None = None) -> str | Problem:
    """Return an OGRN/OGRNIP; its type must agree with the INN length when the INN is known."""
    v = digits_of(raw)
    if v is None or len(v) not in (13, 15):
        return _bad(ProblemCode.ogrn_format, raw, where)
    if not ogrn_valid(v):
        return _bad(ProblemCode.ogrn_checksum, raw, where)
    inn_digits = digits_of(inn) if inn else None
    if inn_digits and (len(inn_digits), len(v)) in ((10, 15), (12, 13)):
        kind = "ip" if len(inn_digits) == 12 else "org"
        return _bad(ProblemCode.ogrn_type_mismatch, raw, where, holder=kind)
    return v


def check_bik(raw: str, where: Location) -> str | Problem:
    """Return a 9-digit BIK of a Russian bank (starts 04)."""
    v = digits_of(raw)
    if v is None or len(v) != 9 or not v.startswith("04"):
        return _bad(ProblemCode.bik_format, raw, where)
    return v


def account_key_ok(prefix: str, account: str) -> bool:
    """True when prefix + account, weighted 7,1,3 repeating, sums to 0 mod 10."""
    digits = prefix + account
    return sum(int(d) * (7, 1, 3)[i % 3] for i, d in enumerate(digits)) % 10 == 0


def check_account(raw: str, where: Location, *, bik: str | None) -> str | Problem:
    """Return a 20-digit settlement account whose key agrees with the BIK (when BIK is valid)."""
    v = digits_of(raw)
    if v is None or len(v) != 20:
        return _bad(ProblemCode.account_format, raw, where)
    if bik is not None and not account_key_ok(bik[6:9], v):
        return _bad(ProblemCode.account_key, raw, where, bik=bik)
    return v


def check_corr_account(raw: str, where: Location, *, bik: str | None) -> str | Problem:
    """Return a 20-digit corr. account starting 30101 whose key agrees with the BIK."""
    v = digits_of(raw)
    if v is None or len(v) != 20 or not v.startswith("30101"):
        return _bad(ProblemCode.corr_account_format, raw, where)
    if bik is not None and not account_key_ok("0" + bik[4:6], v):
        return _bad(ProblemCode.corr_account_key, raw, where, bik=bik)
    return v


def check_phone(raw: str, where: Location) -> str | Problem:
    """Return the first phone in the text as +7XXXXXXXXXX (8-prefix, brackets, dashes ok)."""
    first = re.split(r"[,;]|доб|вн\.", raw, maxsplit=1)[0]
    compact = re.sub(r"[\s()\-‐‑–—.]", "", first)
    v = compact[1:] if compact.startswith("+") else compact
    if _ASCII_DIGITS.fullmatch(v):
        if len(v) == 11 and v[0] in "78":
            return "+7" + v[1:]
        if len(v) == 10 and not compact.startswith("+"):
            return "+7" + v
    return _bad(ProblemCode.phone_format, raw, where)


def check_email(raw: str, where: Location) -> str | Problem:
    """Return the normalised e-mail address (syntax only, no DNS)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return _bad(ProblemCode.email_invalid, raw, where)


def check_date(raw: str, where: Location) -> dt.date | Problem:
    """Return a date written dd.mm.yyyy or «25 ноября 2026 г.»."""
    text = raw.strip().lower().replace("ё", "е")
    day = month = year = 0
    if m := _DOTTED.fullmatch(text):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
    elif (m := _WORDED.fullmatch(text)) and m[2] in _MONTHS:
        day, month, year = int(m[1]), _MONTHS[m[2]], int(m[3])
    try:
        return dt.date(year, month, day)
    except ValueError:
        return _bad(ProblemCode.date_format, raw, where)


def check_count(raw: str, where: Location) -> int | Problem:
    """Return a positive whole number of barcodes («12», «12 шт.»)."""
    m = re.fullmatch(r"\s*([0-9][0-9\s]*)(?:[.,]0+)?\s*(?:шт\.?|штук[аи]?)?\s*", raw)
    n = int(re.sub(r"\s", "", m[1])) if m else 0
    return n if n > 0 else _bad(ProblemCode.barcode_count_invalid, raw, where)


def check_decimal(raw: str) -> Decimal | None:
    """Return a non-negative number written with a comma or dot, else None."""
    text = _SPACES.sub("", raw).replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None
