"""Settings: config.toml plus secrets from the environment, checked once at start.

Every problem in the file is collected and reported together, each naming its key;
the CLI prints them and exits with code 2. Settings are passed down, never imported.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
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
    """One key of a config table: its type, default and what a valid value looks like.

    `kind=Decimal` is an amount of roubles (a TOML string or number); `items` are the keys
    of each table of an array of tables (`tiers = [{...}]`, `[[barcodes.prefixes]]`).
    """

    name: str
    kind: type = str
    default: Any = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    pattern: str = ""
    items: tuple[Key, ...] = ()


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
PATHS_KEYS = (Key("var", default="var"), Key("archive", default="archive"))
INTAKE_KEYS = (Key("kind", default="maildir", choices=("maildir", "imap")),)
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
OUTBOX_KEYS = (Key("kind", default="maildir", choices=("maildir", "smtp")),)
SMTP_KEYS = (  # an empty from_address is service.email, filled in by _smtp
    Key("ca_file"),
    Key("host", required=True),
    Key("port", int, 465),
    Key("security", default="ssl", choices=SECURITY),
    Key("user"),
    Key("from_address"),
)
DATABASE_KEYS = (Key("url", default="sqlite:///var/mailbot.db"),)
TIER_KEYS = (
    Key("from", int, 1, required=True),
    Key("to", int, None),
    Key("price", Decimal, Decimal("0.00"), required=True),
)
TIERS = Key("tiers", list, [], items=TIER_KEYS)
REGISTRATION_FEE = Key("registration_fee", Decimal, Decimal("0.00"), required=True)
TARIFF_KEYS = (REGISTRATION_FEE, TIERS)
VAT_KEYS = (Key("mode", default="22", choices=VAT_MODES),)
INVOICE_KEYS = (
    Key("due_days", int, 5),
    Key("remind_after_days", int, 3),
    Key("expire_after_days", int, 10),
)
PREFIX = Key("prefix", required=True, pattern=r"46\d{5,8}")
CAPACITY = Key("capacity", int, 0)  # default: the whole room of the prefix, see _prefixes
PREFIXES = Key("prefixes", list, [], items=(PREFIX, CAPACITY))
LOW_THRESHOLD = Key("low_threshold", int, 100)
BARCODE_KEYS = (LOW_THRESHOLD, PREFIXES)
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
MAIL_KEYS = (Key("authserv_id"),)
# statement_senders is the name of issue 16; accountants and authserv_id are the older names.
PAYMENT_KEYS = (
    Key("statement_senders", list, []),
    Key("accountants", list, []),
    Key("authserv_id"),
)
ADMIN_KEYS = (Key("email"),)
METRICS_KEYS = (Key("port", int, 0),)

# Every section config.toml may hold and its keys: the one list unknown names are checked
# against. A new section: its Key rows (as above), one row here, its reading in
# parse_settings (`_optional(r, "web")` is name → value of an optional section), and its
# keys documented in the shipped config.toml (tests/unit/test_config.py checks that every
# section is there and every declared key is read).
SECTIONS: dict[str, tuple[Key, ...]] = {
    "service": SERVICE_KEYS,
    "paths": PATHS_KEYS,
    "intake": INTAKE_KEYS,
    "maildir": MAILDIR_KEYS,
    "imap": IMAP_KEYS,
    "outbox": OUTBOX_KEYS,
    "smtp": SMTP_KEYS,
    "database": DATABASE_KEYS,
    "tariffs": TARIFF_KEYS,
    "vat": VAT_KEYS,
    "invoices": INVOICE_KEYS,
    "barcodes": BARCODE_KEYS,
    "limits": LIMIT_KEYS,
    "mail": MAIL_KEYS,
    "payments": PAYMENT_KEYS,
    "admin": ADMIN_KEYS,
    "metrics": METRICS_KEYS,
    "web": WEB_KEYS,
}
# Secrets a user may try to put in the file: where they belong instead.
SECRET_ENV = {
    ("imap", "password"): "MAILBOT_IMAP_PASSWORD",
    ("smtp", "password"): "MAILBOT_SMTP_PASSWORD",
}


def unknown_names(
    data: Mapping[str, Any], sections: Mapping[str, tuple[Key, ...]] = SECTIONS
) -> list[str]:
    """One line per section or key the file holds that nobody reads, with the nearest name."""
    problems = []
    for name, value in data.items():
        keys = sections.get(name)
        if keys is not None:
            if isinstance(value, Mapping):
                problems += _unknown_keys(value, name, keys)
        elif isinstance(value, Mapping):
            problems.append(f"[{name}]: unknown section{_hint(name, sections, '[{}]')}")
        else:  # a key above the first section header: name the sections that have it
            homes = " or ".join(f"[{s}] {name}" for s, ks in sections.items() if name in _names(ks))
            hint = f" (did you mean {homes}?)" if homes else ""
            problems.append(f"{name}: unknown key outside any section{hint}")
    return problems


def _unknown_keys(table: Mapping[str, Any], where: str, keys: tuple[Key, ...]) -> list[str]:
    known = {k.name: k for k in keys}
    problems = []
    for name, value in table.items():
        key = known.get(name)
        if key is None and (env := SECRET_ENV.get((where, name))):
            problems.append(f"[{where}] {name}: secrets are not read from the file; set ${env}")
        elif key is None:
            problems.append(f"[{where}] {name}: unknown key{_hint(name, known)}")
        elif key.items and isinstance(value, list):
            for n, item in enumerate(value):
                if isinstance(item, Mapping):
                    problems += _unknown_keys(item, f"{where}.{name}[{n}]", key.items)
    return problems


def _names(keys: tuple[Key, ...]) -> set[str]:
    return {k.name for k in keys}


def _hint(name: str, known: Mapping[str, object], shape: str = "{}") -> str:
    """« (did you mean X?)» for the known name nearest to `name`, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {shape.format(close[0])}?)" if close else ""


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
        if kind is Decimal:
            return self.money(name, value)
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
        self, sec: Mapping[str, Any], where: str, key: Key, *, one: str
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(name, table) for each table of the array `key`; at least one is required.

        A generator, so each entry's problems follow its own name in the report.
        """
        raw = sec.get(key.name, [])
        if not isinstance(raw, list) or not raw:
            self.problems.append(f"{where}.{key.name}: at least one {one} is required")
            return
        for n, item in enumerate(raw):
            name = f"{where}.{key.name}[{n}]"
            if isinstance(item, Mapping):
                yield name, item
            else:
                keys = ", ".join(k.name for k in key.items)
                self.problems.append(f"{name}: must be a table with {keys}")

    def money(self, name: str, raw: object) -> Decimal:
        """An amount of roubles written as a TOML string or number, to the kopeck.

        A negative amount is left to validate_tariffs, which names it once.
        """
        try:
            value = Decimal(str(raw)).quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):  # not a number, infinite or absurdly long
            value = Decimal("NaN")
        if value.is_finite():
            return value
        self.problems.append(f"{name}: must be a number of roubles, got {raw!r}")
        return Decimal(0)


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


def _statement_trust(r: _Reader) -> tuple[list[str], str]:
    """Who may mail statements and whose Authentication-Results we read.

    `[payments] statement_senders` and `[mail] authserv_id` are the names of issue 16; the
    older `[payments] accountants` / `[payments] authserv_id` are still read when the new
    ones are absent or empty (the shipped config.toml has the new ones, empty).
    """
    pay = r.table(r.section("payments", required=False), "payments", PAYMENT_KEYS)
    mail = r.table(r.section("mail", required=False), "mail", MAIL_KEYS)
    senders = pay["statement_senders"] or pay["accountants"]
    authserv_id = mail["authserv_id"].strip() or pay["authserv_id"].strip()
    return list(senders), authserv_id.lower()


def _optional(r: _Reader, name: str) -> dict[str, Any]:
    """Every key of the optional section `name` (declared in SECTIONS): name → value."""
    return r.table(r.section(name, required=False), name, SECTIONS[name])


def parse_settings(data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str]) -> Settings:
    """Build Settings from parsed TOML; raises ConfigError naming every bad key.

    Unknown sections and keys come first (a misspelt name explains a default used below);
    then sections are read in file order, so the report lists problems the way the file does.
    """
    r = _Reader(data)
    r.problems += unknown_names(data)
    service = Service(**r.table(r.section("service"), "service", SERVICE_KEYS))
    paths = _optional(r, "paths")
    var_dir = base_dir / paths["var"]
    archive_dir = var_dir / paths["archive"]
    intake = r.table(r.section("intake"), "intake", INTAKE_KEYS)["kind"]
    maildir = MaildirSettings(**{k: base_dir / v for k, v in _optional(r, "maildir").items()})
    imap = _imap(r, base_dir, env) if intake == "imap" else None
    outbox = r.table(r.section("outbox"), "outbox", OUTBOX_KEYS)["kind"]
    smtp = _smtp(r, base_dir, env, service.email) if outbox == "smtp" else None
    url = _database_url(r, base_dir, env)
    tariffs = _tariffs(r)
    vat_mode = r.table(r.section("vat"), "vat", VAT_KEYS)["mode"]
    inv = _invoice_days(r)
    b = r.section("barcodes")
    prefixes = _prefixes(r, b)
    low = r.get(b, "barcodes", LOW_THRESHOLD)
    limits = Limits(**_optional(r, "limits"))
    accountants, authserv_id = _statement_trust(r)
    admin_email = _optional(r, "admin")["email"]
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
    inv = _optional(r, "invoices")
    if not 0 < inv["remind_after_days"] < inv["expire_after_days"]:
        r.problems.append(
            "invoices.remind_after_days: must be positive and below expire_after_days"
        )
    return inv


def _web(r: _Reader) -> WebSettings:
    """[web]: cookies are Secure unless the account is only served to http://localhost."""
    w = _optional(r, "web")
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
    port: int = _optional(r, "metrics")["port"]
    if not 0 <= port <= 65535:
        r.problems.append(f"metrics.port: must be 0..65535, got {port}")
    return port


