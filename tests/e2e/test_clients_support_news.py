"""Support tickets and news through the real daemon, Dovecot and SMTP.

The ticket test runs `mailbot run` as a long-lived daemon (IMAP IDLE); the news test kills
`mailbot news send` with SIGKILL in the middle of a broadcast and runs it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import TypeVar

import pytest
from sqlmodel import select

from mailbot.storage.models import Client, SupportTicket
from mailbot.storage.models_clients import TicketMessage
from tests.e2e.clients_site import (
    Site,
    add_client,
    address,
    clients_stack,  # noqa: F401 - fixture
    confirm_reply,
    confirmation_requests,
    letter,
    site,  # noqa: F401 - fixture
    text_of,
)

pytestmark = [pytest.mark.mail, pytest.mark.timeout(300)]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

T = TypeVar("T")


def _until(what: str, check: Callable[[], T], timeout: float = 30.0) -> T:
    """Wait (deadline loop) until check() returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # poll interval of the deadline loop


def _ticket_mails(st: Site, ticket_id: int) -> list[TicketMessage]:
    with st.session() as s:
        return list(s.exec(select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)))


def test_support_ticket_keeps_its_thread_and_the_admin_reply_goes_out_in_it(
    site: Site,  # noqa: F811
) -> None:
    client_addr, stranger = address("client"), address("stranger")
    add_client(site, client_addr)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "run"],
        cwd=site.dir,
        env={**os.environ, **site.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        site.receive(letter(client_addr, "Вопрос по сертификату", "Где найти свидетельство?")[0])
        [ack] = _until("ack", lambda: site.mails_to(client_addr))
        subject = str(ack["Subject"])
        assert "[Обращение №" in subject and "зарегистрировано" in text_of(ack)
        with site.session() as s:
            ticket = s.exec(select(SupportTicket)).one()
        assert ticket.id is not None
        # A reply with a screenshot stays on the ticket (no application, no new ticket).
        reply, reply_id = letter(
            client_addr,
            f"Re: {subject}",
            "Вот скриншот.",
            in_reply_to=str(ack["Message-ID"]),
            files={"screen.png": PNG},
        )
        site.receive(reply)
        site.receive(letter(stranger, f"Re: {subject}", "Я тоже хочу знать")[0])
        # not authenticated: kept once the registered address confirms with the code
        [ask] = _until("code", lambda: confirmation_requests(site, client_addr))
        assert len(_ticket_mails(site, ticket.id)) == 2
        confirm_reply(site, ask, client_addr)
        _until("reply on the ticket", lambda: len(_ticket_mails(site, ticket.id or 0)) == 3)
        _until("stranger answered", lambda: site.mails_to(stranger))
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0

    with site.session() as s:
        assert len(s.exec(select(SupportTicket)).all()) == 1
    stranger_text = text_of(site.mails_to(stranger)[0])  # instructions, not the ticket
    assert "Заявление о регистрации" in stranger_text and "Вот скриншот" not in stranger_text

    site.run("tickets", "reply", ticket.number, "--text", "Свидетельство во вложении письма.")
    answer = site.mails_to(client_addr)[-1]
    assert f"[Обращение №{ticket.number}]" in str(answer["Subject"])
    assert answer["In-Reply-To"] == reply_id and reply_id in str(answer["References"])
    assert "Свидетельство во вложении письма." in text_of(answer)
    shown = site.run("tickets", "show", ticket.number)
    assert "Вот скриншот." in shown and "screen.png" in shown and "Свидетельство во" in shown
    site.run("tickets", "close", ticket.number)
    assert ticket.number not in site.run("tickets", "list")


def _news(st: Site, subject: str, *, crash_at: str = "") -> str:
    body = st.dir / f"{subject}.txt"
    body.write_text("С 1 декабря новые тарифы.\n", "utf-8")
    env = {**st.env, "MAILBOT_CRASH_AT": crash_at} if crash_at else st.env
    args = ["news", "send", "--subject", subject, "--body-file", str(body)]
    proc = subprocess.run(
        [sys.executable, "-m", "mailbot", *args, "--per-minute", "3000"],
        cwd=st.dir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if crash_at:
        assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _news_to(st: Site, addr: str, subject: str) -> list[EmailMessage]:
    return [m for m in st.mails_to(addr) if str(m["Subject"]) == subject]


def test_news_killed_mid_broadcast_and_resumed_reaches_every_subscriber_exactly_once(
    site: Site,  # noqa: F811
) -> None:
    subscribers = [address(f"sub{i}") for i in range(4)]
    for i, addr in enumerate(subscribers):
        add_client(site, addr, kpp=f"77360100{i}")
    gone = address("gone")
    add_client(site, gone, kpp="773601009", unsubscribed=True)

    _news(site, "Новости", crash_at="after_news_queued:2")  # 1 sent, 2nd queued, then -9
    assert "resumed" in _news(site, "Новости")
    for addr in subscribers:
        [mail] = _news_to(site, addr, "Новости")
        unsubscribe = str(mail["List-Unsubscribe"]).strip()
        assert unsubscribe.startswith("<mailto:info@example.test?subject=unsubscribe")
        assert "Отписаться" in text_of(mail)
    assert _news_to(site, gone, "Новости") == []

    leaving = subscribers[1]
    news_mail = _news_to(site, leaving, "Новости")[0]
    quoted = "\n".join(f"> {line}" for line in text_of(news_mail).splitlines())
    raw, _ = letter(
        leaving, "Re: Новости", f"Отписаться\n\n{quoted}", in_reply_to=str(news_mail["Message-ID"])
    )
    site.receive(raw)
    site.run("run", "--once")
    assert "Вы отписаны" in text_of(site.mails_to(leaving)[-1])
    with site.session() as s:
        assert s.exec(select(Client.unsubscribed).where(Client.email == leaving)).one()

    _news(site, "Новости, часть 2")
    got = {addr: len(_news_to(site, addr, "Новости, часть 2")) for addr in subscribers}
    assert got == {a: 0 if a == leaving else 1 for a in subscribers}
    assert all(len(_news_to(site, a, "Новости")) == 1 for a in subscribers)
