"""The whole path on the embedded defaults, driving the real `mailbot` command.

demo → run --once (invoice) → invoices pay → run --once (codes), on SQLite and PostgreSQL;
a SIGKILL at every step boundary followed by a restart must end in the same state.
"""

from __future__ import annotations

import io
import re
import signal
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, col, select
from stdnum import ean

from mailbot.cli.demo import deliver_to_maildir, sample_message
from mailbot.crashpoints import STEPS
from mailbot.forms import invalid_sample_application_docx, invalid_sample_products_xlsx
from mailbot.storage.db import make_engine
from mailbot.storage.models import Application, Barcode, Invoice, OutboxMessage
from tests.conftest import REPO, DatabaseFactory
from tests.e2e.helpers import attachments, body, mailbot, outbox_mails

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def site(workdir: Path, db_url: str) -> tuple[Path, dict[str, str]]:
    env = {"MAILBOT_DATABASE_URL": db_url}
    mailbot(workdir, "db", "upgrade", env=env)
    return workdir, env


def _walk(workdir: Path, env: dict[str, str]) -> None:
    """demo → run → pay → run, each a separate process."""
    mailbot(workdir, "demo", env=env)
    mailbot(workdir, "run", "--once", env=env)
    number = _only_invoice_number(workdir, env)
    mailbot(workdir, "invoices", "pay", number, env=env)
    mailbot(workdir, "run", "--once", env=env)


def _only_invoice_number(workdir: Path, env: dict[str, str]) -> str:
    listing = mailbot(workdir, "invoices", "list", env=env).stdout
    numbers = re.findall(r"\b\d{4}-\d{5}\b", listing)
    assert len(numbers) == 1, listing
    return str(numbers[0])


def _end_state(db_url: str) -> dict[str, object]:
    """What must not depend on crashes: states, invoices, codes, mails (by kind and recipient)."""
    engine = make_engine(db_url)
    with Session(engine) as s:
        state = {
            "applications": [(a.number, a.state) for a in s.exec(select(Application))],
            "invoices": [(i.number, str(i.total), i.status) for i in s.exec(select(Invoice))],
            "codes": sorted(b.ean for b in s.exec(select(Barcode))),
            "outbox": sorted(
                (o.kind, tuple(o.recipients), o.status)
                for o in s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
            ),
        }
    engine.dispose()
    return state


def test_valid_application_gets_an_invoice_and_after_payment_its_codes(
    site: tuple[Path, dict[str, str]], db_url: str
) -> None:
    workdir, env = site
    mailbot(workdir, "demo", env=env)
    out = mailbot(workdir, "run", "--once", env=env).stdout
    assert "received 1, processed 1" in out
    [invoice_mail] = outbox_mails(workdir)
    files = attachments(invoice_mail)
    [pdf_name] = files
    assert pdf_name.endswith(".pdf") and files[pdf_name].startswith(b"%PDF")
    assert re.search(r"\[EAN-\d{4}-\d{6}\]", str(invoice_mail["Subject"]))
    assert invoice_mail["Auto-Submitted"] == "auto-replied"
    assert invoice_mail["In-Reply-To"]

    number = _only_invoice_number(workdir, env)
    assert "paid" in mailbot(workdir, "invoices", "pay", number, env=env).stdout
    assert "already paid" in mailbot(workdir, "invoices", "pay", number, env=env).stdout
    mailbot(workdir, "run", "--once", env=env)

    mails = outbox_mails(workdir)
    assert len(mails) == 2
    issued = mails[1]
    files = attachments(issued)
    registry = next(v for k, v in files.items() if k.endswith(".xlsx"))
    images = next(v for k, v in files.items() if k.endswith(".zip"))
    assert any(k.endswith(".pdf") for k in files)
    sheet = load_workbook(io.BytesIO(registry)).active
    assert sheet is not None
    codes = [
        str(c)
        for row in sheet.iter_rows(values_only=True)
        for c in row
        if isinstance(c, str) and len(c) == 13 and c.isdigit()
    ]
    assert len(codes) == 5
    assert all(ean.is_valid(c) for c in codes)
    names = zipfile.ZipFile(io.BytesIO(images)).namelist()
    assert all(
        any(c in n and n.endswith(ext) for n in names) for c in codes for ext in (".png", ".svg")
    )
    text = body(issued)
    assert "Логин:" in text and "Пароль:" in text
    password = text.split("Пароль:")[1].split()[0]
    assert len(password) == 12 and "•" not in password
    engine = make_engine(db_url)
    with Session(engine) as s:
        stored = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "issued")).one()
        assert password.encode() not in stored.body  # masked in the stored copy
        assert stored.secret is None  # the sealed secret is wiped once sent
    engine.dispose()
    assert mailbot(workdir, "run", "--once", env=env).stdout.startswith("received 0")
    assert len(outbox_mails(workdir)) == 2


