"""Consent rules in process (the clock can move): one-time codes, the authenticated way, caps.

The end-to-end attacks through Dovecot and SMTP are in tests/e2e/test_consent.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from sqlmodel import Session, col, select

from mailbot import forms
from mailbot.handlers.consent import CODE_RE, code_hash, new_code
from mailbot.mail.caps import hold_reason
from mailbot.mail.intake.base import RawMessage
from mailbot.mail.outbox import Outgoing
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
    OutboxRecipient,
    SupportTicket,
)
from mailbot.storage.models_clients import ContactChangeRequest, TicketMessage
from mailbot.storage.models_consent import Confirmation
from tests.conftest import FakeClock

AUTHSERV = "mx.example.test"
BOSS = "boss@client.test"
PASS = f"{AUTHSERV}; dkim=pass header.d=client.test header.s=mail; dmarc=pass"


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    rt.settings = dataclasses.replace(rt.settings, authserv_id=AUTHSERV)
    return rt


def _client(rt: Runtime, balance: str = "5000.00") -> int:
    with transaction(rt.engine) as s:
        row = Client(
            inn="7707083893",
            kpp="773601001",
            org_name="ООО «Ромашка»",
            email=BOSS,
            login="7707083893-773601001",
            balance=Decimal(balance),
            created_at=rt.clock(),
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        s.add(ClientAddress(client_id=row.id, address=BOSS))
        return row.id


def _mail(
    subject: str, text: str, *, results: str = "", files: bool = False, **headers: str
) -> bytes:
    msg = EmailMessage()
    if results:  # our MTA's field comes first, above everything the sender wrote
        msg["Authentication-Results"] = results
    msg["From"], msg["To"], msg["Subject"] = BOSS, "info@example.test", subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@client.test>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    if files:
        msg.add_attachment(
            forms.sample_products_xlsx(),
            maintype="application",
            subtype="octet-stream",
            filename="Перечень.xlsx",
        )
    return bytes(msg)


def _deliver(rt: Runtime, raw: bytes) -> None:
    archive_one(rt, RawMessage(key=uuid.uuid4().hex, data=raw, size=len(raw)))
    process_pending(rt)


def _balance(rt: Runtime, client_id: int) -> Decimal:
    with Session(rt.engine) as s:
        client = s.get(Client, client_id)
        assert client is not None
        return client.balance


def _code_mailed(rt: Runtime) -> str:
    """The code in the newest confirmation request, as the client's mail program shows it."""
    with Session(rt.engine) as s:
        row = s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "confirm_request")
            .order_by(col(OutboxMessage.id).desc())
        ).first()
    assert row is not None
    mail = BytesParser(policy=policy.default).parsebytes(row.body)
    part = mail.get_body(("plain",))
    assert part is not None and CODE_RE.search(str(mail["Subject"])) is None
    found = CODE_RE.search(str(part.get_content()))
    assert found is not None
    return found.group(0)


def test_codes_carry_80_random_bits_and_only_their_hash_is_stored(rt: Runtime) -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(CODE_RE.fullmatch(c) and len(c.replace("-", "")) == 18 for c in codes)  # MB + 16
    client_id = _client(rt)
    _deliver(rt, _mail("Заказ", "Ещё товары.", files=True))
    code = _code_mailed(rt)
    with Session(rt.engine) as s:
        [row] = s.exec(select(Confirmation)).all()
        dump = repr(row.model_dump())
    assert row.code_hash == code_hash(code) and code not in dump
    assert row.address == BOSS and row.status == "waiting"
    assert _balance(rt, client_id) == Decimal("5000.00")


def test_an_authenticated_order_is_paid_from_the_balance_at_once(rt: Runtime) -> None:
    client_id = _client(rt)
    _deliver(rt, _mail("Заказ", "Ещё товары.", results=PASS, files=True))
    with Session(rt.engine) as s:
        invoice = s.exec(select(Invoice)).one()
        assert s.exec(select(Confirmation)).all() == []
        app = s.exec(select(Application)).one()
    assert invoice.status == "paid" and invoice.from_balance == invoice.total
    assert app.state == "paid"
    assert _balance(rt, client_id) == Decimal("5000.00") - invoice.total


def test_an_expired_code_and_an_auto_reply_carrying_the_code_confirm_nothing(
    rt: Runtime, clock: FakeClock
) -> None:
    client_id = _client(rt)
    _deliver(rt, _mail("Заказ", "Ещё товары.", files=True))
    code = _code_mailed(rt)
    _deliver(rt, _mail(f"Automatic reply: код {code}", code, Auto_Submitted="auto-replied"))
    assert _balance(rt, client_id) == Decimal("5000.00")
    clock.advance(days=3, minutes=1)
    _deliver(rt, _mail(f"Re: код {code}", "Подтверждаю."))
    assert _balance(rt, client_id) == Decimal("5000.00")
    with Session(rt.engine) as s:
        assert s.exec(select(Confirmation.status)).all() == ["waiting"]
        kinds = s.exec(select(InboundMessage.kind).order_by(col(InboundMessage.id))).all()
    assert "confirmation" not in kinds


