"""SMTP transport: delivers finished messages with aiosmtplib over one kept-open connection.

`Transport` is synchronous, so the transport owns a private event loop and runs each
delivery on it. Replies map onto `DeliveryError`: 5xx to MAIL/RCPT/DATA is permanent;
4xx, timeouts, dropped connections and connect/TLS/AUTH trouble are transient (they say
nothing about the message, so the outbox retries it instead of failing it). A connection
lost while DATA was under way is `DeliveryUnknown`: the server may have taken the mail.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiosmtplib import (
    SMTP,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
)

from mailbot.mail.transport import DeliveryError, DeliveryUnknown, Envelope

log = structlog.get_logger()
SECURITY = ("ssl", "starttls", "none")


@dataclass(frozen=True, repr=False)
class SmtpSettings:
    """Where and how to send mail. `password` is a secret: never shown by repr."""

    host: str
    port: int = 587
    security: str = "starttls"
    user: str | None = None
    password: str | None = None
    timeout: float = 60.0
    ca_file: str | Path | None = None
    noop_after: float = 5.0  # a connection idle longer than this is checked with NOOP

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}, not {self.security!r}")

    def __repr__(self) -> str:
        secret = "'***'" if self.password else "None"
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"user={self.user!r}, password={secret}, timeout={self.timeout}, "
            f"ca_file={self.ca_file!r})"
        )


def _needs_smtputf8(envelope: Envelope) -> bool:
    return not all(a.isascii() for a in (envelope.mail_from, *envelope.recipients))


class SmtpTransport:
    """`Transport` to one SMTP server; reuses its connection across deliveries."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._s = settings
        self._loop = asyncio.new_event_loop()
        self._smtp: SMTP | None = None
        self._last_used = 0.0

    def __repr__(self) -> str:
        return f"SmtpTransport({self._s!r})"

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        """Send one message or raise DeliveryError(permanent=...)."""
        if not envelope.recipients:
            raise DeliveryError("no recipients", permanent=True)
        self._loop.run_until_complete(self._deliver(data, envelope))

    def check(self) -> str:
        """Return the server greeting after connect, TLS, login and NOOP; else DeliveryError."""
        return self._loop.run_until_complete(self._check())

    def close(self) -> None:
        """QUIT (best effort), then close the private event loop."""
        if self._loop.is_closed():
            return
        if self._smtp is not None and self._smtp.is_connected:
            try:
                self._loop.run_until_complete(self._smtp.quit())
            except (SMTPException, OSError):
                log.debug("smtp_quit_failed")
        self._drop()
        self._loop.close()

    # ------------------------------------------------------------------ internals
    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def _connect(self) -> SMTP:
        s = self._s
        ctx = ssl.create_default_context(cafile=s.ca_file) if s.security != "none" else None
        smtp = SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.security == "ssl",
            start_tls=s.security == "starttls",
            tls_context=ctx,
        )
        await smtp.connect()
        if s.user:
            await smtp.login(s.user, s.password or "")
        log.info("smtp_connected", host=s.host, port=s.port, security=s.security, user=s.user)
        return smtp

    async def _connection(self) -> SMTP:
        smtp = self._smtp
        if smtp is not None and smtp.is_connected:
            if time.monotonic() - self._last_used < self._s.noop_after:
                return smtp
            try:
                await smtp.noop()
                return smtp
            except (SMTPException, OSError):
                log.info("smtp_reconnect", reason="idle connection dropped")
        self._drop()
        try:
            self._smtp = await self._connect()
        except (SMTPException, OSError) as exc:  # connect, TLS, AUTH: not the message's fault
            self._drop()
            s = self._s
            raise DeliveryError(
                f"SMTP {s.host}:{s.port} unavailable: {exc}", permanent=False
            ) from exc
        return self._smtp

    async def _deliver(self, data: bytes, env: Envelope) -> None:
        smtp = await self._connection()
        try:
            refused = await self._envelope(smtp, env)
            await self._data(smtp, data, env)
        except SMTPResponseException as exc:
            if exc.code == 421 or not smtp.is_connected:
                self._drop()
            else:
                await self._rset(smtp)
            raise DeliveryError(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except (SMTPNotSupported, ValueError) as exc:  # SMTPUTF8 missing, bad address
            await self._rset(smtp)
            raise DeliveryError(str(exc), permanent=True) from exc
        except (SMTPException, OSError) as exc:  # dropped or timed out before DATA ended
            self._drop()
            raise DeliveryError(f"SMTP delivery interrupted: {exc}", permanent=False) from exc
        finally:
            self._last_used = time.monotonic()
        if refused:
            log.warning("smtp_recipients_refused", message_id=env.message_id, refused=refused)
        log.info("mail_sent", message_id=env.message_id, recipients=len(env.recipients))

    async def _envelope(self, smtp: SMTP, env: Envelope) -> dict[str, int]:
        """MAIL FROM and RCPT TO; return the refused recipients (DeliveryError if all)."""
        utf8 = _needs_smtputf8(env)
        if utf8 and not smtp.supports_extension("smtputf8"):
            raise SMTPNotSupported("SMTPUTF8 is not supported by this server")
        encoding = "utf-8" if utf8 else "ascii"
        await smtp.mail(env.mail_from, options=["SMTPUTF8"] if utf8 else [], encoding=encoding)
        refused: dict[str, int] = {}
        for rcpt in env.recipients:
            try:
                await smtp.rcpt(rcpt, encoding=encoding)
            except SMTPRecipientRefused as exc:
                refused[rcpt] = exc.code
        if len(refused) == len(env.recipients):
            await self._rset(smtp)
            permanent = all(code >= 500 for code in refused.values())
            raise DeliveryError(f"all recipients refused: {refused}", permanent=permanent)
        return refused

    async def _data(self, smtp: SMTP, data: bytes, env: Envelope) -> None:
        """DATA; a connection lost once the data went out leaves the outcome unknown."""
        try:
            await smtp.data(data)
        except (SMTPResponseException, SMTPNotSupported):
            raise
        except (SMTPException, OSError) as exc:
            self._drop()
            log.warning("smtp_outcome_unknown", message_id=env.message_id, error=repr(exc))
            raise DeliveryUnknown(f"connection lost during DATA, may be delivered: {exc}") from exc

    async def _rset(self, smtp: SMTP) -> None:
        try:
            await smtp.rset()
        except (SMTPException, OSError):
            self._drop()

    async def _check(self) -> str:
        smtp = await self._connection()
        try:
            await smtp.noop()
        except (SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryError(f"SMTP check failed: {exc}", permanent=False) from exc
        self._last_used = time.monotonic()
        ehlo = smtp.last_ehlo_response
        first = ehlo.message.splitlines()[0] if ehlo and ehlo.message else ""
        return f"{self._s.host}:{self._s.port} {first}".strip()
