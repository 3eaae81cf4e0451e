"""Issue 15, the inbound half: hostile mail through the real daemon, on SQLite and PostgreSQL.

Each hostile message is followed by a valid application from another sender; the daemon must
answer every application in the same run, end every hostile message answered or quarantined,
and go on. Once with the embedded Maildir and `mailbot run --once` (a subprocess), once with
real Dovecot IMAP + SMTP and the long-running `mailbot run`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailbot.cli.demo import deliver_to_maildir
from mailbot.storage.db import make_engine
from mailbot.storage.models import InboundMessage, InboundStatus
from tests.e2e.helpers import attachments, body, mailbot, outbox_mails
from tests.e2e.hostile_mail import hostile_kinds, message_id
from tests.e2e.test_mail_edge import CATCH, INFO, Site, folder_count, replies_to, wait_until
from tests.fixtures import forms_builders as fb
from tests.mailstack import MailStack
from tests.proof.builders import INJECTED_HEADER, INJECTED_RCPT, application, attach, sender

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def site(workdir: Path, db_url: str) -> tuple[Path, dict[str, str]]:
    env = {"MAILBOT_DATABASE_URL": db_url}
    mailbot(workdir, "db", "upgrade", env=env)
    return workdir, env


def _inbound(db_url: str) -> list[InboundMessage]:
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            return list(s.exec(select(InboundMessage).order_by(col(InboundMessage.id))))
    finally:
        engine.dispose()


def _to(mail: EmailMessage) -> list[str]:
    return [a.addr_spec.lower() for a in mail["To"].addresses]


def test_hostile_mail_never_stops_the_daemon_and_the_application_after_each_is_answered(
    site: tuple[Path, dict[str, str]], db_url: str
) -> None:
    workdir, env = site
    inbox = workdir / "var/mail/inbox"
    kinds = hostile_kinds()
    valid = [sender(f"after-{h.name}") for h in kinds]
    for h, after in zip(kinds, valid, strict=True):
        deliver_to_maildir(inbox, h.build())
        deliver_to_maildir(inbox, application(after))

    out = mailbot(workdir, "run", "--once", env=env).stdout
    assert f"received {2 * len(kinds)}, processed {2 * len(kinds)}" in out

    mails = outbox_mails(workdir)
    by_rcpt: dict[str, list[EmailMessage]] = {}
    for m in mails:
        for rcpt in _to(m):
            by_rcpt.setdefault(rcpt, []).append(m)
    for after in valid:  # every application after a hostile message got its invoice
        [invoice] = by_rcpt.get(after, [])
        assert any(name.endswith(".pdf") for name in attachments(invoice)), after
    rows = {r.from_addr: r for r in _inbound(db_url)}
    for h in kinds:
        row = rows[h.sender]
        assert row.status in (InboundStatus.processed, InboundStatus.quarantined), h.name
        assert (row.status == InboundStatus.quarantined) == h.quarantined, (h.name, row.reason)
        [answer] = by_rcpt.get(h.sender, [])  # each hostile sender is told, once
        text = answer.get_body(("plain",))
        assert text is not None and "Здравствуйте" in str(text.get_content()), h.name
        if h.quarantined:
            assert row.kind == "unreadable" and "not parsed" in row.last_error, h.name
            assert str(answer["Subject"]) == "Ваше письмо не удалось прочитать"
    for h in kinds:  # the operator looks at a quarantined bomb: bounded like the daemon
        if h.quarantined:
            shown = mailbot(workdir, "quarantine", "show", rows[h.sender].correlation_id, env=env)
            assert "not parsed: " in shown.stdout and "(not parsed)" in shown.stdout
    reasons = sorted((workdir / "var/mail/inbox/.quarantine/cur").glob("*.reason"))
    assert len(reasons) == sum(h.quarantined for h in kinds)
    assert all("(not parsed)" in p.read_text() for p in reasons)
    for m in mails:  # nothing injected reached any reply
        assert INJECTED_HEADER not in m and "Bcc" not in m
        assert INJECTED_RCPT not in str(m["To"])
        raw_head = m.as_bytes().split(b"\n\n", 1)[0]
        assert b"\x00" not in raw_head


def test_a_refused_message_without_a_readable_sender_is_quarantined_unanswered(
    site: tuple[Path, dict[str, str]], db_url: str
) -> None:
    workdir, env = site
    inbox = workdir / "var/mail/inbox"
    words = " ".join(["=?utf-8?q?x?="] * 1000)
    deliver_to_maildir(inbox, f"From: {words}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    deliver_to_maildir(inbox, application(sender("after-nosender")))
    assert "received 2, processed 2" in mailbot(workdir, "run", "--once", env=env).stdout
    [first, second] = _inbound(db_url)
    assert (first.status, first.kind, first.from_addr) == ("quarantined", "unreadable", "")
    assert "encoded words" in first.last_error
    assert second.status == "processed"
    assert [_to(m)[0] for m in outbox_mails(workdir)] == [sender("after-nosender")]


@pytest.mark.mail
def test_hostile_mail_over_imap_to_the_long_running_daemon(
    tmp_path: Path, mailstack_factory: Callable[..., MailStack], db_url: str
) -> None:
    """The same mails appended to Dovecot while `mailbot run` idles; replies read over IMAP."""
    stack = mailstack_factory(catchall=CATCH)
    site = Site(tmp_path / "imap-site", stack, "hostile")
    site.db_url, site.env["MAILBOT_DATABASE_URL"] = db_url, db_url
    kinds = hostile_kinds()
    apps = [application(sender(f"imap-after-{h.name}")) for h in kinds]
    site.start()
    try:
        wait_until("daemon idling", lambda: "imap_idle_started" in site.log(), site)
        for h, app in zip(kinds, apps, strict=True):
            stack.append(INFO, h.build(), site.mailbox)
            stack.append(INFO, app, site.mailbox)
        for h, app in zip(kinds, apps, strict=True):
            mid = str(BytesParser(policy=policy.default).parsebytes(app)["Message-ID"])
            [invoice, *_] = wait_until(
                f"invoice after {h.name}", functools.partial(replies_to, stack, mid), site, 120
            )
            assert any(a.get_filename().endswith(".pdf") for a in invoice.iter_attachments())
            [answer, *_] = wait_until(
                f"answer to {h.name}",
                functools.partial(replies_to, stack, message_id(h.sender)),
                site,
                60,
            )
            assert answer["Auto-Submitted"] == "auto-replied"
        total = 2 * len(kinds)
        moved = ("hostile-done", "hostile-quarantine")
        wait_until(
            "all moved out", lambda: sum(folder_count(stack, f) for f in moved) == total, site, 60
        )
        assert folder_count(stack, "hostile-quarantine") == sum(h.quarantined for h in kinds)
        assert site.proc is not None and site.proc.poll() is None  # still running
    finally:
        assert site.stop() == 0


def _with_products_csv(frm: str, names: list[str]) -> bytes:
    rows = fb.product_rows(len(names))
    for row, name in zip(rows, names, strict=True):
        row[1] = name
    values = {**fb.VALID_ORG, "Количество штрихкодов": str(len(names))}
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, "info@example.test", "Заявка на штрихкоды"
    msg.set_content("Здравствуйте! Заявление и перечень во вложении.")
    attach(msg, fb.application_docx(values), "Заявление.docx")
    data = fb.csv_bytes([fb.PRODUCT_HEADER, *rows], encoding="utf-8", bom=True)
    attach(msg, data, "Перечень.csv", "text/csv")
    return bytes(msg)


def test_a_control_character_or_an_overlong_name_is_a_problem_the_applicant_is_told(
    site: tuple[Path, dict[str, str]], db_url: str
) -> None:
    workdir, env = site
    inbox = workdir / "var/mail/inbox"
    control, emoji, fine = sender("name-control"), sender("name-emoji"), sender("name-fine")
    deliver_to_maildir(inbox, _with_products_csv(control, ["Печенье", "Пече\x01нье 2"]))
    deliver_to_maildir(inbox, _with_products_csv(emoji, ["Печенье", "\U0001f36a" * 250]))
    deliver_to_maildir(inbox, _with_products_csv(fine, ["Печенье", "\U0001f36a" * 100]))
    assert "received 3, processed 3" in mailbot(workdir, "run", "--once", env=env).stdout
    replies = {_to(m)[0]: m for m in outbox_mails(workdir)}
    told = {a: " ".join(body(replies[a]).split()) for a in (control, emoji)}
    assert (
        "Строка 3, столбец «Наименование продукции»: в тексте «Пече[U+0001]нье 2»" in told[control]
    )
    assert "управляющий символ U+0001" in told[control]
    assert "Строка 3, столбец «Наименование продукции»: наименование длиннее 255" in told[emoji]
    assert "Эмодзи" in told[emoji]
    assert any(n.endswith(".pdf") for n in attachments(replies[fine]))  # 100 emoji: invoiced
    assert [r.status for r in _inbound(db_url)] == ["processed"] * 3
