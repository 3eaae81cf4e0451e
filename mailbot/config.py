"""Settings: config.toml plus secrets from the environment, checked once at start.

Every problem in the file is collected and reported together, each naming its key;
the CLI prints them and exits with code 2. Settings are passed down, never imported.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mailbot.billing.money import Tariffs, Tier, VatMode, validate_tariffs

DEFAULT_CONFIG = "config.toml"
VAT_MODES = ("22", "10", "5", "7", "0", "none")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` names each bad key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Secret(str):
    """A string that never shows itself in repr, logs or tracebacks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


@dataclass(frozen=True)
class Service:
    name: str
    inn: str
    kpp: str
    ogrn: str
    address: str
    bank: str
    bik: str
    account: str
    corr_account: str
    email: str
    domain: str
    phone: str = ""
    director: str = ""
    accountant: str = ""


@dataclass(frozen=True)
class MaildirSettings:
    inbox: Path
    outbox: Path


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    security: str
    user: str
    password: Secret
    mailbox: str
    processed_folder: str
    quarantine_folder: str
    poll_seconds: float
    ca_file: Path | None


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    user: str
    password: Secret
    from_address: str
    ca_file: Path | None


@dataclass(frozen=True)
class Prefix:
    prefix: str
    capacity: int


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 25_000_000
    max_attachment_bytes: int = 20_000_000
    max_product_rows: int = 10_000
    max_outgoing_bytes: int = 10_000_000
    replies_per_sender_per_hour: int = 20
    max_attempts: int = 5
    parse_seconds: float = 10.0
    parse_memory_mb: int = 512
    # caps on mail to others (mailbot.mail.caps): over one, the mail is held for an admin
    applications_per_sender_per_hour: int = 5
    applications_per_domain_per_hour: int = 20
    mails_per_recipient_per_day: int = 10
    new_recipients_per_hour: int = 10


@dataclass(frozen=True)
class Settings:
    base_dir: Path
    service: Service
    intake: str
    maildir: MaildirSettings
    imap: ImapConfig | None
    outbox: str
    smtp: SmtpConfig | None
    database_url: Secret
    var_dir: Path
    archive_dir: Path
    tariffs: Tariffs
    vat_mode: VatMode
    invoice_due_days: int
    invoice_remind_after_days: int
    invoice_expire_after_days: int
    prefixes: tuple[Prefix, ...]
    pool_low_threshold: int
    limits: Limits
    accountants: tuple[str, ...] = ()
    authserv_id: str = ""
    admin_email: str = ""
    metrics_port: int = 0  # local Prometheus endpoint; 0 = off
    extra: Mapping[str, Any] = field(default_factory=dict)


