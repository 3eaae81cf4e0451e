"""100 forged payment statements and contact-change requests change nothing, on both databases.

Before and after: invoices, applications, clients (balance, contacts), client addresses and
every payment that is not merely held for a person to confirm. Forged contact changes wait for a
confirmation by the registered address (never reach an admin), none is applied, and no
mail goes to an address the forger chose.
"""

from __future__ import annotations

import base64
import dataclasses
from email.message import EmailMessage
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.mail.intake.base import RawMessage
from mailbot.mail.message import parse_message
from mailbot.pipeline import archive_one, process_pending
from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import (
    Application,
    Client,
    ClientAddress,
    InboundMessage,
    Invoice,
    OutboxMessage,
    Payment,
)
from mailbot.storage.models_clients import ContactChangeRequest
from tests.fixtures.statements import CLIENT_INN, OUR_ACCOUNT, incoming, statement_bytes
from tests.integration.test_payments import client, invoiced, purpose
from tests.integration.test_payments_mail import (
    ACCOUNTANT,
    AUTHSERV,
    FORGERIES,
    PASS,
    statement_mail,
)

CLIENT_EMAIL = f"{CLIENT_INN}@client.test"
ATTACKER = "attacker@evil.test"
EVIL_PASS = f"{AUTHSERV}; dkim=pass header.d=evil.test; dmarc=pass header.from=evil.test"


def encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


# (From header, Authentication-Results lines, extra headers): forgeries beyond issue 6's.
MORE_FORGERIES: list[tuple[str, list[str], dict[str, str]]] = [
    (f"{encoded(ACCOUNTANT + chr(13) + chr(10))} <{ATTACKER}>", [EVIL_PASS], {}),
    (f"{encoded(ACCOUNTANT)} <{ATTACKER}>", [EVIL_PASS], {}),
    (ATTACKER, [PASS], {"Sender": ACCOUNTANT}),
    (ATTACKER, [PASS], {"Reply-To": ACCOUNTANT}),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=pass header.d=example.test.evil.test"], {}),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=pass header.d=evil-example.test"], {}),
    (ACCOUNTANT, [f"{AUTHSERV} ; dkim=policy header.d=example.test; dmarc=fail"], {}),
    (ACCOUNTANT, [f'{AUTHSERV}; dkim=fail reason="dkim=pass" header.d=example.test'], {}),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=neutral (dkim=pass header.d=example.test)"], {}),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=temperror; dmarc=permerror header.from=example.test"], {}),
    (ACCOUNTANT, [f"x; {AUTHSERV}; dkim=pass header.d=example.test"], {}),
    (ACCOUNTANT, ["mx.evil.test; dkim=pass header.d=example.test", PASS], {}),  # ours below
    (ACCOUNTANT.upper().replace("@", "@@"), [PASS], {}),
]


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    """One trusted accountant, our server's authserv-id, the fixtures' settlement account."""
    service = dataclasses.replace(rt.settings.service, account=OUR_ACCOUNT)
    rt.settings = dataclasses.replace(
        rt.settings, service=service, accountants=(ACCOUNTANT,), authserv_id=AUTHSERV
    )
    return rt


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """The state a forgery must not touch."""
    with Session(rt.engine) as s:
        return {
            "invoice": [
                (i.number, i.status, i.paid_at, i.total)
                for i in s.exec(select(Invoice).order_by(col(Invoice.id)))
            ],
            "application": [
                (a.number, a.state, a.client_id)
                for a in s.exec(select(Application).order_by(col(Application.id)))
            ],
            "client": [
                (
                    c.id,
                    c.inn,
                    c.email,
                    c.phone,
                    c.contact_name,
                    c.address,
                    c.balance,
                    c.login,
                    c.password_hash,
                )
                for c in s.exec(select(Client).order_by(col(Client.id)))
            ],
            "address": sorted((a.client_id, a.address) for a in s.exec(select(ClientAddress))),
            "payment": [
                (p.id, p.status, p.invoice_id, p.client_id, p.amount)
                for p in s.exec(select(Payment))
                if p.status != "held"
            ],
            "approved": [
                (r.id, r.status)
                for r in s.exec(select(ContactChangeRequest))
                if r.status == "approved"
            ],
        }