def _imap(r: _Reader, base_dir: Path, env: Mapping[str, str]) -> ImapConfig:
    values = r.table(r.section("imap"), "imap", IMAP_KEYS)
    ca = values.pop("ca_file")
    password = Secret(env.get("MAILBOT_IMAP_PASSWORD", ""))
    return ImapConfig(**values, password=password, ca_file=base_dir / ca if ca else None)


def _smtp(r: _Reader, base_dir: Path, env: Mapping[str, str], service_email: str) -> SmtpConfig:
    values = r.table(r.section("smtp"), "smtp", SMTP_KEYS)
    ca = values.pop("ca_file")
    return SmtpConfig(
        **values | {"from_address": values["from_address"] or service_email},
        password=Secret(env.get("MAILBOT_SMTP_PASSWORD", "")),
        ca_file=base_dir / ca if ca else None,
    )


def _database_url(r: _Reader, base_dir: Path, env: Mapping[str, str]) -> str:
    """$MAILBOT_DATABASE_URL or database.url; a relative SQLite path is under base_dir."""
    url: str = env.get("MAILBOT_DATABASE_URL") or _optional(r, "database")["url"]
    if not url.startswith(("sqlite:", "postgresql")):
        r.problems.append("database.url: must be sqlite:///… or postgresql+psycopg://…")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))
    return url


