"""The intake seam: where raw inbound messages come from, whatever the mailbox kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RawMessage:
    """One inbound message as the mailbox holds it, not yet archived.

    `key` is stable for the life of the message in its mailbox and unique across
    mailboxes: ``maildir:<unique name>`` or ``imap:<mailbox>:<uidvalidity>:<uid>``.
    """

    key: str
    data: bytes
    size: int


@dataclass(frozen=True)
class OversizedMessage:
    """A message the mailbox announced as larger than the limit; never downloaded."""

    key: str
    size: int
    headers: bytes  # the header block only, for a polite refusal


class Intake(Protocol):
    """A mailbox mailbot reads. Messages stay until acknowledged."""

    def fetch_new(
        self, known: Callable[[str], bool] | None = None
    ) -> Iterator[RawMessage | OversizedMessage]:
        """Yield every message not yet acknowledged, oldest first.

        Messages whose key `known` says is archived already are skipped, not downloaded.
        """
        ...

    def acknowledge(self, key: str, *, quarantine: bool = False, reason: str = "") -> None:
        """Move the message out of the inbox (processed, or quarantine with reason)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until new mail may be there or timeout; True when something arrived."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
