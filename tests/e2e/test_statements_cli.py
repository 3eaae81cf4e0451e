"""`mailbot payments …` as the accountant runs it: import a 1C file, decide what was held."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot.config import load_settings
from mailbot.runtime import Runtime, build_runtime
from mailbot.storage.migrate import upgrade
from mailbot.storage.models import Application
from tests.e2e.helpers import mailbot
from tests.fixtures.statements import OTHER_CLIENT_INN, incoming, statement_bytes
from tests.integration.test_payments import invoiced

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def site(workdir: Path) -> tuple[Runtime, dict[str, str]]:
    """A migrated SQLite site (PostgreSQL is covered in-process by the integration tests)."""
    env = {"MAILBOT_DATABASE_URL": f"sqlite:///{workdir / 'mailbot.db'}"}
    rt = build_runtime(load_settings(workdir / "config.toml", env=env))
    upgrade(rt.engine)
    return rt, env


def _app_state(rt: Runtime) -> str:
    with Session(rt.engine) as s:
        return s.exec(select(Application.state)).one()


def test_accountant_imports_a_dos_encoded_statement_twice_and_decides_the_held_payment(
    workdir: Path, site: tuple[Runtime, dict[str, str]]
) -> None:
    rt, env = site
    account = rt.settings.service.account
    invoice = invoiced(rt)
    file = workdir / "kl_to_1c.txt"
    file.write_bytes(
        statement_bytes(
            [
                incoming(
                    "15",
                    amount=f"{invoice.total}".replace(".00", ""),  # `Сумма=700` style
                    payer_inn=invoice.buyer["inn"],
                    purpose=f"Оплата по счёту № {invoice.number} от 25.11.2026. Без НДС",
                    our_account=account,
                ),
                incoming("16", amount="99.90", payer_inn=OTHER_CLIENT_INN, our_account=account),
            ],
            encoding="cp866",
            our_account=account,
        )
    )

    imported = mailbot(workdir, "payments", "import", str(file), env=env, check=False)
    assert imported.returncode == 3  # something is held: a script must notice
    first = imported.stdout
    assert "applied 1, held 1, unreadable 0, credited 0, skipped 0, duplicates 0" in first
    assert "mailbot payments pending" in first
    assert f"applied invoice {invoice.number}" in first
    assert _app_state(rt) == "paid"

    again = mailbot(workdir, "payments", "import", str(file), env=env).stdout
    assert "applied 0, held 0, unreadable 0, credited 0, skipped 0, duplicates 2" in again

    pending = mailbot(workdir, "payments", "pending", env=env).stdout
    assert "unknown invoice 2026-00123" in pending and "99.90" in pending
    [held_id] = re.findall(r"^\W*(\d+)\W+2026-11-26", pending, re.M)
    refused = mailbot(workdir, "payments", "apply", held_id, env=env, check=False)
    assert refused.returncode == 1 and "--invoice" in refused.stderr
    mailbot(workdir, "payments", "reject", held_id, "--reason", "not our client", env=env)
    assert "no payments are held" in mailbot(workdir, "payments", "pending", env=env).stdout
