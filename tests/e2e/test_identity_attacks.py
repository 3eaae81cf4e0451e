"""Issue 16's identity attacks through the real `mailbot run --once`, Dovecot IMAP and SMTP.

Each mail arrives as our MTA would hand it over: with OUR authserv-id's
Authentication-Results (and a Received) prepended above everything the sender wrote, saying
what the MTA really found (the attacker's own domain signs; the forged From fails DMARC).
A sender may write Authentication-Results of its own below that, and does.

Runs on SQLite and PostgreSQL (`db_url`). Each attack ends with no state change and no mail
to the attacker; the legitimate way (authenticated statement, unsubscribe with the token, a
real DSN) still works.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlmodel import col, select

from mailbot.config import load_settings
from mailbot.runtime import build_runtime
from mailbot.storage.db import make_engine
from mailbot.storage.models import (
    Client,
    Invoice,
    OutboxMessage,
    OutboxStatus,
    Payment,
    SupportTicket,
)
from mailbot.storage.models_clients import ContactChangeRequest
from tests.e2e.clients_site import (
    INFO,
    Site,
    _config,
    add_client,
    address,
    clients_stack,  # noqa: F401 - fixture
    letter,
)
from tests.e2e.helpers import mailbot
from tests.fixtures.statements import OUR_ACCOUNT, incoming, statement_bytes
from tests.integration.test_payments import invoiced, purpose
from tests.mailstack import MailStack

pytestmark = [pytest.mark.mail, pytest.mark.timeout(300)]
OURS = "mx.example.test"
BANK_DOMAIN = "example.test"  # clients' and the bank's mail all land in the stack's catch-all


@pytest.fixture
def site(
    tmp_path: Path,
    clients_stack: MailStack,  # noqa: F811
    db_url: str,
) -> Iterator[Site]:
    """A site on `db_url` whose config names our authserv-id and one statement sender."""
    d = tmp_path / "site"
    d.mkdir()
    box = f"t{uuid.uuid4().hex[:10]}"
    with clients_stack.imap(INFO) as c:
        c.create_folder(box)
    bank = address("buh")
    config = _config(clients_stack, box)
    config = config.replace('authserv_id = ""', f'authserv_id = "{OURS}"', 1)
    config = config.replace("statement_senders = []", f'statement_senders = ["{bank}"]', 1)
    config = re.sub(r'^account = "\d+"', f'account = "{OUR_ACCOUNT}"', config, count=1, flags=re.M)
    assert f'authserv_id = "{OURS}"' in config and bank in config
    (d / "config.toml").write_text(config, "utf-8")
    env = {
        "MAILBOT_IMAP_PASSWORD": clients_stack.password,
        "MAILBOT_SMTP_PASSWORD": clients_stack.password,
        "MAILBOT_DATABASE_URL": db_url,
    }
    (d / "var").mkdir()
    mailbot(d, "db", "upgrade", env=env)
    engine = make_engine(db_url)
    st = Site(d, env, clients_stack, box, engine)
    st.bank = bank  # type: ignore[attr-defined]
    yield st
    engine.dispose()
    shutil.rmtree(d / "var" / "archive", ignore_errors=True)


def arrive(st: Site, raw: bytes, verdict: str) -> None:
    """The mail reaches our mailbox through our MTA, which prepends its verdict."""
    top = (
        f"Authentication-Results: {OURS}; {verdict}\r\n"
        f"Received: from sender.example by {OURS} with ESMTPS; "
        f"{format_datetime(datetime.now(UTC))}\r\n"
    )
    st.receive(top.encode() + raw)


def forged(raw: bytes, from_header: str) -> bytes:
    """`raw` with its From field replaced by `from_header` (one or more lines)."""
    head, _, rest = raw.partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.lower().startswith(b"from:")]
    return b"\n".join([from_header.encode(), *lines]) + b"\n\n" + rest


def attacker() -> str:
    return f"attacker-{uuid.uuid4().hex[:8]}@evil.test"


EVIL = "spf=pass smtp.mailfrom=evil.test; dkim=pass header.d=evil.test"
# What a sender writes below our field, hoping to be read.
SENDER_WRITTEN = (
    f"Authentication-Results: {OURS}; dkim=pass header.d={BANK_DOMAIN}; "
    f"dmarc=pass header.from={BANK_DOMAIN}\n"
)


def snapshot(st: Site) -> dict[str, Any]:
    with st.session() as s:
        return {
            "clients": [
                (c.id, c.email, c.phone, c.balance, c.unsubscribed)
                for c in s.exec(select(Client).order_by(col(Client.id)))
            ],
            "requests": len(s.exec(select(ContactChangeRequest)).all()),
            "tickets": len(s.exec(select(SupportTicket)).all()),
            "invoices": [(i.number, i.status) for i in s.exec(select(Invoice))],
            "payments": [(p.id, p.status) for p in s.exec(select(Payment)) if p.status != "held"],
            "outbox": sorted((o.id, o.status) for o in s.exec(select(OutboxMessage))),
        }


# ---------------------------------------------------------------- attack 2: forged From


def test_a_from_that_is_not_one_clean_mailbox_acts_for_no_client_and_is_not_answered(
    site: Site,
) -> None:
    boss, evil = address("boss"), attacker()
    add_client(site, boss, balance="50000.00")
    text = f"Прошу изменить контакты.\nТелефон: +7 999 111-22-33\nE-mail: {evil}\n"
    raw = letter(boss, "Смена контактов", text)[0]
    verdict = f"{EVIL}; dmarc=fail header.from=evil.test"
    froms = [
        f"From: {evil} (x <{boss}>",  # issue 16's: the last <…> is not the address
        f"From: {boss}\nFrom: {evil}",  # several From fields
        f"From: staff: {boss};",  # a group
        f"From: {boss} <{evil}>",  # bare address as a display name
        f"From: {boss}, {evil}",  # several mailboxes
    ]
    before = snapshot(site)
    for from_header in froms:
        arrive(site, SENDER_WRITTEN.encode() + forged(raw, from_header), verdict)
    site.run("run", "--once")
    assert snapshot(site) == before
    assert site.mails_to(evil) == [] and site.mails_to(boss) == []
    with site.session() as s:
        kinds = {m for m in s.exec(select(col(OutboxMessage.kind)))}
    assert kinds == set()
    assert "automatic" in site.run("messages", "list")

    # The client's own mail (our MTA: DMARC pass for its domain) is still a contact change.
    honest = letter(
        boss, "Смена контактов", "Прошу изменить контакты.\nТелефон: +7 999 111-22-33\n"
    )[0]
    arrive(site, honest, f"dkim=pass header.d={BANK_DOMAIN}; dmarc=pass header.from={BANK_DOMAIN}")
    site.run("run", "--once")
    with site.session() as s:
        [request] = s.exec(select(ContactChangeRequest)).all()
    assert request.sender == boss and request.status == "pending"
    assert site.mails_to(evil) == []


# ---------------------------------------------------------------- attack 3: statements


def _statement(st: Site, sender: str, amount: str, number: str, n: int) -> bytes:
    today = datetime.now(UTC).strftime("%d.%m.%Y")
    data = statement_bytes([incoming(str(n), amount=amount, purpose=purpose(number), on=today)])
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, INFO, f"Выписка {n}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="bank.example.test")
    msg.set_content("Выписка во вложении.")
    msg.add_attachment(data, maintype="text", subtype="plain", filename="kl_to_1c.txt")
    return bytes(msg)


def test_a_forged_statement_pays_nothing_and_only_the_bank_address_is_told(site: Site) -> None:
    bank, evil = site.bank, attacker()  # type: ignore[attr-defined]
    rt = build_runtime(load_settings(site.dir / "config.toml", env=site.env), engine=site.engine)
    invoice = invoiced(rt)
    amount = str(invoice.total)
    forgeries = [
        # the attacker's own mail claiming the bank's address; our MTA: DMARC fails
        (f"From: {bank}", f"{EVIL}; dmarc=fail header.from={BANK_DOMAIN}"),
        # issue 16's quoted «;» smuggling a dkim=pass into a property value
        (
            f"From: {bank}",
            f'spf=pass smtp.mailfrom="x;dkim=pass header.d={BANK_DOMAIN}"@evil.test; dkim=none',
        ),
        # a comment holding dkim=pass
        (f"From: {bank}", f"dkim=neutral (dkim=pass header.d={BANK_DOMAIN}); dmarc=none"),
        # signed by a child domain: aligned for a client, not for a statement
        (f"From: {bank}", f"dkim=pass header.d=mail.{BANK_DOMAIN}; dmarc=none"),
        # two From fields, the bank's first
        (f"From: {bank}\nFrom: {evil}", "dkim=pass header.d=evil.test; dmarc=fail"),
    ]
    for n, (from_header, verdict) in enumerate(forgeries, start=1):
        raw = _statement(site, bank, amount, invoice.number, n)
        arrive(site, SENDER_WRITTEN.encode() + forged(raw, from_header), verdict)
    site.run("run", "--once")
    with site.session() as s:
        assert s.exec(select(Invoice.status)).one() == "issued"
        assert {p.status for p in s.exec(select(Payment))} <= {"held"}
        told = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "statement_report")).all()
    assert site.mails_to(evil) == []
    assert told and all(r.recipients == [bank] for r in told)
    assert all("не подтверждено" in str(m["Subject"]) for m in site.mails_to(bank))

    # The bank's real mail: our MTA found the bank's own DKIM signature and DMARC pass.
    raw = _statement(site, bank, amount, invoice.number, 99)
    arrive(site, raw, f"dkim=pass header.d={BANK_DOMAIN}; dmarc=pass header.from={BANK_DOMAIN}")
    site.run("run", "--once")
    with site.session() as s:
        assert s.exec(select(Invoice.status)).one() == "paid"
        assert [p.status for p in s.exec(select(Payment)) if p.status != "held"] == ["applied"]
    assert "Выписка загружена" in str(site.mails_to(bank)[-1]["Subject"])
    assert site.mails_to(evil) == []


# ---------------------------------------------------------------- attack 5: Message-IDs


def _old_id(key: str) -> str:
    """The Message-ID we used to give a row: computable by anyone from its dedupe key."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.mailbot@example.test>"


