"""`mailbot check` against the real loopback Dovecot + SMTP relay: one finding per problem."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mailbot.service.checks import Finding, run_checks
from mailbot.storage.db import make_engine
from mailbot.storage.migrate import upgrade
from tests.conftest import REPO
from tests.e2e.helpers import mailbot
from tests.e2e.test_mail_edge import set_key
from tests.mailstack import MailStack

pytestmark = pytest.mark.mail


def site(
    tmp_path: Path, stack: MailStack, keys: dict[str, str] | None = None, *, migrated: bool = True
) -> Path:
    """A config for IMAPS + SMTP at `stack`; `keys` ("section.key": TOML literal) override."""
    text = (REPO / "config.toml").read_text()
    settings = {
        "intake.kind": '"imap"',
        "imap.host": '"127.0.0.1"',
        "imap.port": str(stack.imaps_port),
        "imap.security": '"ssl"',
        "imap.ca_file": f'"{stack.ca_file}"',
        "outbox.kind": '"smtp"',
        "smtp.host": '"127.0.0.1"',
        "smtp.port": str(stack.smtp_port),
        "smtp.security": '"none"',
        "smtp.user": '""',
        **(keys or {}),
    }
    for dotted, value in settings.items():
        section, key = dotted.split(".")
        text = set_key(text, section, key, value)
    (tmp_path / "config.toml").write_text(text)
    if migrated:
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'mailbot.db'}")
        upgrade(engine)
        engine.dispose()
    return tmp_path / "config.toml"


def env(stack: MailStack, password: str | None = None) -> dict[str, str]:
    return {"MAILBOT_IMAP_PASSWORD": stack.password if password is None else password}


def failures(findings: list[Finding]) -> list[str]:
    return [f.line() for f in findings if not f.ok]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_sound_installation_passes_every_check_and_exits_0(
    tmp_path: Path, mailstack: MailStack
) -> None:
    site(tmp_path, mailstack)
    proc = mailbot(tmp_path, "check", env=env(mailstack))
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok config",
        "ok database",
        "ok imap",
        "ok smtp",
    ]


def test_a_wrong_imap_password_is_one_line_and_exit_1(tmp_path: Path, mailstack: MailStack) -> None:
    site(tmp_path, mailstack)
    proc = mailbot(tmp_path, "check", env=env(mailstack, "wrong"), check=False)
    assert proc.returncode == 1
    bad = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(bad) == 1
    assert "imap" in bad[0] and "login" in bad[0] and "refused" in bad[0]


def test_an_unreachable_server_is_reported(tmp_path: Path, mailstack: MailStack) -> None:
    path = site(tmp_path, mailstack, {"smtp.port": str(closed_port())})
    found = failures(run_checks(path, env(mailstack)))
    assert len(found) == 1
    assert found[0].startswith("FAIL smtp:") and "unavailable" in found[0]


def test_imaps_without_the_ca_file_is_an_untrusted_certificate(
    tmp_path: Path, mailstack: MailStack
) -> None:
    path = site(tmp_path, mailstack, {"imap.ca_file": '""'})
    found = failures(run_checks(path, env(mailstack)))
    assert len(found) == 1
    assert found[0].startswith("FAIL imap:") and "not trusted" in found[0]


def test_an_unmigrated_database_is_reported(tmp_path: Path, mailstack: MailStack) -> None:
    path = site(tmp_path, mailstack, migrated=False)
    found = failures(run_checks(path, env(mailstack)))
    assert len(found) == 1
    assert found[0].startswith("FAIL database:") and "mailbot db upgrade" in found[0]


def test_an_invalid_config_key_is_named(tmp_path: Path, mailstack: MailStack) -> None:
    path = site(tmp_path, mailstack, {"imap.security": '"tls"'})
    found = failures(run_checks(path, env(mailstack)))
    assert found == ["FAIL config: imap.security: must be one of ssl, starttls, none, got 'tls'"]
