"""config.toml is checked at start: every bad key named at once; secrets only from the env."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailbot import config
from mailbot.billing.money import VatMode
from mailbot.config import (
    SECTIONS,
    ConfigError,
    Key,
    Limits,
    Secret,
    load_settings,
    parse_settings,
    unknown_names,
)
from tests.conftest import REPO


def shipped() -> dict[str, Any]:
    return tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, base_dir=Path("/srv/mailbot"), env={})
    return caught.value.problems


def test_shipped_config_loads_with_embedded_defaults() -> None:
    s = parse_settings(shipped(), base_dir=Path("/srv/mailbot"), env={})
    assert s.intake == "maildir" and s.outbox == "maildir"
    assert str(s.database_url) == "sqlite:////srv/mailbot/var/mailbot.db"
    assert s.maildir.inbox == Path("/srv/mailbot/var/mail/inbox")
    assert s.vat_mode is VatMode.VAT_22
    assert [p.prefix for p in s.prefixes] == ["4601234"]


def test_every_bad_key_is_named_in_one_report() -> None:
    data = shipped()
    data["service"]["inn"] = "12345"
    data["vat"]["mode"] = "18"
    data["intake"]["kind"] = "pop3"
    data["barcodes"]["prefixes"][0]["prefix"] = "123"
    data["tariffs"]["tiers"][1]["price"] = "-1"
    problems = problems_of(data)
    joined = "\n".join(problems)
    for key in (
        "service.inn",
        "vat.mode",
        "intake.kind",
        "barcodes.prefixes[0].prefix",
        "tariffs.tiers[1].price",
    ):
        assert key in joined, joined
    assert len(problems) >= 5


def test_a_gap_between_tariff_tiers_is_refused_naming_the_tier() -> None:
    data = shipped()
    data["tariffs"]["tiers"][1]["from"] = 20
    assert any("tariffs.tiers" in p for p in problems_of(data))


def test_missing_section_and_wrong_type_are_named() -> None:
    data = shipped()
    del data["service"]
    data["limits"]["max_attempts"] = "five"
    joined = "\n".join(problems_of(data))
    assert "[service]: section is missing" in joined
    assert "limits.max_attempts: must be int" in joined


def test_imap_needs_its_section_and_password_comes_only_from_the_environment() -> None:
    data = shipped()
    data["intake"]["kind"] = "imap"
    s = parse_settings(data, base_dir=Path("/x"), env={"MAILBOT_IMAP_PASSWORD": "s3cret"})
    assert s.imap is not None
    assert str(s.imap.password) == "s3cret"
    assert "s3cret" not in repr(s.imap) and "s3cret" not in repr(s)
    data["imap"]["password"] = "in-the-file"
    assert problems_of(data) == [
        "[imap] password: secrets are not read from the file; set $MAILBOT_IMAP_PASSWORD"
    ]


def test_database_url_from_the_environment_overrides_the_file() -> None:
    url = "postgresql+psycopg://mailbot:pw@db/mailbot"
    s = parse_settings(shipped(), base_dir=Path("/x"), env={"MAILBOT_DATABASE_URL": url})
    assert str(s.database_url) == url
    assert "pw" not in repr(s.database_url)


def test_secret_repr_hides_the_value() -> None:
    assert repr(Secret("hunter2")) == "Secret('***')"


def test_config_file_is_found_by_env_var_and_a_missing_one_is_one_clear_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.toml").write_text((REPO / "config.toml").read_text(encoding="utf-8"))
    s = load_settings(env={"MAILBOT_CONFIG": str(tmp_path / "c.toml")})
    assert s.base_dir == tmp_path
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.toml", env={})
    assert caught.value.problems == [
        f"{tmp_path / 'nope.toml'}: config file not found (use --config or MAILBOT_CONFIG)"
    ]


def test_broken_toml_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[service\nname = 1", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "config.toml", env={})
    assert "not valid TOML" in caught.value.problems[0]


def test_every_limit_is_read_from_its_own_key_and_defaults_to_the_dataclass() -> None:
    fields = dataclasses.fields(Limits)
    data = shipped()
    data.pop("limits", None)
    defaults = parse_settings(data, base_dir=Path("/srv/mailbot"), env={}).limits
    assert defaults == Limits()
    data["limits"] = {
        f.name: (f.default + n + 1) if isinstance(f.default, int) else float(n) + 0.5
        for n, f in enumerate(fields)
    }
    limits = parse_settings(data, base_dir=Path("/srv/mailbot"), env={}).limits
    assert dataclasses.asdict(limits) == data["limits"]


def test_a_mistyped_imap_key_is_named_with_its_section_and_the_rest_still_checked() -> None:
    data = shipped()
    data["intake"]["kind"] = "imap"
    data["imap"] = {"host": "imap.example.test", "port": "993", "security": "tls"}
    problems = problems_of(data)
    assert "imap.port: must be int, got '993'" in problems
    assert "imap.security: must be one of ssl, starttls, none, got 'tls'" in problems
    assert "imap.user: is required" in problems


def test_a_misspelt_key_or_section_is_one_line_naming_the_nearest_known_name() -> None:
    data = shipped()
    data["invoices"]["due_dayz"] = 5
    data["invoice"] = {"due_days": 5}
    data["barcodes"]["prefixes"][0]["capasity"] = 10
    data["tariffs"]["tiers"][2]["prise"] = "1.00"
    data["limits"]["zzz"] = 1
    data["wholly_unrelated"] = {"a": 1}
    problems = problems_of(data)
    assert problems == [
        "[tariffs.tiers[2]] prise: unknown key (did you mean price?)",
        "[invoices] due_dayz: unknown key (did you mean due_days?)",
        "[barcodes.prefixes[0]] capasity: unknown key (did you mean capacity?)",
        "[limits] zzz: unknown key",
        "[invoice]: unknown section (did you mean [invoices]?)",
        "[wholly_unrelated]: unknown section",
    ]


def test_a_key_above_every_section_names_the_sections_that_have_it() -> None:
    assert unknown_names({"due_days": 5, "kind": "imap", "nope": 1}) == [
        "due_days: unknown key outside any section (did you mean [invoices] due_days?)",
        "kind: unknown key outside any section (did you mean [intake] kind or [outbox] kind?)",
        "nope: unknown key outside any section",
    ]


def test_unknown_names_are_reported_with_every_other_problem_first_of_all() -> None:
    data = shipped()
    data["vat"]["mode"] = "18"
    data["vat"]["mod"] = "22"
    assert problems_of(data) == [
        "[vat] mod: unknown key (did you mean mode?)",
        "vat.mode: must be one of 22, 10, 5, 7, 0, none, got '18'",
    ]


def test_the_shipped_config_and_its_optional_sections_hold_no_unknown_name() -> None:
    data = shipped()
    assert set(data) == set(SECTIONS)  # the shipped file documents every section
    assert unknown_names(data) == []


def test_every_declared_key_is_read_and_every_key_read_is_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SECTIONS is the one list of names: a key declared but never read (or read but not
    declared, so refused as unknown) is a wiring mistake this catches."""
    read: set[tuple[str, str]] = set()
    real_get, real_tables = config._Reader.get, config._Reader.tables

    def get(self: Any, sec: Any, where: str, key: Key) -> Any:
        read.add((where.split("[")[0], key.name))
        return real_get(self, sec, where, key)

    def tables(self: Any, sec: Any, where: str, key: Key, *, one: str) -> Any:
        read.add((where, key.name))
        return real_tables(self, sec, where, key, one=one)

    monkeypatch.setattr(config._Reader, "get", get)
    monkeypatch.setattr(config._Reader, "tables", tables)
    data = shipped()
    data["intake"]["kind"] = "imap"
    data["outbox"]["kind"] = "smtp"
    parse_settings(data, base_dir=Path("/x"), env={})
    declared = {(s, k.name) for s, keys in SECTIONS.items() for k in keys}
    declared |= {
        (f"{s}.{k.name}", item.name)
        for s, keys in SECTIONS.items()
        for k in keys
        for item in k.items
    }
    assert read == declared


def test_an_amount_that_is_no_number_of_roubles_is_one_line() -> None:
    data = shipped()
    data["tariffs"]["registration_fee"] = "NaN"
    data["tariffs"]["tiers"][0]["price"] = "1e30"
    assert problems_of(data) == [
        "tariffs.tiers[0].price: must be a number of roubles, got '1e30'",
        "tariffs.registration_fee: must be a number of roubles, got 'NaN'",
    ]
