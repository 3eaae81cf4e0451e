"""Who sent a message, and whether our own receiving server vouches for it.

The one identity rule of mailbot (README «Who may do what by e-mail»): the sender is the
single From mailbox as RFC 5322 parses it; several From headers, several mailboxes or an
unparsable From give no sender at all, which is never a known client and never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.mail.classify import is_authenticated
from mailbot.mail.message import ParsedMessage


@dataclass(frozen=True)
class Sender:
    """The sender as far as we can prove it."""

    address: str  # the single From mailbox, lower-cased; "" when there is none we can trust
    authenticated: bool  # our authserv-id reports dmarc=pass or aligned dkim=pass for it

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def sender_of(msg: ParsedMessage, authserv_id: str) -> Sender:
    """The message's sender (placeholder rule until the RFC 5322/8601 readers land)."""
    address = msg.from_addr
    return Sender(
        address=address, authenticated=bool(address) and is_authenticated(msg, authserv_id)
    )
