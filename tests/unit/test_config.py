"""config.toml is checked at start: every bad key named at once; secrets only from the env."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailbot.billing.money import VatMode
from mailbot.config import ConfigError, Limits, Secret, load_settings, parse_settings
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
    data["imap"]["password"] = "in-the-file"  # ignored: not a key we read
    s = parse_settings(data, base_dir=Path("/x"), env={"MAILBOT_IMAP_PASSWORD": "s3cret"})
    assert s.imap is not None
    assert str(s.imap.password) == "s3cret"
    assert "s3cret" not in repr(s.imap) and "s3cret" not in repr(s)


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
