"""SMTP relay of tests/mailstack.py: accepts mail on 127.0.0.1 and hands it to Dovecot LMTP.

Each message is delivered over LMTP *before* DATA is answered, so `250` means it is already
in the recipient's INBOX. Unknown recipients get 550 unless --catchall names a user who then
receives the message with an `X-Original-To` header. Dovecot down: 451. AUTH PLAIN/LOGIN
accepts the users with --password; it is offered, not required.

TLS: with --tls-cert/--tls-key, --smtps PORT speaks implicit TLS (SMTPS) and --starttls PORT
offers STARTTLS and refuses every other command until it is done (530). Both are bound
before the plain port, so a banner on --listen means all three are up.

Faults: with --fault-file, the file's first word (read at every DATA) is the fault to play
until it changes: `4xx` answers 451 without delivering, `5xx` answers 554 without
delivering, `drop-after-data` delivers and then drops the connection without an answer
(the sender cannot know it was delivered). Empty or missing: normal service.

    python tests/mailstack_relay.py --listen PORT --lmtp PORT --users a@x,b@x [--catchall a@x]
        [--tls-cert PEM --tls-key PEM --smtps PORT --starttls PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Relay:
    """aiosmtpd handler: RCPT checks the user list, DATA delivers over LMTP."""

    def __init__(
        self,
        lmtp_port: int,
        users: set[str],
        catchall: str | None,
        password: str,
        fault_file: Path | None = None,
    ):
        self.lmtp_port, self.users, self.catchall, self.password = (
            lmtp_port,
            users,
            catchall,
            password,
        )
        self.fault_file = fault_file
        self.conn: smtplib.LMTP | None = None
        self.worker = ThreadPoolExecutor(1)  # owns `conn`: one delivery at a time

    async def handle_RCPT(  # aiosmtpd finds hooks by this name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        addr = address.lower()
        if addr not in self.users:
            if self.catchall is None:
                return f"550 5.1.1 <{address}>: no such user here"
            envelope.original = [*getattr(envelope, "original", []), address]
            addr = self.catchall
        envelope.rcpt_tos.append(addr)
        return "250 OK"

    def fault(self) -> str:
        """The fault to play now: the first word of the fault file, or ''."""
        if self.fault_file is None:
            return ""
        try:
            words = self.fault_file.read_text().split()
        except OSError:
            return ""
        return words[0] if words else ""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self.fault()
        if fault == "4xx":
            return "451 4.3.0 fault injected: try again later"
        if fault == "5xx":
            return "554 5.6.0 fault injected: message refused"
        reply = await self._relay(envelope)
        if fault == "drop-after-data" and reply.startswith("250"):
            server.transport.abort()  # delivered, but the sender never hears so
        return reply

    async def _relay(self, envelope: Any) -> str:
        data = envelope.original_content
        if getattr(envelope, "original", None):
            data = b"X-Original-To: " + ", ".join(envelope.original).encode() + b"\r\n" + data
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        rcpts = list(dict.fromkeys(envelope.rcpt_tos))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.worker, self.deliver, sender, rcpts, data)

    def _lmtp(self) -> smtplib.LMTP:
        if self.conn is None:
            self.conn = smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30)
        return self.conn

    def deliver(self, sender: str, rcpts: list[str], data: bytes) -> str:
        """Return the SMTP reply for DATA after one LMTP transaction per recipient.

        Runs on the relay's single worker thread, which keeps one LMTP connection open.
        """
        failed: list[str] = []
        try:
            for rcpt in rcpts:
                try:
                    self._send(sender, rcpt, data)
                except smtplib.SMTPRecipientsRefused as exc:
                    code, reply = next(iter(exc.recipients.values()))
                    failed.append(f"{code} {reply.decode(errors='replace')}")
                except smtplib.SMTPDataError as exc:
                    err = exc.smtp_error
                    why = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
                    failed.append(f"{exc.smtp_code} {why}")
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return f"451 4.4.1 local delivery unavailable: {exc}"
        if failed and len(failed) == len(rcpts):
            return failed[0].splitlines()[0]
        return "250 2.0.0 OK delivered"

    def _send(self, sender: str, rcpt: str, data: bytes) -> None:
        try:
            self._lmtp().sendmail(sender, [rcpt], data)
        except smtplib.SMTPServerDisconnected:  # Dovecot restarted or timed the link out
            self.close()
            self._lmtp().sendmail(sender, [rcpt], data)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.conn.close()
        self.conn = None

    def authenticate(self, *args: Any) -> AuthResult:
        data = args[-1]
        if isinstance(data, LoginPassword):
            user, pw = data.login.decode().lower(), data.password.decode()
            if user in self.users and pw == self.password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


async def serve(a: argparse.Namespace) -> None:
    users = {u.lower() for u in a.users.split(",") if u}
    fault_file = Path(a.fault_file) if a.fault_file else None
    relay = Relay(a.lmtp, users, a.catchall.lower() if a.catchall else None, a.password, fault_file)
    loop = asyncio.get_running_loop()

    def session(**tls: Any) -> SMTP:
        return SMTP(
            relay,
            hostname="mailstack.test",
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
            authenticator=relay.authenticate,
            auth_required=False,
            auth_require_tls=False,
            **tls,
        )

    servers = []
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.smtps:
            servers.append(await loop.create_server(session, "127.0.0.1", a.smtps, ssl=ctx))
        if a.starttls:
            servers.append(
                await loop.create_server(
                    lambda: session(tls_context=ctx, require_starttls=True),
                    "127.0.0.1",
                    a.starttls,
                )
            )
    servers.append(await loop.create_server(session, "127.0.0.1", a.listen))  # last: see above
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    for server in servers:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--lmtp", type=int, required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--password", default="secret")
    ap.add_argument("--catchall")
    ap.add_argument("--fault-file", help="file naming the fault to play (see above)")
    ap.add_argument("--tls-cert", help="PEM certificate of the TLS ports")
    ap.add_argument("--tls-key", help="PEM key of --tls-cert")
    ap.add_argument("--smtps", type=int, help="port for implicit TLS")
    ap.add_argument("--starttls", type=int, help="port that requires STARTTLS")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
