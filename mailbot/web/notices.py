"""A mail to the client after its authentication details change on the web (ASVS 6.3.7):
the password, the second factor switched on or off. Queued in the outbox in the caller's
transaction, sent by the daemon like every other mail."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailbot.mail.outbox import Outgoing, enqueue
from mailbot.mail.render import Mail, render_body
from mailbot.runtime import Runtime
from mailbot.storage.models import Client

WHAT = {
    "password": "сменён пароль",
    "totp_on": "включён вход по коду из приложения",
    "totp_off": "выключен вход по коду из приложения",
}
SUBJECT = "Изменены настройки входа в личный кабинет"


def notify_change(  # noqa: PLR0913 - the change and where it came from, keyword-only
    session: Session, rt: Runtime, client: Client, *, change: str, ip: str, now: datetime
) -> None:
    """Queue the notice (once per client, change and moment)."""
    text = render_body(
        rt.env,
        "web_security",
        {
            "client": client,
            "what": WHAT[change],
            "at": now.strftime("%d.%m.%Y %H:%M"),
            "ip": ip,
            "service": rt.settings.service,
        },
    )
    enqueue(
        session,
        Mail(to=(client.email,), subject=SUBJECT, text=text),
        Outgoing(
            dedupe_key=f"client:{client.id}:web:{change}:{now.isoformat()}", kind="web_security"
        ),
        sender=rt.sender,
        now=now,
    )
