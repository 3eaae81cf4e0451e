"""The pipeline (take_in → process_pending → release_done) on a real mailbox, in process.

Poison mail goes to quarantine without blocking the rest; robots are never answered; the
per-sender reply limit holds. In process so the clock can be moved and failures injected.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot import forms, pipeline
from mailbot.cli.demo import deliver_to_maildir
from mailbot.handlers.context import Context
from mailbot.mail.classify import MessageKind
from mailbot.mail.intake.base import Intake
from mailbot.mail.intake.imap import ImapIntake, ImapSettings
from mailbot.mail.intake.maildir import MaildirIntake
from mailbot.runtime import Runtime
from mailbot.storage.models import InboundMessage, OutboxMessage
from tests.conftest import FakeClock
from tests.mailstack import MailStack
from tests.unit.test_classify_automatic import automatic_mails

pytestmark = pytest.mark.mail
INFO = "info@example.test"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def one_pass(rt: Runtime, intake: Intake) -> None:
    pipeline.take_in(rt, intake)
    pipeline.process_pending(rt)
    pipeline.release_done(rt, intake)


def rows(rt: Runtime, model: Any) -> list[Any]:
    with Session(rt.engine) as s:
        return list(s.exec(select(model).order_by(col(model.id))))


def letter(sender: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, INFO, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.test>"
    msg.set_content("Здравствуйте!")
    return bytes(msg)


@pytest.fixture
def imap_intake(mailstack: MailStack) -> Iterator[tuple[ImapIntake, str]]:
    box = f"q{uuid.uuid4().hex[:10]}"
    with mailstack.imap(INFO) as c:
        c.create_folder(box)
    intake = ImapIntake(
        ImapSettings(
            host=mailstack.host,
            port=mailstack.imap_port,
            security="none",
            user=INFO,
            password=mailstack.password,
            mailbox=box,
            processed_folder=f"{box}-done",
            quarantine_folder=f"{box}-quarantine",
        )
    )
    yield intake, box
    intake.close()


def test_message_failing_max_attempts_times_is_quarantined_while_the_next_is_answered(
    rt: Runtime,
    clock: FakeClock,
    mailstack: MailStack,
    imap_intake: tuple[ImapIntake, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    intake, box = imap_intake
    real = pipeline._HANDLERS[MessageKind.unknown_sender]

    def handler(c: Context) -> str:
        if c.msg.subject == "poison":
            raise RuntimeError("handler crashed on this message")
        return real(c)

    monkeypatch.setitem(pipeline._HANDLERS, MessageKind.unknown_sender, handler)
    mailstack.append(INFO, letter("poison@example.test", "poison"), box)
    mailstack.append(INFO, letter("good@example.test", "good"), box)
    one_pass(rt, intake)
    assert len(mailstack.messages(INFO, f"{box}-done")) == 1  # the next one went through
    assert [o.recipients for o in rows(rt, OutboxMessage)] == [["good@example.test"]]
    for _ in range(rt.settings.limits.max_attempts - 1):
        assert len(mailstack.messages(INFO, box)) == 1  # poison waits for its retry
        clock.advance(hours=1)  # past the backoff between attempts
        one_pass(rt, intake)
    [quarantined] = mailstack.messages(INFO, f"{box}-quarantine")
    assert b"Subject: poison" in quarantined
    assert mailstack.messages(INFO, box) == []
    poison = next(r for r in rows(rt, InboundMessage) if r.subject == "poison")
    assert (poison.status, poison.attempts) == ("quarantined", rt.settings.limits.max_attempts)
    assert "handler crashed on this message" in poison.last_error
    assert len(rows(rt, OutboxMessage)) == 1


@pytest.mark.parametrize("count", [200, pytest.param(1000, marks=pytest.mark.slow)])
def test_hundreds_of_automatic_mails_of_every_kind_get_no_reply(
    rt: Runtime, tmp_path: Path, count: int
) -> None:
    """Every kind ten times over by default (50 under `-m slow`), each from a new address."""
    inbox = tmp_path / "inbox"
    for raw in automatic_mails(count, our_address=INFO):
        deliver_to_maildir(inbox, raw)
    intake = MaildirIntake(inbox, max_bytes=rt.settings.limits.max_message_bytes)
    one_pass(rt, intake)
    inbound = rows(rt, InboundMessage)
    assert len(inbound) == count
    assert {r.status for r in inbound} == {"processed"}
    assert {r.kind for r in inbound} == {"automatic", "bounce"}
    assert rows(rt, OutboxMessage) == []
    assert list(intake.fetch_new()) == []  # every one moved out of the inbox


def _bad_application(sender: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, INFO, f"Заявка {n}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.test>"
    msg.set_content("Заявка во вложении.")
    msg.add_attachment(forms.invalid_sample_application_docx(), maintype="application",
                       subtype=DOCX.split("/")[1], filename="Заявление.docx")  # fmt: skip
    msg.add_attachment(forms.invalid_sample_products_xlsx(), maintype="application",
                       subtype=XLSX.split("/")[1], filename="Перечень.xlsx")  # fmt: skip
    return bytes(msg)


def test_one_sender_gets_at_most_the_configured_replies_per_hour(
    rt: Runtime, clock: FakeClock, tmp_path: Path
) -> None:
    limit = rt.settings.limits.replies_per_sender_per_hour
    inbox = tmp_path / "inbox"
    intake = MaildirIntake(inbox, max_bytes=rt.settings.limits.max_message_bytes)
    for n in range(limit + 3):  # the same mailbox, however its address is capitalised
        sender = "robot-like@example.test" if n % 2 else "Robot-Like@EXAMPLE.test"
        deliver_to_maildir(inbox, _bad_application(sender, n))
    deliver_to_maildir(inbox, _bad_application("other@example.test", 99))
    one_pass(rt, intake)
    by_status = [(o.recipients[0], o.status) for o in rows(rt, OutboxMessage)]
    mine = [s for r, s in by_status if r.lower() == "robot-like@example.test"]
    assert mine == ["pending"] * limit + ["suppressed"] * 3
    assert ("other@example.test", "pending") in by_status
    clock.advance(hours=1, minutes=1)
    deliver_to_maildir(inbox, _bad_application("robot-like@example.test", 100))
    one_pass(rt, intake)
    assert rows(rt, OutboxMessage)[-1].status == "pending"  # a new hour, a new allowance