class _Reader:
    """Walks the parsed TOML and collects every problem instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def section(self, name: str, *, required: bool = True) -> Mapping[str, Any]:
        value = self.data.get(name)
        if value is None:
            if required:
                self.problems.append(f"[{name}]: section is missing")
            return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"[{name}]: must be a table")
            return {}
        return value

    def get(
        self,
        sec: Mapping[str, Any],
        where: str,
        key: str,
        kind: type,
        default: Any = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] = (),
        pattern: str = "",
    ) -> Any:
        name = f"{where}.{key}"
        if key not in sec:
            if required:
                self.problems.append(f"{name}: is required")
            return default
        value = sec[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{name}: must be {kind.__name__}, got {value!r}")
            return default
        if choices and value not in choices:
            self.problems.append(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
            return default
        if pattern and not re.fullmatch(pattern, str(value)):
            self.problems.append(f"{name}: {value!r} does not match {pattern}")
            return default
        return value

    def tables(
        self, sec: Mapping[str, Any], where: str, key: str, *, one: str, keys: str
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(name, table) for each table of the array `key`; at least one is required.

        A generator, so each entry's problems follow its own name in the report.
        """
        raw = sec.get(key, [])
        if not isinstance(raw, list) or not raw:
            self.problems.append(f"{where}.{key}: at least one {one} is required")
            return
        for n, item in enumerate(raw):
            name = f"{where}.{key}[{n}]"
            if isinstance(item, Mapping):
                yield name, item
            else:
                self.problems.append(f"{name}: must be a table with {keys}")

    def money(self, sec: Mapping[str, Any], where: str, key: str) -> Decimal:
        raw = sec.get(key)
        try:
            value = Decimal(str(raw))
        except (InvalidOperation, ValueError):
            self.problems.append(f"{where}.{key}: must be a number of roubles, got {raw!r}")
            return Decimal(0)
        if value < 0:
            self.problems.append(f"{where}.{key}: must not be negative")
        return value.quantize(Decimal("0.01"))


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (explicit path, $MAILBOT_CONFIG, or ./config.toml)."""
    env = os.environ if env is None else env
    if path is None:
        path = Path(env.get("MAILBOT_CONFIG") or DEFAULT_CONFIG)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found (use --config or MAILBOT_CONFIG)"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_settings(data, base_dir=path.resolve().parent, env=env)


def parse_settings(data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]) -> Settings:
    """Build Settings from parsed TOML; raises ConfigError naming every bad key."""
    r = _Reader(data)
    s = r.section("service")
    service = Service(
        name=r.get(s, "service", "name", str, "", required=True),
        inn=r.get(s, "service", "inn", str, "", required=True, pattern=r"\d{10}|\d{12}"),
        kpp=r.get(s, "service", "kpp", str, "", pattern=r"\d{4}[\dA-Z]{2}\d{3}"),
        ogrn=r.get(s, "service", "ogrn", str, "", pattern=r"\d{13}|\d{15}"),
        address=r.get(s, "service", "address", str, "", required=True),
        bank=r.get(s, "service", "bank", str, "", required=True),
        bik=r.get(s, "service", "bik", str, "", required=True, pattern=r"04\d{7}"),
        account=r.get(s, "service", "account", str, "", required=True, pattern=r"\d{20}"),
        corr_account=r.get(
            s, "service", "corr_account", str, "", required=True, pattern=r"30101\d{15}"
        ),
        email=r.get(s, "service", "email", str, "", required=True, pattern=r"[^@\s]+@[^@\s]+"),
        domain=r.get(s, "service", "domain", str, "", required=True),
        phone=r.get(s, "service", "phone", str, ""),
        director=r.get(s, "service", "director", str, ""),
        accountant=r.get(s, "service", "accountant", str, ""),
    )

    paths = r.section("paths", required=False)
    var_dir = base_dir / r.get(paths, "paths", "var", str, "var")
    archive_dir = var_dir / r.get(paths, "paths", "archive", str, "archive")

    intake = r.get(
        r.section("intake"), "intake", "kind", str, "maildir", choices=("maildir", "imap")
    )
    md = r.section("maildir", required=False)
    maildir = MaildirSettings(
        inbox=base_dir / r.get(md, "maildir", "inbox", str, "var/mail/inbox"),
        outbox=base_dir / r.get(md, "maildir", "outbox", str, "var/mail/outbox"),
    )
    imap = None
    if intake == "imap":
        i = r.section("imap")
        ca = r.get(i, "imap", "ca_file", str, "")
        imap = ImapConfig(
            host=r.get(i, "imap", "host", str, "", required=True),
            port=r.get(i, "imap", "port", int, 993),
            security=r.get(i, "imap", "security", str, "ssl", choices=("ssl", "starttls", "none")),
            user=r.get(i, "imap", "user", str, "", required=True),
            password=Secret(env.get("MAILBOT_IMAP_PASSWORD", "")),
            mailbox=r.get(i, "imap", "mailbox", str, "INBOX"),
            processed_folder=r.get(i, "imap", "processed_folder", str, "mailbot/processed"),
            quarantine_folder=r.get(i, "imap", "quarantine_folder", str, "mailbot/quarantine"),
            poll_seconds=r.get(i, "imap", "poll_seconds", float, 60.0),
            ca_file=base_dir / ca if ca else None,
        )
    outbox = r.get(
        r.section("outbox"), "outbox", "kind", str, "maildir", choices=("maildir", "smtp")
    )
    smtp = None
    if outbox == "smtp":
        m = r.section("smtp")
        ca = r.get(m, "smtp", "ca_file", str, "")
        smtp = SmtpConfig(
            host=r.get(m, "smtp", "host", str, "", required=True),
            port=r.get(m, "smtp", "port", int, 465),
            security=r.get(m, "smtp", "security", str, "ssl", choices=("ssl", "starttls", "none")),
            user=r.get(m, "smtp", "user", str, ""),
            password=Secret(env.get("MAILBOT_SMTP_PASSWORD", "")),
            from_address=r.get(m, "smtp", "from_address", str, service.email),
            ca_file=base_dir / ca if ca else None,
        )

    db = r.section("database", required=False)
    url = env.get("MAILBOT_DATABASE_URL") or r.get(
        db, "database", "url", str, "sqlite:///var/mailbot.db"
    )
    if not url.startswith(("sqlite:", "postgresql")):
        r.problems.append("database.url: must be sqlite:///… or postgresql+psycopg://…")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))

    t = r.section("tariffs")
    tiers = []
    for where, tier in r.tables(t, "tariffs", "tiers", one="tier", keys="from, to, price"):
        tiers.append(
            Tier(
                min_qty=r.get(tier, where, "from", int, 1, required=True),
                max_qty=r.get(tier, where, "to", int, None),
                price=r.money(tier, where, "price"),
            )
        )
    tariffs = Tariffs(
        registration_fee=r.money(t, "tariffs", "registration_fee"), tiers=tuple(tiers)
    )
    r.problems.extend(validate_tariffs(tariffs))

    vat = r.section("vat")
    vat_mode = r.get(vat, "vat", "mode", str, "22", choices=VAT_MODES)
    inv = r.section("invoices", required=False)
    due_days = r.get(inv, "invoices", "due_days", int, 5)
    remind_after = r.get(inv, "invoices", "remind_after_days", int, 3)
    expire_after = r.get(inv, "invoices", "expire_after_days", int, 10)
    if not 0 < remind_after < expire_after:
        r.problems.append(
            "invoices.remind_after_days: must be positive and below expire_after_days"
        )

    b = r.section("barcodes")
    prefixes = []
    for where, p in r.tables(b, "barcodes", "prefixes", one="[[barcodes.prefixes]]", keys="prefix"):
        prefix = r.get(p, where, "prefix", str, "", required=True, pattern=r"46\d{5,8}")
        room = 10 ** (12 - len(prefix)) if prefix else 0
        capacity = r.get(p, where, "capacity", int, room)
        if prefix and not 0 < capacity <= room:
            r.problems.append(
                f"{where}.capacity: must be 1..{room} for a {len(prefix)}-digit prefix"
            )
        prefixes.append(Prefix(prefix=prefix, capacity=capacity))
    if len({p.prefix for p in prefixes}) != len(prefixes):
        r.problems.append("barcodes.prefixes: a prefix is listed twice")
    low = r.get(b, "barcodes", "low_threshold", int, 100)

    lim = r.section("limits", required=False)
    d = Limits()
    limits = Limits(
        max_message_bytes=r.get(lim, "limits", "max_message_bytes", int, d.max_message_bytes),
        max_attachment_bytes=r.get(
            lim, "limits", "max_attachment_bytes", int, d.max_attachment_bytes
        ),
        max_product_rows=r.get(lim, "limits", "max_product_rows", int, d.max_product_rows),
        max_outgoing_bytes=r.get(lim, "limits", "max_outgoing_bytes", int, d.max_outgoing_bytes),
        replies_per_sender_per_hour=r.get(
            lim, "limits", "replies_per_sender_per_hour", int, d.replies_per_sender_per_hour
        ),
        max_attempts=r.get(lim, "limits", "max_attempts", int, d.max_attempts),
        parse_seconds=r.get(lim, "limits", "parse_seconds", float, d.parse_seconds),
        parse_memory_mb=r.get(lim, "limits", "parse_memory_mb", int, d.parse_memory_mb),
        **{
            key: r.get(lim, "limits", key, int, getattr(d, key))
            for key in (
                "applications_per_sender_per_hour",
                "applications_per_domain_per_hour",
                "mails_per_recipient_per_day",
                "new_recipients_per_hour",
            )
        },
    )
    pay = r.section("payments", required=False)
    accountants = r.get(pay, "payments", "accountants", list, [])
    authserv_id = r.get(pay, "payments", "authserv_id", str, "")
    admin = r.section("admin", required=False)
    admin_email = r.get(admin, "admin", "email", str, "")
    metrics_port = r.get(r.section("metrics", required=False), "metrics", "port", int, 0)
    if not 0 <= metrics_port <= 65535:
        r.problems.append(f"metrics.port: must be 0..65535, got {metrics_port}")

    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        base_dir=base_dir,
        service=service,
        intake=intake,
        maildir=maildir,
        imap=imap,
        outbox=outbox,
        smtp=smtp,
        database_url=Secret(url),
        var_dir=var_dir,
        archive_dir=archive_dir,
        tariffs=tariffs,
        vat_mode=VatMode(vat_mode),
        invoice_due_days=due_days,
        invoice_remind_after_days=remind_after,
        invoice_expire_after_days=expire_after,
        prefixes=tuple(prefixes),
        pool_low_threshold=low,
        limits=limits,
        accountants=tuple(str(a).lower() for a in accountants),
        authserv_id=authserv_id,
        admin_email=admin_email,
        metrics_port=metrics_port,
    )