def _tariffs(r: _Reader) -> Tariffs:
    t = r.section("tariffs")
    tiers = [
        Tier(min_qty=tier["from"], max_qty=tier["to"], price=tier["price"])
        for tier in (
            r.table(item, where, TIERS.items)
            for where, item in r.tables(t, "tariffs", TIERS, one="tier")
        )
    ]
    tariffs = Tariffs(registration_fee=r.get(t, "tariffs", REGISTRATION_FEE), tiers=tuple(tiers))
    r.problems.extend(validate_tariffs(tariffs))
    return tariffs


def _prefixes(r: _Reader, b: Mapping[str, Any]) -> tuple[Prefix, ...]:
    """[[barcodes.prefixes]]: each GS1 prefix and how many codes it may give out."""
    prefixes = []
    for where, p in r.tables(b, "barcodes", PREFIXES, one="[[barcodes.prefixes]]"):
        prefix = r.get(p, where, PREFIX)
        room = 10 ** (12 - len(prefix)) if prefix else 0
        capacity = r.get(p, where, replace(CAPACITY, default=room))
        if prefix and not 0 < capacity <= room:
            r.problems.append(
                f"{where}.capacity: must be 1..{room} for a {len(prefix)}-digit prefix"
            )
        prefixes.append(Prefix(prefix=prefix, capacity=capacity))
    if len({p.prefix for p in prefixes}) != len(prefixes):
        r.problems.append("barcodes.prefixes: a prefix is listed twice")
    return tuple(prefixes)