def _dsn(rcpt: str, message_id: str, *, sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {INFO}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.test')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\n\r\n--b--\r\n"
    ).encode()


def test_guessed_message_ids_unsubscribe_nobody_and_bounce_nothing(site: Site) -> None:
    client, evil = address("client"), attacker()
    client_id = add_client(site, client)
    body = site.dir / "news.txt"
    body.write_text("С 1 декабря новые тарифы.\n", "utf-8")
    site.run("news", "send", "--subject", "Новости", "--body-file", str(body))
    [news] = site.mails_to(client)
    real_id = str(news["Message-ID"])
    with site.session() as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "news")).one()
    assert row.message_id == real_id and row.random_id and row.status == OutboxStatus.sent
    guessed = _old_id(row.dedupe_key)
    assert guessed != real_id and len(real_id.split(".")[0]) - 1 >= 24  # ≥ 96 bits of hex

    # A deferred credentials-like mail that has not gone out yet.
    rt = build_runtime(load_settings(site.dir / "config.toml", env=site.env), engine=site.engine)
    from mailbot.mail.outbox import Outgoing, enqueue
    from mailbot.mail.render import Mail
    from mailbot.storage.db import transaction

    later = datetime.now(UTC) + timedelta(hours=1)
    with transaction(site.engine) as s:
        waiting = enqueue(
            s,
            Mail(to=(client,), subject="Доступ", text="Логин и пароль."),
            Outgoing(dedupe_key="test:waiting", kind="credentials"),
            sender=rt.sender,
            now=datetime.now(UTC),
        )
        waiting.next_attempt_at = later
        s.add(waiting)
        waiting_id = waiting.message_id

    forged_verdict = f"{EVIL}; dmarc=fail header.from={BANK_DOMAIN}"
    unsubscribe = letter(client, "Отписаться", "Отписаться")[0]
    for ref in (guessed, f"<{uuid.uuid4().hex}.mailbot@example.test>"):
        mail = forged(unsubscribe, f"From: {client}\nReferences: {ref}\nIn-Reply-To: {ref}")
        arrive(site, mail, forged_verdict)
    for named, rcpt in ((guessed, client), (waiting_id, client), (real_id, evil)):
        arrive(site, _dsn(rcpt, named, sender=f"mailer-daemon@{evil.split('@')[1]}"), EVIL)
    before = snapshot(site)
    site.run("run", "--once")
    after = snapshot(site)
    assert after["clients"] == before["clients"]  # still subscribed
    with site.session() as s:
        statuses = {o.dedupe_key: o.status for o in s.exec(select(OutboxMessage))}
    assert statuses[row.dedupe_key] == OutboxStatus.sent
    assert statuses["test:waiting"] == OutboxStatus.pending
    assert site.mails_to(evil) == []
    # The forged unsubscribe from the client's address asks the client (not the sender).
    confirm = [m for m in site.mails_to(client) if "Отписка" in str(m["Subject"])]
    assert all(str(m["To"]) == client for m in confirm)

    # The legitimate ways: the token from the List-Unsubscribe mailto, and a real DSN.
    mailto = unquote(str(news["List-Unsubscribe"]))
    token = re.search(r"unsubscribe ([0-9a-f]{20})", mailto)
    assert token is not None
    arrive(site, letter(client, f"unsubscribe {token.group(1)}", "")[0], forged_verdict)
    arrive(site, _dsn(client, real_id, sender="MAILER-DAEMON@mx.example.test"), "none")
    site.run("run", "--once")
    with site.session() as s:
        assert s.get(Client, client_id).unsubscribed  # type: ignore[union-attr]
        assert s.get(OutboxMessage, row.id).status == OutboxStatus.bounced  # type: ignore[union-attr]
        assert (
            s.exec(
                select(OutboxMessage.status).where(OutboxMessage.dedupe_key == "test:waiting")
            ).one()
            == OutboxStatus.pending
        )
    assert site.mails_to(evil) == []
