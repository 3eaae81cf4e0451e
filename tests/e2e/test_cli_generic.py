"""The admin's generic command-line items: config names, lists as JSON, refusals, resets."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.helpers import mailbot


def test_check_names_each_misspelt_key_and_section_and_exits_1(workdir: Path) -> None:
    config = workdir / "config.toml"
    text = config.read_text("utf-8").replace("due_days = 5", "due_dayz = 5")
    config.write_text(text + "\n[invoice]\ndue_days = 5\n", "utf-8")
    proc = mailbot(workdir, "check", check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "FAIL config: [invoices] due_dayz: unknown key (did you mean due_days?)",
        "FAIL config: [invoice]: unknown section (did you mean [invoices]?)",
    ]
    status = mailbot(workdir, "status", check=False)  # every other command refuses to start
    assert status.returncode == 2
    assert "[invoice]: unknown section (did you mean [invoices]?)" in status.stderr
    assert "Traceback" not in status.stderr
