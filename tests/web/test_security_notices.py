"""A mail to the client after its password or second factor changes on the web (ASVS 6.3.7),
queued in the outbox in the same transaction as the change."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlmodel import select
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from mailbot.storage.models import OutboxMessage
from tests.conftest import FakeClock
from tests.web.authkit import PASSWORD, add_client, enable, log_in, post_form
from tests.web.authkit import web as web


def notices(rt: Runtime) -> list[OutboxMessage]:
    with transaction(rt.engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "web_security")
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        )
        return list(rows.all())


def test_password_change_mails_the_client(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    log_in(web)
    new = "another long phrase 42"
    post_form(web, "/password", "/password", current=PASSWORD, new=new, again=new)
    [row] = notices(rt)
    assert row.recipients == ["c7707083893@example.ru"]
    text = _text(row)
    assert "сменён пароль" in text and "с адреса testclient" in text
    assert "Изменены настройки входа" in str(_message(row)["subject"])


def _message(row: OutboxMessage) -> EmailMessage:
    msg = message_from_bytes(row.body, _class=EmailMessage, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _text(row: OutboxMessage) -> str:
    part = _message(row).get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def test_second_factor_on_and_off_mail_the_client(
    rt: Runtime, web: TestClient, clock: FakeClock
) -> None:
    add_client(rt)
    log_in(web)
    enable(web, clock)
    clock.advance(seconds=30)
    post_form(web, "/security/totp/disable", "/security/totp", password=PASSWORD)
    texts = [_text(row) for row in notices(rt)]
    assert len(texts) == 2
    assert "включён вход по коду" in texts[0] and "выключен вход по коду" in texts[1]


def test_a_failed_change_mails_nothing(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    log_in(web)
    post_form(web, "/password", "/password", current="wrong", new="x" * 20, again="x" * 20)
    assert notices(rt) == []
