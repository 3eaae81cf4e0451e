"""Conditions the code relies on, checked for real (an `assert` vanishes under `python -O`)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class InvariantError(RuntimeError):
    """A condition the code relies on did not hold: a bug, never the sender's fault."""


def present(value: T | None, what: str) -> T:
    """`value`, which must be there by construction (a flushed row's id, a locked row)."""
    if value is None:
        raise InvariantError(f"{what} is missing")
    return value
