"""Statements by mail through the real pipeline: only our server's DKIM/DMARC pass moves money."""

from __future__ import annotations

import dataclasses
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from sqlmodel import Session, col, select

from mailbot.mail.intake.base import RawMessage
from mailbot.pipeline import archive_one, process_pending
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, Invoice, OutboxMessage, Payment
from tests.fixtures.statements import OUR_ACCOUNT, incoming, statement_bytes
from tests.integration.test_payments import invoiced, purpose

ACCOUNTANT = "buh@example.test"
AUTHSERV = "mx.example.test"
PASS = (
    f"{AUTHSERV}; dkim=pass (2048-bit key) header.d=example.test header.s=mail; "
    "dmarc=pass (p=reject) header.from=example.test"
)


@pytest.fixture
def rt(rt: Runtime) -> Runtime:
    """Our account as the fixtures pay it; one trusted accountant; our server's authserv-id."""
    service = dataclasses.replace(rt.settings.service, account=OUR_ACCOUNT)
    rt.settings = dataclasses.replace(
        rt.settings, service=service, accountants=(ACCOUNTANT,), authserv_id=AUTHSERV
    )
    return rt


def statement_mail(
    data: bytes,
    *,
    sender: str = ACCOUNTANT,
    results: list[str] | None = None,
    number: int = 1,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "info@example.test"
    msg["Subject"] = f"Выписка {number}"
    msg["Message-ID"] = f"<statement-{number}@bank.example.test>"
    msg.set_content("Выписка во вложении.")
    msg.add_attachment(data, maintype="text", subtype="plain", filename="kl_to_1c.txt")
    # Our MTA prepends its Authentication-Results above everything the sender wrote.
    top = "".join(f"Authentication-Results: {line}\n" for line in results or [])
    return top.encode() + msg.as_bytes()


def deliver(rt: Runtime, raw: bytes, key: str) -> None:
    archive_one(rt, RawMessage(key=key, data=raw, size=len(raw)))
    process_pending(rt)


def test_authenticated_statement_pays_the_invoice_and_the_accountant_gets_a_summary(
    rt: Runtime,
) -> None:
    invoice = invoiced(rt)
    data = statement_bytes(
        [incoming("1", amount=str(invoice.total), purpose=purpose(invoice.number))]
    )
    deliver(rt, statement_mail(data, results=[PASS]), "test:1")
    deliver(rt, statement_mail(data, results=[PASS], number=2), "test:2")  # sent twice
    with Session(rt.engine) as s:
        assert s.exec(select(Invoice.status)).one() == "paid"
        assert [p.status for p in s.exec(select(Payment))] == ["applied"]
        kinds = [m.kind for m in s.exec(select(InboundMessage).order_by(col(InboundMessage.id)))]
        replies = list(s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))
    assert kinds == ["statement", "statement"]
    assert [r.recipients for r in replies] == [[ACCOUNTANT], [ACCOUNTANT]]
    first, second = (r.body for r in replies)
    assert "Выписка загружена" in replies[0].subject
    assert "зачтён, счёт оплачен" in _text(first)
    assert "загружено раньше 1" in _text(second)


def _text(raw: bytes) -> str:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


FORGERIES: list[tuple[str, list[str]]] = [
    (ACCOUNTANT, []),  # no Authentication-Results at all
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=fail header.d=example.test; dmarc=fail"]),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=none; dmarc=none"]),
    (ACCOUNTANT, [f"{AUTHSERV}; spf=pass smtp.mailfrom=example.test"]),  # SPF is not enough
    (ACCOUNTANT, ["mx.evil.test; dkim=pass header.d=example.test; dmarc=pass"]),  # other server
    (ACCOUNTANT, [f"{AUTHSERV}.evil.test; dkim=pass header.d=example.test"]),  # look-alike id
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=pass header.d=evil.test"]),  # signed by another domain
    (ACCOUNTANT, [f"{AUTHSERV}; dmarc=pass header.from=evil.test"]),
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=fail (not dkim=pass) header.d=example.test"]),
    # ours on top says fail; the attacker's own "pass" line below it does not count
    (ACCOUNTANT, [f"{AUTHSERV}; dkim=fail header.d=example.test", PASS]),
    ("buh@example.test.evil.test", [PASS]),  # not the accountant's address
    ('"buh@example.test" <attacker@evil.test>', [PASS]),  # display name only
    ("attacker@evil.test", [PASS]),
]


def test_fifty_forged_or_unauthenticated_statement_mails_apply_no_payment(rt: Runtime) -> None:
    invoices = [invoiced(rt) for _ in range(5)]
    for i in range(50):
        invoice = invoices[i % len(invoices)]
        sender, results = FORGERIES[i % len(FORGERIES)]
        doc = incoming(str(i + 1), amount=str(invoice.total), purpose=purpose(invoice.number))
        raw = statement_mail(statement_bytes([doc]), sender=sender, results=results, number=i)
        archive_one(rt, RawMessage(key=f"forged:{i}", data=raw, size=len(raw)))
    assert process_pending(rt) == 50
    with Session(rt.engine) as s:
        statuses = {p.status for p in s.exec(select(Payment))}
        assert set(s.exec(select(Invoice.status))) == {"issued"}
        inbound = list(s.exec(select(InboundMessage)))
        statements = [m for m in inbound if m.kind.startswith("statement")]
        told = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "statement_report")).all()
    assert statuses <= {"held"}
    assert {m.status for m in inbound} == {"processed"}
    assert len(statements) == sum(FORGERIES[i % len(FORGERIES)][0] == ACCOUNTANT for i in range(50))
    assert len(told) == len(statements)
    assert all(r.recipients == [ACCOUNTANT] for r in told)
    assert "не подтвердил" in _text(told[0].body)
