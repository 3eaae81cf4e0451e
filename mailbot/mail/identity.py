"""Who sent a message, and whether our own receiving server vouches for it.

The one identity rule of mailbot (README «Who may do what by e-mail»):

* The sender is the single From mailbox as RFC 5322 parses it (the stdlib's
  `email.headerregistry`, the parser `policy.default` uses). Several From fields, several
  mailboxes, a group, an empty or unparsable From, or one the parser had to repair
  (anything but obsolete-but-legal syntax) give no sender at all: `Sender.address == ""`,
  which is never a known client and never trusted. A display name is only a name: an
  address inside it, encoded or not, is never read as the address.
* Authenticated means our receiving server (`[mail] authserv_id`) says, in the
  Authentication-Results field it prepended (`mailbot.mail.authresults.trusted`),
  dmarc=pass for the From domain, or dkim=pass by a signer aligned with it (same
  organisational domain). With no authserv-id configured, or no such block (the Maildir
  default), nothing is authenticated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import errors
from email.headerregistry import HeaderRegistry
from typing import TYPE_CHECKING

from mailbot.mail import authresults

if TYPE_CHECKING:
    from mailbot.mail.message import ParsedMessage

_REGISTRY = HeaderRegistry()
_HARMLESS_DEFECTS = (errors.ObsoleteHeaderDefect,)  # «Ivanov I.I. <a@b>»: legal obs-phrase
_CONTROL = re.compile(r"[\x00-\x20\x7f\ufffd]")
MAX_FROM_CHARS = 2000  # a real From is one short line; a longer one is no sender, unparsed


@dataclass(frozen=True)
class Sender:
    """The sender as far as we can prove it."""

    address: str  # the single From mailbox, lower-cased; "" when there is none we can trust
    authenticated: bool  # our authserv-id reports dmarc=pass or aligned dkim=pass for it

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def from_mailbox(values: Sequence[str]) -> tuple[str, str]:
    """(display name, lower-case address) of the one From mailbox in `values`, or ("", "").

    `values` are the raw texts of every From field of the message, in order.
    """
    if len(values) != 1 or len(values[0]) > MAX_FROM_CHARS:
        return "", ""
    raw = re.sub(r"\r?\n(?=[ \t])", "", values[0])
    raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        header = _REGISTRY("from", raw)
        groups = header.groups  # type: ignore[attr-defined]  # AddressHeader's
        defects = header.defects
    except (errors.HeaderParseError, IndexError, ValueError, TypeError, AttributeError):
        return "", ""  # the stdlib parser gives up on some malformed lists by raising
    if any(not isinstance(d, _HARMLESS_DEFECTS) for d in defects):
        return "", ""
    if len(groups) != 1 or groups[0].display_name is not None:
        return "", ""  # several mailboxes, or a group (even of one)
    mailboxes = groups[0].addresses
    if len(mailboxes) != 1:
        return "", ""
    box = mailboxes[0]
    address = str(box.addr_spec)
    if not box.username or not box.domain or _CONTROL.search(address):
        return "", ""
    return str(box.display_name or ""), address.lower()


def authenticated_for(msg: ParsedMessage, authserv_id: str, domain: str, *, exact: bool) -> bool:
    """Our server vouches for `domain` in this message (exact: that very domain)."""
    field = authresults.trusted(msg.header_fields, authserv_id)
    return authresults.authenticated_for(field, domain, exact=exact)


def sender_of(msg: ParsedMessage, authserv_id: str) -> Sender:
    """The message's sender under the one identity rule (module doc)."""
    address = address_of(msg)
    if not address:
        return Sender(address="", authenticated=False)
    domain = address.rpartition("@")[2]
    return Sender(
        address=address,
        authenticated=authenticated_for(msg, authserv_id, domain, exact=False),
    )


def address_of(msg: ParsedMessage) -> str:
    """The sender's address under the one rule, where only who (not how proven) matters."""
    return from_mailbox(msg.from_headers)[1]
