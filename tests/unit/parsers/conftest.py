"""Shared fixtures for parser tests."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from mailbot.parsers.limits import Limits
from mailbot.parsers.schema import ProductType, load_product_types

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def product_types() -> tuple[ProductType, ...]:
    return load_product_types(REPO / "templates" / "product_types.toml")


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture(scope="session")
def env() -> jinja2.Environment:
    return jinja2.Environment(  # noqa: S701 - renders plain-text mail, not HTML
        loader=jinja2.FileSystemLoader(REPO / "templates"), undefined=jinja2.StrictUndefined
    )
