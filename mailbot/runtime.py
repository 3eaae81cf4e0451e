"""Everything a step needs, built once from the settings and passed down explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import jinja2
from sqlalchemy.engine import Engine

from mailbot.config import Settings
from mailbot.issuance.vault import Vault, load_vault
from mailbot.mail.outbox import Sender
from mailbot.mail.render import make_env
from mailbot.parsers.limits import Limits as ParseLimits
from mailbot.parsers.schema import ProductType, parse_product_types
from mailbot.storage.db import make_engine


def utcnow() -> datetime:
    return datetime.now(UTC)


def shipped_product_types() -> tuple[ProductType, ...]:
    text = resources.files("mailbot.templates").joinpath("product_types.toml").read_text("utf-8")
    return parse_product_types(text)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    env: jinja2.Environment
    vault: Vault
    product_types: tuple[ProductType, ...]
    clock: Callable[[], datetime] = utcnow

    @property
    def sender(self) -> Sender:
        s = self.settings.service
        return Sender(address=s.email, name=s.name, domain=s.domain)

    @property
    def our_addresses(self) -> frozenset[str]:
        return frozenset({self.settings.service.email.lower()})

    @property
    def parse_limits(self) -> ParseLimits:
        lim = self.settings.limits
        return ParseLimits(max_file_bytes=lim.max_attachment_bytes, max_rows=lim.max_product_rows)


def build_runtime(settings: Settings, *, engine: Engine | None = None) -> Runtime:
    return Runtime(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        env=make_env(),
        vault=load_vault(settings.var_dir),
        product_types=shipped_product_types(),
    )
