"""The delivery seam: hand one finished message to the next hop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DeliveryError(Exception):
    """Delivery failed. `permanent` = the next hop refused for good (5xx)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class DeliveryUnknown(DeliveryError):
    """The connection broke after the message data was sent: it may have been delivered.

    Transient: the outbox retries with the same Message-ID (the receiving side may drop
    the duplicate) and records that the outcome was unknown.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False)


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope of one outgoing message."""

    mail_from: str
    recipients: tuple[str, ...]
    message_id: str


class Transport(Protocol):
    """Where outgoing mail goes: a local Maildir or an SMTP server."""

    def deliver(self, data: bytes, envelope: Envelope) -> None:
        """Deliver or raise DeliveryError; must be safe to call again for the same id."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
