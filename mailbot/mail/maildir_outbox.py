"""Maildir transport: "sends" a message by writing it into `root/new/` (the no-network default).

The file name is derived from the Message-ID, so delivering the same message again
rewrites the same file: at most one copy per Message-ID.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import structlog

from mailbot.mail.transport import DeliveryError, Envelope

log = structlog.get_logger()


def outbox_name(message_id: str, data: bytes) -> str:
    """Return `<sha256 prefix>.eml` of the Message-ID (of the bytes when there is none)."""
    basis = message_id.strip().encode("utf-8") if message_id.strip() else data
    return hashlib.sha256(basis).hexdigest()[:32] + ".eml"


class MaildirTransport:
    """`Transport` writing each message to `root/tmp`, fsync, then rename into `root/new`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.root)!r})"

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        """Write the message as `new/<name>`; the same Message-ID again leaves one file."""
        name = outbox_name(envelope.message_id, data)
        tmp = self.root / "tmp" / name
        dest = self.root / "new" / name
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
            fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryError(f"cannot write {dest}: {exc}", permanent=False) from exc
        log.info("mail_delivered_maildir", message_id=envelope.message_id, file=name)

    def close(self) -> None:
        """Nothing to release."""
