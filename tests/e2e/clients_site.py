"""A mailbot site wired to the real loopback Dovecot + SMTP relay, for the clients tests.

One stack per test module (`clients_stack`): Dovecot users info@ (our mailbox) and inbox@,
the relay's catch-all, which receives every other address with `X-Original-To`. Each test
gets its own intake folder and SQLite database, and unique client addresses.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailbot.storage.db import make_engine
from mailbot.storage.models import Client, ClientAddress
from tests.conftest import REPO
from tests.e2e.helpers import mailbot
from tests.mailstack import MailStack, _start_or_fail

INFO = "info@example.test"
CATCHALL = "inbox@example.test"
_REPLACED = ("intake", "imap", "outbox", "smtp")


@pytest.fixture(scope="module")
def clients_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    stack = _start_or_fail(
        tmp_path_factory.mktemp("cstack"), users=(INFO, CATCHALL), catchall=CATCHALL
    )
    yield stack
    stack.stop()


@dataclass
class Site:
    """One mailbot installation: its folder, environment, database and intake folder."""

    dir: Path
    env: dict[str, str]
    stack: MailStack
    box: str
    engine: Engine

    def run(self, *args: str, check: bool = True) -> str:
        proc = mailbot(self.dir, *args, env=self.env, check=check)
        return proc.stdout + proc.stderr

    def receive(self, raw: bytes) -> None:
        """The mail arrives in our mailbox (the folder this site reads)."""
        self.stack.append(INFO, raw, self.box)

    def mails_to(self, address: str) -> list[EmailMessage]:
        """Every mail delivered to `address` so far, oldest first."""
        parser = BytesParser(policy=policy.default)
        found = []
        for raw in self.stack.messages(CATCHALL):
            msg = parser.parsebytes(raw)
            assert isinstance(msg, EmailMessage)
            original = str(msg.get("X-Original-To", ""))
            if address in [a.strip() for a in original.split(",")]:
                found.append(msg)
        return found

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


def _config(stack: MailStack, box: str) -> str:
    """The shipped config.toml with IMAP intake and SMTP outbox pointing at the stack."""
    ours = {
        "intake": 'kind = "imap"',
        "imap": (
            f'host = "{stack.host}"\nport = {stack.imap_port}\nsecurity = "none"\n'
            f'user = "{INFO}"\nmailbox = "{box}"\nprocessed_folder = "{box}-done"\n'
            f'quarantine_folder = "{box}-quarantine"\npoll_seconds = 1\nca_file = ""'
        ),
        "outbox": 'kind = "smtp"',
        "smtp": (
            f'host = "{stack.host}"\nport = {stack.smtp_port}\nsecurity = "none"\n'
            f'user = "{INFO}"\nfrom_address = "{INFO}"\nca_file = ""'
        ),
    }
    lines, skipping = [], False
    for line in (REPO / "config.toml").read_text("utf-8").splitlines():
        header = re.match(r"^\[([a-z_.]+)\]\s*$", line)
        if header:
            skipping = header.group(1) in _REPLACED
            if skipping:
                lines += [line, ours[header.group(1)], ""]
                continue
        if not skipping:
            lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def site(tmp_path: Path, clients_stack: MailStack) -> Iterator[Site]:
    d = tmp_path / "site"
    d.mkdir()
    box = f"t{uuid.uuid4().hex[:10]}"
    with clients_stack.imap(INFO) as c:
        c.create_folder(box)
    (d / "config.toml").write_text(_config(clients_stack, box), "utf-8")
    env = {
        "MAILBOT_IMAP_PASSWORD": clients_stack.password,
        "MAILBOT_SMTP_PASSWORD": clients_stack.password,
        "MAILBOT_DATABASE_URL": f"sqlite:///{d / 'var' / 'mailbot.db'}",
    }
    env.pop("MAILBOT_CONFIG", None)
    (d / "var").mkdir()
    mailbot(d, "db", "upgrade", env=env)
    engine = make_engine(env["MAILBOT_DATABASE_URL"])
    yield Site(d, env, clients_stack, box, engine)
    engine.dispose()
    shutil.rmtree(d / "var" / "archive", ignore_errors=True)


def address(tag: str) -> str:
    """A unique address of this test (delivered to the catch-all)."""
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.test"


def letter(
    sender: str,
    subject: str,
    text: str,
    *,
    in_reply_to: str = "",
    files: dict[str, bytes] | None = None,
) -> tuple[bytes, str]:
    """A client's mail to us; returns (raw bytes, its Message-ID)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, INFO, subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    mid = make_msgid(domain="client.example.test")
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"], msg["References"] = in_reply_to, in_reply_to
    msg.set_content(text)
    for name, data in (files or {}).items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg), mid


def add_client(
    site: Site,
    email: str,
    *,
    inn: str = "7707083893",
    kpp: str = "773601001",
    balance: str = "0.00",
    unsubscribed: bool = False,
) -> int:
    """Register a client directly in the database (as issuance would have); returns its id."""
    with site.session() as s:
        client = Client(
            inn=inn,
            kpp=kpp,
            org_name="ООО «Ромашка»",
            email=email,
            phone="+74951234567",
            contact_name="Петров С. И.",
            login=f"{inn}-{kpp}",
            password_hash="not-a-real-hash",
            balance=Decimal(balance),
            unsubscribed=unsubscribed,
            created_at=datetime.now(UTC),
        )
        s.add(client)
        s.flush()
        assert client.id is not None
        s.add(ClientAddress(client_id=client.id, address=email))
        s.commit()
        return client.id


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


CODE = re.compile(r"MB-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")


def confirmation_requests(site: Site, address: str) -> list[EmailMessage]:
    """The mails asking `address` to confirm an action with a one-time code."""
    return [m for m in site.mails_to(address) if CODE.search(text_of(m))]


def confirm_reply(site: Site, request: EmailMessage, sender: str) -> None:
    """Reply to a confirmation request as a mail client does: same subject, quoted text."""
    quoted = "\n".join("> " + line for line in text_of(request).splitlines())
    raw, _ = letter(
        sender,
        f"Re: {request['Subject']}",
        f"Подтверждаю.\n\n{quoted}",
        in_reply_to=str(request["Message-ID"]),
    )
    site.receive(raw)
