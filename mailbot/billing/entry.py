"""Amounts and dates as an accountant types them: «2 500,00», «2500.00», «04.12.2026».

Pure functions: text in, a value or one line saying what is wrong. Written by hand because
no library reads the Russian accountant's conventions (space or NBSP thousands separators,
comma decimals, a trailing «руб.») while refusing what Decimal() and float() happily accept
(«1e3», «NaN», «Infinity», «-0»).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

MAX_AMOUNT = Decimal("100000000.00")  # 100 million RUB: far above any invoice we write
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_CURRENCY = re.compile(r"(?:руб(?:лей|ля|ль)?\.?|р\.|rub|₽)$", re.IGNORECASE)
_AMOUNT = re.compile(r"(?P<units>\d{1,12})(?:[.,](?P<frac>\d{1,2}))?")
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class EntryError(ValueError):
    """What is wrong with what was typed, as one line for the person who typed it."""


def parse_amount(text: str) -> Decimal:
    """A positive amount in roubles with at most two decimals, e.g. «2 500,00» → 2500.00."""
    raw = text.strip()
    compact = _CURRENCY.sub("", _SPACES.sub("", raw).lower()).rstrip()
    if compact.startswith("-"):
        raise EntryError(f"amount {raw!r} is negative: enter the amount received")
    m = _AMOUNT.fullmatch(compact)
    if m is None:
        frac = re.fullmatch(r"\d+[.,]\d{3,}", compact)
        if frac is not None:
            raise EntryError(f"amount {raw!r} has more than 2 decimals (kopecks)")
        raise EntryError(f"amount {raw!r} is not a sum of money: write it like 2 500,00 or 2500.00")
    value = Decimal(f"{m['units']}.{(m['frac'] or '0').ljust(2, '0')}")
    if value <= 0:
        raise EntryError(f"amount {raw!r} is zero: enter the amount received")
    if value > MAX_AMOUNT:
        raise EntryError(f"amount {raw!r} is larger than {MAX_AMOUNT:,.2f} RUB: check it")
    return value


def parse_day(text: str, *, today: date) -> date:
    """A calendar day written 04.12.2026 or 2026-12-04; never later than `today`."""
    raw = text.strip()
    if m := _DOTTED.fullmatch(raw):
        year, month, day_ = int(m[3]), int(m[2]), int(m[1])
    elif m := _ISO.fullmatch(raw):
        year, month, day_ = int(m[1]), int(m[2]), int(m[3])
    else:
        raise EntryError(f"date {raw!r}: write it as DD.MM.YYYY or YYYY-MM-DD")
    try:
        day = date(year, month, day_)
    except ValueError:
        raise EntryError(f"date {raw!r} does not exist in the calendar") from None
    if day > today:
        raise EntryError(f"date {raw!r} is in the future (today is {today:%d.%m.%Y})")
    return day


def parse_reason(text: str) -> str:
    """A --force reason: kept on the payment and in the event log, so it must say something."""
    reason = " ".join(text.split())
    if not reason:
        raise EntryError('--force needs a reason, e.g. --force "paid in two parts"')
    return reason