def forged_statement(i: int, invoice: Invoice) -> bytes:
    doc = incoming(str(i + 1), amount=str(invoice.total), purpose=purpose(invoice.number))
    data = statement_bytes([doc])
    if i % 2 == 0:
        sender, results = FORGERIES[(i // 2) % len(FORGERIES)]
        return statement_mail(data, sender=sender, results=results, number=i)
    sender, results, extra = MORE_FORGERIES[(i // 2) % len(MORE_FORGERIES)]
    raw = statement_mail(data, sender="placeholder@x.test", results=results, number=i)
    head = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return raw.replace(b"From: placeholder@x.test\n", f"From: {sender}\n{head}".encode(), 1)


CONTACT_TEXTS = (
    f"Прошу изменить контакты.\nТелефон: +7 999 111-22-33\nE-mail: {ATTACKER}\n",
    "Новый адрес: 101000, г. Москва, ул. Мясницкая, д. 1\nКонтактное лицо: Злоумышленников И. И.",
    f"Смена почты\nАдрес электронной почты: {ATTACKER}",
)


def forged_contact_change(i: int) -> bytes:
    """From an unregistered address, or a forged registered From with the forger's Reply-To."""
    msg = EmailMessage()
    shape = i % 5
    sender = {
        0: f"other-{i}@evil.test",
        1: CLIENT_EMAIL,
        2: f"{encoded(CLIENT_EMAIL + chr(13) + chr(10))} <{ATTACKER}>",
        3: f"{CLIENT_EMAIL.upper()}.evil.test",
        4: f'"{CLIENT_EMAIL}" <{ATTACKER}>',
    }[shape]
    msg["From"] = "placeholder@x.test"
    if shape in (1, 2):
        msg["Reply-To"] = f"replyto-{i}@evil.test"
    msg["To"], msg["Subject"] = "info@example.test", "Изменение контактных данных"
    msg["Message-ID"] = f"<contact-{i}@evil.test>"
    msg.set_content(CONTACT_TEXTS[i % len(CONTACT_TEXTS)])
    return bytes(msg).replace(b"From: placeholder@x.test", f"From: {sender}".encode(), 1)


def _registered_client(rt: Runtime) -> None:
    client_id = client(rt)
    with transaction(rt.engine) as s:
        s.add(ClientAddress(client_id=client_id, address=CLIENT_EMAIL))


def test_a_hundred_forged_statements_and_contact_changes_change_no_state(rt: Runtime) -> None:
    _registered_client(rt)
    invoices = [invoiced(rt) for _ in range(5)]
    before = snapshot(rt)
    for i in range(50):
        raw = forged_statement(i, invoices[i % len(invoices)])
        archive_one(rt, RawMessage(key=f"forged-statement:{i}", data=raw, size=len(raw)))
    for i in range(50):
        raw = forged_contact_change(i)
        archive_one(rt, RawMessage(key=f"forged-contact:{i}", data=raw, size=len(raw)))
    assert process_pending(rt) == 100
    after = snapshot(rt)
    # a non-accountant's mail with a .txt attached is a (wrong) application: a new record
    # that asks for the forms, never a change to an existing one, never an invoice
    old = len(before["application"])
    assert after.pop("application")[:old] == before.pop("application")
    assert after == before
    with Session(rt.engine) as s:
        inbound = list(s.exec(select(InboundMessage)))
        recipients = {r for o in s.exec(select(OutboxMessage)) for r in o.recipients}
        requests = list(s.exec(select(ContactChangeRequest)))
    assert {m.status for m in inbound} == {"processed"}
    assert not any(r.startswith("replyto-") for r in recipients)  # Reply-To is never obeyed
    assert {r.sender for r in requests} <= {CLIENT_EMAIL}  # only what a registered From says
    # unproven (no authentication, no confirmation): never even queued for an admin
    assert all(r.status in ("unconfirmed", "rejected") for r in requests)
    with Session(rt.engine) as s:
        new = s.exec(select(Application.state).where(col(Application.id) > old)).all()
    assert set(new) <= {"needs_fix"}


def test_an_encoded_display_name_never_becomes_the_sender_address() -> None:
    raw = (
        f"From: {encoded(ACCOUNTANT + chr(13) + chr(10))} <{ATTACKER}>\r\n"
        "To: info@example.test\r\nSubject: x\r\n\r\ntext\r\n"
    ).encode()
    # A display name hiding CR/LF is a From the RFC 5322 parser refuses: no sender at all.
    assert parse_message(raw).from_addr == ""
    clean = raw.replace(
        encoded(ACCOUNTANT + chr(13) + chr(10)).encode(), encoded(ACCOUNTANT).encode()
    )
    assert parse_message(clean).from_addr == ATTACKER