def test_a_code_confirms_once_and_the_balance_pays_what_it_can(rt: Runtime) -> None:
    client_id = _client(rt, balance="1000.00")
    _deliver(rt, _mail("Заказ", "Ещё товары.", files=True))
    code = _code_mailed(rt)
    reply = _mail(f"Re: код {code}", "Подтверждаю.")
    _deliver(rt, reply)
    _deliver(rt, _mail(f"Re: код {code}", "Ещё раз подтверждаю."))
    with Session(rt.engine) as s:
        invoice = s.exec(select(Invoice)).one()
        app = s.exec(select(Application)).one()
        assert s.exec(select(Confirmation.status)).all() == ["used"]
    assert _balance(rt, client_id) == Decimal("0.00")
    assert invoice.from_balance == Decimal("1000.00") and invoice.status == "issued"
    assert app.state == "invoiced"  # the rest is paid by bank transfer, as usual


def test_caps_per_sender_per_domain_and_per_recipient(rt: Runtime) -> None:
    limits = rt.settings.limits
    now = rt.clock()
    with transaction(rt.engine) as s:
        for n in range(limits.applications_per_sender_per_hour + 1):
            s.add(
                Application(number=f"A{n}", sender="busy@one.test", created_at=now, updated_at=now)
            )
        for n in range(limits.applications_per_domain_per_hour + 1):
            s.add(
                Application(
                    number=f"B{n}", sender=f"u{n}@many.test", created_at=now, updated_at=now
                )
            )
        inbound = {}
        for sender in ("busy@one.test", "u0@many.test", "quiet@calm.test"):
            row = InboundMessage(
                key=sender,
                sha256="0" * 64,
                archive_path="x",
                size=1,
                received_at=now,
                from_addr=sender,
            )
            s.add(row)
            s.flush()
            inbound[sender] = row.id
    with transaction(rt.engine) as s:

        def why(sender: str, to: list[str], kind: str = "invoice") -> str:
            guarded = Outgoing("k", kind, inbound_id=inbound[sender], caps=limits)
            return hold_reason(s, to, guarded, now=now)

        assert why("busy@one.test", ["busy@one.test"]) == ""  # a reply to the sender alone
        assert "applications_per_sender_per_hour" in why("busy@one.test", ["x@third.test"])
        assert "applications_per_domain_per_hour" in why("u0@many.test", ["y@third.test"])
        assert why("quiet@calm.test", ["quiet@calm.test", "z@third.test"]) == ""
        # blank forms count even when they go to the sender (the From may be forged)
        assert why("quiet@calm.test", ["quiet@calm.test"], kind="instructions") == ""
    later = now + timedelta(minutes=1)
    with transaction(rt.engine) as s:
        for n in range(limits.mails_per_recipient_per_day):
            sent = OutboxMessage(
                dedupe_key=f"k{n}",
                message_id=f"<{n}@x>",
                kind="invoice",
                recipients=["z@third.test"],
                body=b"",
                next_attempt_at=later,
                created_at=later,
            )
            s.add(sent)
            s.flush()
            assert sent.id is not None
            s.add(OutboxRecipient(outbox_id=sent.id, address="z@third.test", created_at=later))
    with transaction(rt.engine) as s:
        guarded = Outgoing("k", "invoice", inbound_id=inbound["quiet@calm.test"], caps=limits)
        reason = hold_reason(s, ["quiet@calm.test", "z@third.test"], guarded, now=later)
    assert "mails_per_recipient_per_day" in reason


def test_an_authenticated_contact_change_goes_to_the_admin_without_a_code(rt: Runtime) -> None:
    _client(rt)
    text = "Прошу изменить контакты.\nТелефон: +7 916 111-22-33\n"
    _deliver(rt, _mail("Смена контактных данных", text, results=PASS))
    _deliver(rt, _mail("Смена контактных данных", text))  # the same, not authenticated
    with Session(rt.engine) as s:
        requests = s.exec(select(ContactChangeRequest).order_by(col(ContactChangeRequest.id)))
        assert [r.status for r in requests] == ["pending", "unconfirmed"]
        assert len(s.exec(select(Confirmation)).all()) == 1


def test_an_authenticated_ticket_reply_is_kept_at_once(rt: Runtime) -> None:
    _client(rt)
    _deliver(rt, _mail("Вопрос", "Где свидетельство?"))
    with Session(rt.engine) as s:
        ticket = s.exec(select(SupportTicket)).one()
    _deliver(rt, _mail(f"Re: Вопрос [Обращение №{ticket.number}]", "Нашёл.", results=PASS))
    with Session(rt.engine) as s:
        kept = s.exec(select(TicketMessage).where(TicketMessage.direction == "in")).all()
        assert len(kept) == 2 and s.exec(select(Confirmation)).all() == []
