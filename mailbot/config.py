"""Settings: config.toml plus secrets from the environment, checked once at start.

Every problem in the file is collected and reported together, each naming its key;
the CLI prints them and exits with code 2. Settings are passed down, never imported.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
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
    max_header_block_bytes: int = 262_144  # see mailbot.mail.measure.HeaderLimits
    max_header_bytes: int = 65_536
    max_encoded_words: int = 200
    max_headers: int = 1000
    max_rss_mb: int = 1024  # the daemon restarts itself (exit 75) between messages past this
    database_grace_seconds: float = 600.0  # the daemon exits when the database is away longer
    # caps on mail to others (mailbot.mail.caps): over one, the mail is held for an admin
    applications_per_sender_per_hour: int = 5
    applications_per_domain_per_hour: int = 20
    mails_per_recipient_per_day: int = 10
    new_recipients_per_hour: int = 10


@dataclass(frozen=True)
class WebSettings:
    """[web]: the personal account's listener and cookie policy (`mailbot web`)."""

    listen: str = "127.0.0.1"
    port: int = 8080
    base_url: str = "http://localhost:8080"  # how clients reach it (links, cookie policy)
    secure_cookies: bool = False  # true unless base_url is http://localhost (set in _web)
    trusted_proxies: tuple[str, ...] = ()  # X-Forwarded-For is believed only from these
    idle_minutes: int = 30  # ASVS 7.3.1
    absolute_hours: int = 12  # ASVS 7.3.2


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
    web: WebSettings = field(default_factory=WebSettings)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Key:
    """One key of a config table: its type, default and what a valid value looks like."""

    name: str
    kind: type = str
    default: Any = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    pattern: str = ""


