"""What a delivery report says (pure): which of our Message-IDs, which recipients failed.

A report is believed about one of our outbox rows only when it names that row's Message-ID
(random, so only a server that saw the mail knows it) and one of that row's recipients
(handlers/correspondence.bounce). Recipients are read from the RFC 3464
message/delivery-status part: Final-Recipient / Original-Recipient of each block whose
Action is «failed» («delayed», «delivered», «relayed», «expanded» are not failures). A
report without such a part (old MTAs write prose) names a recipient by its address in angle
brackets anywhere in its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser

OUR_MESSAGE_ID = re.compile(rb"<[^<>\s]+\.mailbot@[^<>\s]+>")
_ANGLE_ADDRESS = re.compile(rb"<([^<>\s@]+@[^<>\s@]+)>")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")


@dataclass(frozen=True)
class DeliveryReport:
    message_ids: frozenset[str]  # our Message-IDs it names, anywhere in it
    failed: frozenset[str]  # lower-case recipients it reports as failed


def _address(value: str) -> str:
    """«rfc822; User@Example.test» → «user@example.test»."""
    kind, sep, addr = value.partition(";")
    if not sep or kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    return addr.strip().strip("<>").strip().lower()


def _blocks(msg: Message) -> list[Message]:
    out: list[Message] = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                out.extend(p for p in payload if isinstance(p, Message))
    return out


def read_report(raw: bytes) -> DeliveryReport:
    """The facts of a DSN or bounce; never raises on malformed mail."""
    ids = frozenset(m.decode("ascii", "replace") for m in OUR_MESSAGE_ID.findall(raw))
    try:
        blocks = _blocks(BytesParser(policy=policy.compat32).parsebytes(raw))
    except (ValueError, TypeError, IndexError, AttributeError, LookupError):
        blocks = []
    if not blocks:
        found = {m.decode("utf-8", "replace").lower() for m in _ANGLE_ADDRESS.findall(raw)}
        return DeliveryReport(ids, frozenset(found - {i.strip("<>").lower() for i in ids}))
    failed: set[str] = set()
    for block in blocks:
        if str(block.get("action", "")).strip().lower() != "failed":
            continue
        for name in _RECIPIENT_FIELDS:
            for value in block.get_all(name) or []:
                address = _address(str(value))
                if address:
                    failed.add(address)
    return DeliveryReport(ids, frozenset(failed))
