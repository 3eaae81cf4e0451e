"""IMAP intake: reads one mailbox with imapclient, moves acknowledged mail out of it.

Owns the IMAP connection: connect/TLS/login, reconnect with capped exponential backoff
on network errors (one helper, `_call`), UID-based fetching that never downloads an
oversized message whole, MOVE (or COPY + EXPUNGE) on acknowledge, and IDLE/NOOP waiting.
Keys are ``imap:<mailbox>:<uidvalidity>:<uid>``; a message that reappears under a new
UIDVALIDITY gets a new key (the archive dedupes it by sha256 and Message-ID).
"""

from __future__ import annotations

import imaplib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.mail.intake.base import OversizedMessage, RawMessage

T = TypeVar("T")
log = structlog.get_logger()
SECURITY = ("ssl", "starttls", "none")

HEADER_CAP = 64 * 1024
SIZE_FETCH_CHUNK = 1000
# Errors after which the connection is dropped and made again. SSL errors are OSErrors.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    IMAPClientAbortError,
    imaplib.IMAP4.abort,
)
_HEADER_ITEM = f"BODY.PEEK[HEADER]<0.{HEADER_CAP}>".encode()


class ImapError(Exception):
    """Base of the errors ImapIntake raises on purpose."""


class ImapUnavailable(ImapError):
    """The server stayed unreachable through every reconnect attempt (retry later)."""


class ImapRefused(ImapError):
    """Login refused or server certificate not trusted: fix the settings, retrying won't help."""


@dataclass(frozen=True, repr=False)
class ImapSettings:
    """Where and how to read mail. `password` is a secret: never shown by repr."""

    host: str
    user: str
    password: str
    port: int = 993
    security: str = "ssl"
    mailbox: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    poll_seconds: float = 60.0
    max_bytes: int = 25 * 1024 * 1024
    ca_file: str | Path | None = None
    idle_seconds: float = 25 * 60
    timeout: float = 60.0
    batch_size: int = 20
    reconnect_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}, not {self.security!r}")

    def __repr__(self) -> str:
        return (
            f"ImapSettings(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"user={self.user!r}, password='***', mailbox={self.mailbox!r}, "
            f"processed_folder={self.processed_folder!r}, "
            f"quarantine_folder={self.quarantine_folder!r}, ca_file={self.ca_file!r})"
        )


def make_key(mailbox: str, uidvalidity: int, uid: int) -> str:
    """Return the intake key of one message."""
    return f"imap:{mailbox}:{uidvalidity}:{uid}"


def parse_key(key: str) -> tuple[str, int, int]:
    """Return (mailbox, uidvalidity, uid) of a key made by `make_key`."""
    prefix, _, rest = key.partition(":")
    mailbox, uidvalidity, uid = rest.rsplit(":", 2)
    if prefix != "imap" or not mailbox:
        raise ValueError(f"not an IMAP intake key: {key!r}")
    return mailbox, int(uidvalidity), int(uid)