SECURITY = ("ssl", "starttls", "none")
# [service]: the seller's requisites printed on every invoice.
SERVICE_KEYS = (
    Key("name", required=True),
    Key("inn", required=True, pattern=r"\d{10}|\d{12}"),
    Key("kpp", pattern=r"\d{4}[\dA-Z]{2}\d{3}"),
    Key("ogrn", pattern=r"\d{13}|\d{15}"),
    Key("address", required=True),
    Key("bank", required=True),
    Key("bik", required=True, pattern=r"04\d{7}"),
    Key("account", required=True, pattern=r"\d{20}"),
    Key("corr_account", required=True, pattern=r"30101\d{15}"),
    Key("email", required=True, pattern=r"[^@\s]+@[^@\s]+"),
    Key("domain", required=True),
    Key("phone"),
    Key("director"),
    Key("accountant"),
)
MAILDIR_KEYS = (Key("inbox", default="var/mail/inbox"), Key("outbox", default="var/mail/outbox"))
IMAP_KEYS = (
    Key("ca_file"),
    Key("host", required=True),
    Key("port", int, 993),
    Key("security", default="ssl", choices=SECURITY),
    Key("user", required=True),
    Key("mailbox", default="INBOX"),
    Key("processed_folder", default="mailbot/processed"),
    Key("quarantine_folder", default="mailbot/quarantine"),
    Key("poll_seconds", float, 60.0),
)
SMTP_KEYS = (  # from_address defaults to service.email, filled in by _smtp
    Key("ca_file"),
    Key("host", required=True),
    Key("port", int, 465),
    Key("security", default="ssl", choices=SECURITY),
    Key("user"),
)
INVOICE_KEYS = (
    Key("due_days", int, 5),
    Key("remind_after_days", int, 3),
    Key("expire_after_days", int, 10),
)
WEB_KEYS = (
    Key("listen", default="127.0.0.1"),
    Key("port", int, 8080),
    Key("base_url", default="http://localhost:8080", pattern=r"https?://[^\s/]+(/\S*)?"),
    Key("secure_cookies", bool, None),
    Key("trusted_proxies", list, []),
    Key("idle_minutes", int, 30),
    Key("absolute_hours", int, 12),
)
# [limits]: every field of Limits, its type and default taken from the dataclass itself.
LIMIT_KEYS = tuple(Key(f.name, type(f.default), f.default) for f in fields(Limits))


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

    def get(self, sec: Mapping[str, Any], where: str, key: Key) -> Any:
        """The value of `key` in table `sec` (named `where`), or its default and a problem."""
        name, kind = f"{where}.{key.name}", key.kind
        if key.name not in sec:
            if key.required:
                self.problems.append(f"{name}: is required")
            return key.default
        value = sec[key.name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{name}: must be {kind.__name__}, got {value!r}")
            return key.default
        if key.choices and value not in key.choices:
            self.problems.append(f"{name}: must be one of {', '.join(key.choices)}, got {value!r}")
            return key.default
        if key.pattern and not re.fullmatch(key.pattern, str(value)):
            self.problems.append(f"{name}: {value!r} does not match {key.pattern}")
            return key.default
        return value

    def table(self, sec: Mapping[str, Any], where: str, keys: tuple[Key, ...]) -> dict[str, Any]:
        """Every key of the table, in order: name → value (or default)."""
        return {key.name: self.get(sec, where, key) for key in keys}

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


def _statement_trust(r: _Reader, pay: Mapping[str, Any]) -> tuple[list[str], str]:
    """Who may mail statements and whose Authentication-Results we read.

    `[payments] statement_senders` and `[mail] authserv_id` are the names of issue 16; the
    older `[payments] accountants` / `[payments] authserv_id` are still read when the new
    ones are absent or empty (the shipped config.toml has the new ones, empty).
    """
    senders = r.get(pay, "payments", Key("statement_senders", list, [])) or r.get(
        pay, "payments", Key("accountants", list, [])
    )
    mail = r.section("mail", required=False)
    authserv_id = (
        r.get(mail, "mail", Key("authserv_id")).strip()
        or r.get(pay, "payments", Key("authserv_id")).strip()
    )
    return list(senders), authserv_id.lower()


def parse_settings(data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]) -> Settings:
    """Build Settings from parsed TOML; raises ConfigError naming every bad key.

    Sections are read in file order, so the report lists problems the way the file does.
    """
    r = _Reader(data)
    service = Service(**r.table(r.section("service"), "service", SERVICE_KEYS))
    paths = r.section("paths", required=False)
    var_dir = base_dir / r.get(paths, "paths", Key("var", default="var"))
    archive_dir = var_dir / r.get(paths, "paths", Key("archive", default="archive"))
    intake = r.get(
        r.section("intake"), "intake", Key("kind", default="maildir", choices=("maildir", "imap"))
    )
    md = r.table(r.section("maildir", required=False), "maildir", MAILDIR_KEYS)
    maildir = MaildirSettings(**{k: base_dir / v for k, v in md.items()})
    imap = _imap(r, base_dir, env) if intake == "imap" else None
    outbox = r.get(
        r.section("outbox"), "outbox", Key("kind", default="maildir", choices=("maildir", "smtp"))
    )
    smtp = _smtp(r, base_dir, env, service.email) if outbox == "smtp" else None
    url = _database_url(r, base_dir, env)
    tariffs = _tariffs(r)
    vat_mode = r.get(r.section("vat"), "vat", Key("mode", default="22", choices=VAT_MODES))
    inv = _invoice_days(r)
    b = r.section("barcodes")
    prefixes = _prefixes(r, b)
    low = r.get(b, "barcodes", Key("low_threshold", int, 100))
    limits = Limits(**r.table(r.section("limits", required=False), "limits", LIMIT_KEYS))
    pay = r.section("payments", required=False)
    accountants, authserv_id = _statement_trust(r, pay)
    admin_email = r.get(r.section("admin", required=False), "admin", Key("email"))
    metrics_port = _metrics_port(r)
    web = _web(r)
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
        invoice_due_days=inv["due_days"],
        invoice_remind_after_days=inv["remind_after_days"],
        invoice_expire_after_days=inv["expire_after_days"],
        prefixes=prefixes,
        pool_low_threshold=low,
        limits=limits,
        accountants=tuple(str(a).lower() for a in accountants),
        authserv_id=authserv_id,
        admin_email=admin_email,
        metrics_port=metrics_port,
        web=web,
    )


def _invoice_days(r: _Reader) -> dict[str, int]:
    """[invoices]: days to pay, to the reminder and to expiry (reminder before expiry)."""
    inv = r.table(r.section("invoices", required=False), "invoices", INVOICE_KEYS)
    if not 0 < inv["remind_after_days"] < inv["expire_after_days"]:
        r.problems.append(
            "invoices.remind_after_days: must be positive and below expire_after_days"
        )
    return inv