def test_invalid_application_gets_one_reply_listing_every_problem_and_no_pdf(
    site: tuple[Path, dict[str, str]],
) -> None:
    workdir, env = site
    raw = sample_message(to="info@example.test")
    msg = _replace_files(raw, invalid_sample_application_docx(), invalid_sample_products_xlsx())
    deliver_to_maildir(workdir / "var/mail/inbox", msg)
    mailbot(workdir, "run", "--once", env=env)
    [reply] = outbox_mails(workdir)
    assert not attachments(reply) or not any(k.endswith(".pdf") for k in attachments(reply))
    text = body(reply)
    assert "ИНН" in text
    assert "Продукты питанья" in text and "Возможно, вы имели в виду" in text
    assert "-0000" not in mailbot(workdir, "invoices", "list", env=env).stdout  # no invoice


def _replace_files(raw: bytes, docx: bytes, xlsx: bytes) -> bytes:
    from email import policy
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    for part in msg.iter_attachments():
        name = str(part.get_filename())
        data = docx if name.endswith(".docx") else xlsx
        part.set_content(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg)


def test_malformed_attachment_gets_a_reply_naming_it_and_the_next_mail_is_still_served(
    site: tuple[Path, dict[str, str]],
) -> None:
    workdir, env = site
    broken = _replace_files(
        sample_message(to="info@example.test", sender="a@b.example.test"),
        b"PK\x03\x04 this is not a real docx",
        b"\x00\x01garbage",
    )
    deliver_to_maildir(workdir / "var/mail/inbox", broken)
    deliver_to_maildir(workdir / "var/mail/inbox", sample_message(to="info@example.test"))
    mailbot(workdir, "run", "--once", env=env)
    mails = outbox_mails(workdir)
    assert len(mails) == 2
    by_to = {str(m["To"]): m for m in mails}
    problem = body(by_to["a@b.example.test"])
    assert "Заявление о регистрации.docx" in problem and "Перечень продукции.xlsx" in problem
    assert any(
        k.endswith(".pdf")
        for k in attachments(by_to[next(t for t in by_to if t != "a@b.example.test")])
    )


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_then_restart_ends_as_if_nothing_happened(
    site: tuple[Path, dict[str, str]],
    db_url: str,
    step: str,
    tmp_path: Path,
    db_factory: DatabaseFactory,
) -> None:
    workdir, env = site
    crash = {**env, "MAILBOT_CRASH_AT": step}
    mailbot(workdir, "demo", env=env)
    killed = 0
    first = mailbot(workdir, "run", "--once", env=crash, check=False)
    killed += first.returncode == -signal.SIGKILL
    mailbot(workdir, "run", "--once", env=env)
    number = _only_invoice_number(workdir, env)
    paid = mailbot(workdir, "invoices", "pay", number, env=crash, check=False)
    killed += paid.returncode == -signal.SIGKILL
    mailbot(workdir, "invoices", "pay", number, env=env)
    second = mailbot(workdir, "run", "--once", env=crash, check=False)
    killed += second.returncode == -signal.SIGKILL
    mailbot(workdir, "run", "--once", env=env)
    assert killed >= 1, f"no process was killed at {step}"

    crashed_state = _end_state(db_url)
    assert [len(attachments(m)) for m in outbox_mails(workdir)] == [1, 3]

    assert crashed_state == _reference_state(db_factory, tmp_path)
    assert crashed_state["codes"] and crashed_state["invoices"]


_REFERENCE: dict[str, dict[str, object]] = {}


def _reference_state(db_factory: DatabaseFactory, tmp_path: Path) -> dict[str, object]:
    """The end state of the same walk without a crash (fresh site and database, same kind)."""
    if db_factory.kind not in _REFERENCE:
        reference_dir = tmp_path / "reference"
        reference_dir.mkdir()
        (reference_dir / "config.toml").write_text((REPO / "config.toml").read_text())
        env = {"MAILBOT_DATABASE_URL": db_factory()}
        _walk(reference_dir, env)
        _REFERENCE[db_factory.kind] = _end_state(env["MAILBOT_DATABASE_URL"])
    return _REFERENCE[db_factory.kind]