class ImapIntake:
    """`Intake` on one IMAP mailbox; unacknowledged messages simply stay in it."""

    def __init__(self, settings: ImapSettings) -> None:
        self._s = settings
        self._client: Any = None  # IMAPClient, untyped upstream
        self._selected: tuple[str, int] | None = None  # (mailbox, uidvalidity)
        self._folders: set[str] = set()
        self._seen: tuple[int, int] = (0, 1)  # (uidvalidity, next uid not yet yielded)
        self._idling = False  # inside IDLE: the session cannot take commands

    def __repr__(self) -> str:
        return f"ImapIntake({self._s!r})"

    # ------------------------------------------------------------------ connection
    def _connect(self) -> Any:
        s = self._s
        ctx = ssl.create_default_context(cafile=s.ca_file) if s.security != "none" else None
        client = None
        try:
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "ssl", ssl_context=ctx, timeout=s.timeout
            )
            if s.security == "starttls":
                client.starttls(ctx)
            client.login(s.user, s.password)
        except ssl.SSLCertVerificationError as exc:
            _shutdown(client)
            raise ImapRefused(
                f"TLS certificate of {s.host}:{s.port} is not trusted ({exc.verify_message}); "
                f"check ca_file={s.ca_file!r}"
            ) from exc
        except LoginError as exc:
            _shutdown(client)
            raise ImapRefused(f"IMAP login as {s.user!r} at {s.host}:{s.port} refused") from exc
        except BaseException:
            _shutdown(client)
            raise
        log.info("imap_connected", host=s.host, port=s.port, security=s.security, user=s.user)
        return client

    def check(self) -> str:
        """Connect, TLS, log in and select the mailbox once, no retries; report or raise.

        ImapRefused (login, certificate, missing mailbox) or ImapUnavailable (network).
        """
        s = self._s
        try:
            client = self._connect()
        except NETWORK_ERRORS as exc:
            raise ImapUnavailable(f"IMAP {s.host}:{s.port} unreachable: {exc}") from exc
        try:
            info = client.select_folder(s.mailbox, readonly=True)
        except IMAPClientError as exc:
            raise ImapRefused(f"IMAP mailbox {s.mailbox!r} cannot be selected: {exc}") from exc
        except NETWORK_ERRORS as exc:
            raise ImapUnavailable(f"IMAP {s.host}:{s.port} dropped: {exc}") from exc
        finally:
            _shutdown(client)
        count = int(info.get(b"EXISTS", 0))
        return f"{s.host}:{s.port} ({s.security}) {s.mailbox}: {count} messages"

    def _conn(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _drop(self) -> None:
        _shutdown(self._client)
        self._client, self._selected, self._idling = None, None, False
        self._folders.clear()

    def _call(self, op: Callable[[Any], T]) -> T:
        """Return op(client), reconnecting with capped exponential backoff on network errors.

        The first retry is immediate; after `reconnect_attempts` failures: ImapUnavailable.
        """
        s = self._s
        attempt = 0
        while True:
            try:
                return op(self._conn())
            except NETWORK_ERRORS as exc:
                self._drop()
                attempt += 1
                if attempt > s.reconnect_attempts:
                    log.error("imap_unavailable", host=s.host, port=s.port, error=repr(exc))
                    raise ImapUnavailable(f"IMAP {s.host}:{s.port} unreachable: {exc}") from exc
                delay = 0.0 if attempt == 1 else s.backoff_initial * 2 ** (attempt - 2)
                delay = min(delay, s.backoff_max)
                log.warning("imap_reconnect", attempt=attempt, delay_s=delay, error=repr(exc))
                time.sleep(delay)  # backoff, not synchronisation

    def _select(self, client: Any, mailbox: str, *, fresh: bool = False) -> int:
        """Return the UIDVALIDITY of `mailbox`, selecting it when needed."""
        if fresh or self._selected is None or self._selected[0] != mailbox:
            info = client.select_folder(mailbox)
            self._selected = (mailbox, int(info[b"UIDVALIDITY"]))
        return self._selected[1]

    def _ensure_folder(self, client: Any, folder: str) -> None:
        if folder in self._folders:
            return
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
                log.info("imap_folder_created", folder=folder)
            except IMAPClientError:  # created meanwhile by someone else
                if not client.folder_exists(folder):
                    raise
        self._folders.add(folder)

    # ------------------------------------------------------------------ Intake
    def fetch_new(
        self, known: Callable[[str], bool] | None = None
    ) -> Iterator[RawMessage | OversizedMessage]:
        """Yield every message in the mailbox, oldest UID first, bodies in batches.

        UIDs whose key `known` says is archived already are skipped without a FETCH.
        """
        mailbox = self._s.mailbox
        uidvalidity, sizes = self._call(lambda c: self._list(c, mailbox))
        uids = sorted(sizes)
        if known is not None:
            skipped = {u for u in uids if known(make_key(mailbox, uidvalidity, u))}
            if skipped:
                self._seen = (uidvalidity, max(self._seen[1], max(skipped) + 1))
                uids = [u for u in uids if u not in skipped]
        step = max(1, self._s.batch_size)
        for i in range(0, len(uids), step):
            batch = uids[i : i + step]
            got = self._call(
                partial(
                    self._fetch_batch,
                    mailbox=mailbox,
                    uidvalidity=uidvalidity,
                    batch=batch,
                    sizes=sizes,
                )
            )
            if got is None:
                log.warning("imap_uidvalidity_changed", mailbox=mailbox, old=uidvalidity)
                return
            for msg in got:
                self._seen = (uidvalidity, max(self._seen[1], parse_key(msg.key)[2] + 1))
                yield msg

    def _list(self, client: Any, mailbox: str) -> tuple[int, dict[int, int]]:
        uidvalidity = self._select(client, mailbox, fresh=True)
        if self._seen[0] != uidvalidity:
            self._seen = (uidvalidity, 1)
        uids = [int(u) for u in client.search("ALL")]
        sizes: dict[int, int] = {}
        for i in range(0, len(uids), SIZE_FETCH_CHUNK):
            resp = client.fetch(uids[i : i + SIZE_FETCH_CHUNK], [b"RFC822.SIZE"])
            sizes.update({int(u): int(d[b"RFC822.SIZE"]) for u, d in resp.items()})
        return uidvalidity, sizes

    def _fetch_batch(
        self, client: Any, mailbox: str, uidvalidity: int, batch: list[int], sizes: dict[int, int]
    ) -> list[RawMessage | OversizedMessage] | None:
        if self._select(client, mailbox) != uidvalidity:
            return None
        small = [u for u in batch if sizes[u] <= self._s.max_bytes]
        big = [u for u in batch if sizes[u] > self._s.max_bytes]
        bodies = client.fetch(small, [b"BODY.PEEK[]"]) if small else {}
        heads = client.fetch(big, [_HEADER_ITEM]) if big else {}
        out: list[RawMessage | OversizedMessage] = []
        for uid in batch:  # a UID missing from the answer was expunged meanwhile
            key = make_key(mailbox, uidvalidity, uid)
            if uid in bodies and b"BODY[]" in bodies[uid]:
                data = bytes(bodies[uid][b"BODY[]"])
                out.append(RawMessage(key=key, data=data, size=len(data)))
            elif uid in heads:
                head = next(
                    (bytes(v) for k, v in heads[uid].items() if k.startswith(b"BODY[")), b""
                )
                log.warning("imap_message_oversized", key=key, size=sizes[uid])
                out.append(OversizedMessage(key=key, size=sizes[uid], headers=head[:HEADER_CAP]))
        return out

    def acknowledge(self, key: str, *, quarantine: bool = False, reason: str = "") -> None:
        """Move the message to the processed (or quarantine) folder; a no-op when gone."""
        mailbox, uidvalidity, uid = parse_key(key)
        folder = self._s.quarantine_folder if quarantine else self._s.processed_folder
        if self._call(lambda c: self._move(c, mailbox, uidvalidity, uid, folder)):
            event = "imap_message_quarantined" if quarantine else "imap_message_acknowledged"
            log.info(event, key=key, folder=folder, reason=reason)

    def _move(self, client: Any, mailbox: str, uidvalidity: int, uid: int, folder: str) -> bool:
        # SELECT again: a mailbox deleted and recreated under an open session can keep
        # the old UIDVALIDITY in that session, and its UIDs now name other messages
        current = self._select(client, mailbox, fresh=True)
        if current != uidvalidity:
            log.warning(
                "imap_ack_uidvalidity_changed",
                key=make_key(mailbox, uidvalidity, uid),
                uidvalidity=current,
            )
            return False
        self._ensure_folder(client, folder)
        if client.has_capability("MOVE"):
            client.move([uid], folder)
        else:
            client.copy([uid], folder)
            client.add_flags([uid], [DELETED])
            if client.has_capability("UIDPLUS"):
                client.uid_expunge([uid])
            else:  # expunges every \Deleted message of the mailbox
                client.expunge()
        return True

    def wait(self, timeout: float) -> bool:
        """Return True as soon as a message not yet yielded is there, False at timeout."""
        deadline = time.monotonic() + timeout
        return self._call(lambda c: self._wait_on(c, deadline))

    def _wait_on(self, client: Any, deadline: float) -> bool:
        if self._has_unseen(client):
            return True
        if client.has_capability("IDLE"):
            return self._idle(client, deadline)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self._s.poll_seconds, left))  # the poll interval
            if self._has_unseen(client):
                return True
        return False

    def _has_unseen(self, client: Any) -> bool:
        uidvalidity = self._select(client, self._s.mailbox)
        first = self._seen[1] if self._seen[0] == uidvalidity else 1
        client.noop()  # Dovecot shows new mail to a session at a sync, not inside SEARCH
        return any(int(u) >= first for u in client.search(["UID", f"{first}:*"]))

    def _idle(self, client: Any, deadline: float) -> bool:
        while True:
            client.idle()
            self._idling = True
            renew = time.monotonic() + self._s.idle_seconds
            log.debug("imap_idle_started", mailbox=self._s.mailbox)
            result = _idle_until(client, min(deadline, renew))
            client.idle_done()
            self._idling = False
            if result or time.monotonic() >= deadline:
                log.debug("imap_idle_done", new_mail=result)
                return result

    def close(self) -> None:
        """Log out (best effort) and forget the connection; interrupted in IDLE: just drop it."""
        if self._client is not None and not self._idling:
            try:
                self._client.logout()
                self._client = None
            except (*NETWORK_ERRORS, IMAPClientError):
                log.debug("imap_logout_failed")
        self._drop()


def _idle_until(client: Any, until: float) -> bool:
    """Return True on EXISTS/RECENT during IDLE, False when `until` passes."""
    while (left := until - time.monotonic()) > 0:
        for resp in client.idle_check(timeout=left):
            if isinstance(resp, tuple) and len(resp) > 1 and resp[1] in (b"EXISTS", b"RECENT"):
                return True
    return False


def _shutdown(client: Any) -> None:
    if client is None:
        return
    try:
        client.shutdown()
    except (*NETWORK_ERRORS, IMAPClientError):
        log.debug("imap_shutdown_failed")