def _web(r: _Reader) -> WebSettings:
    """[web]: cookies are Secure unless the account is only served to http://localhost."""
    w = r.table(r.section("web", required=False), "web", WEB_KEYS)
    local = re.match(r"http://(localhost|127\.0\.0\.1)(:\d+)?(/|$)", w["base_url"]) is not None
    if w["secure_cookies"] is None:
        w["secure_cookies"] = not local
    if not w["secure_cookies"] and not local:
        r.problems.append("web.secure_cookies: may be false only for a http://localhost base_url")
    if not 0 < w["port"] <= 65535:
        r.problems.append(f"web.port: must be 1..65535, got {w['port']}")
    for name, low in (("idle_minutes", 1), ("absolute_hours", 1)):
        if w[name] < low:
            r.problems.append(f"web.{name}: must be at least {low}")
    w["base_url"] = w["base_url"].rstrip("/")
    w["trusted_proxies"] = tuple(str(a) for a in w["trusted_proxies"])
    return WebSettings(**w)


def _metrics_port(r: _Reader) -> int:
    """[metrics] port: the local Prometheus endpoint, 0 = off."""
    port: int = r.get(r.section("metrics", required=False), "metrics", Key("port", int, 0))
    if not 0 <= port <= 65535:
        r.problems.append(f"metrics.port: must be 0..65535, got {port}")
    return port


def _imap(r: _Reader, base_dir: Path, env: Mapping[str, str]) -> ImapConfig:
    values = r.table(r.section("imap"), "imap", IMAP_KEYS)
    ca = values.pop("ca_file")
    password = Secret(env.get("MAILBOT_IMAP_PASSWORD", ""))
    return ImapConfig(**values, password=password, ca_file=base_dir / ca if ca else None)


def _smtp(r: _Reader, base_dir: Path, env: Mapping[str, str], service_email: str) -> SmtpConfig:
    sec = r.section("smtp")
    values = r.table(sec, "smtp", SMTP_KEYS)
    ca = values.pop("ca_file")
    return SmtpConfig(
        **values,
        password=Secret(env.get("MAILBOT_SMTP_PASSWORD", "")),
        from_address=r.get(sec, "smtp", Key("from_address", default=service_email)),
        ca_file=base_dir / ca if ca else None,
    )


def _database_url(r: _Reader, base_dir: Path, env: Mapping[str, str]) -> str:
    """$MAILBOT_DATABASE_URL or database.url; a relative SQLite path is under base_dir."""
    db = r.section("database", required=False)
    url: str = env.get("MAILBOT_DATABASE_URL") or r.get(
        db, "database", Key("url", default="sqlite:///var/mailbot.db")
    )
    if not url.startswith(("sqlite:", "postgresql")):
        r.problems.append("database.url: must be sqlite:///… or postgresql+psycopg://…")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))
    return url


def _tariffs(r: _Reader) -> Tariffs:
    t = r.section("tariffs")
    tiers = [
        Tier(
            min_qty=r.get(tier, where, Key("from", int, 1, required=True)),
            max_qty=r.get(tier, where, Key("to", int, None)),
            price=r.money(tier, where, "price"),
        )
        for where, tier in r.tables(t, "tariffs", "tiers", one="tier", keys="from, to, price")
    ]
    tariffs = Tariffs(
        registration_fee=r.money(t, "tariffs", "registration_fee"), tiers=tuple(tiers)
    )
    r.problems.extend(validate_tariffs(tariffs))
    return tariffs


def _prefixes(r: _Reader, b: Mapping[str, Any]) -> tuple[Prefix, ...]:
    """[[barcodes.prefixes]]: each GS1 prefix and how many codes it may give out."""
    prefixes = []
    for where, p in r.tables(b, "barcodes", "prefixes", one="[[barcodes.prefixes]]", keys="prefix"):
        prefix = r.get(p, where, Key("prefix", required=True, pattern=r"46\d{5,8}"))
        room = 10 ** (12 - len(prefix)) if prefix else 0
        capacity = r.get(p, where, Key("capacity", int, room))
        if prefix and not 0 < capacity <= room:
            r.problems.append(
                f"{where}.capacity: must be 1..{room} for a {len(prefix)}-digit prefix"
            )
        prefixes.append(Prefix(prefix=prefix, capacity=capacity))
    if len({p.prefix for p in prefixes}) != len(prefixes):
        r.problems.append("barcodes.prefixes: a prefix is listed twice")
    return tuple(prefixes)
