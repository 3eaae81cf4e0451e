"""`mailbot run --once --dry-run` on the embedded defaults (SQLite, local Maildir).

It must print what the pass would send, deliver nothing to the outbox Maildir, leave the
inbox as it was and commit nothing to the database; the real run after it then sends.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.helpers import mailbot, outbox_mails

pytestmark = pytest.mark.timeout(300)
APPLICANT = "demo@client.example.test"  # the sender of `mailbot demo`'s application


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file of a Maildir (new/, cur/, tmp/) with its bytes; {} when it does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def database_dump(workdir: Path) -> list[str]:
    """The whole SQLite database, schema and rows, as SQL statements."""
    with sqlite3.connect(workdir / "var" / "mailbot.db") as db:
        return list(db.iterdump())


def test_dry_run_prints_what_it_would_send_and_sends_and_commits_nothing(workdir: Path) -> None:
    mailbot(workdir, "db", "upgrade")
    mailbot(workdir, "demo")
    inbox, outbox = workdir / "var/mail/inbox", workdir / "var/mail/outbox"
    before = (files_under(inbox), files_under(outbox), database_dump(workdir))
    assert len(before[0]) == 1 and before[1] == {}

    lines = mailbot(workdir, "--log-level", "warning", "run", "--once", "--dry-run").stdout
    would, summary = lines.strip().splitlines()
    found = re.fullmatch(r"would send to (.+?): (.+) \((\d+) bytes\)", would)
    assert found is not None, lines
    recipients, subject = found[1].split(", "), found[2]
    assert recipients[0] == APPLICANT  # and the e-mail written in the form, for the invoice
    assert subject == "Re: Заявка на регистрацию штрихкодов [EAN-2026-000001]"
    assert summary == (
        "dry run: received 1, processed 1, issued 0, would send 1; nothing committed, nothing sent"
    )
    assert (files_under(inbox), files_under(outbox), database_dump(workdir)) == before

    mailbot(workdir, "run", "--once")
    (sent,) = outbox_mails(workdir)
    assert str(sent["Subject"]) == subject
    assert [a.addr_spec for a in sent["To"].addresses] == recipients
    assert len(sent.as_bytes()) > 0.9 * int(found[3])  # the same invoice mail, PDF and all
    assert database_dump(workdir) != before[2]
