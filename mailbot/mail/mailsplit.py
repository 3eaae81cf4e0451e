"""Splitting a mail over `[limits] max_outgoing_bytes` into numbered parts (pure).

Sizes are what the attachments cost once composed: base64 turns 57 bytes into a 76-char
line plus CRLF, and each attachment adds its MIME headers (the RFC 2231 file name of a
Cyrillic name is long). Attachments keep their order; one that alone exceeds the budget
gets a part of its own (a file cannot be cut; the image zips are made to fit instead).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailbot.mail.render import FileAttachment

ATTACHMENT_HEADERS = 700  # bytes of MIME headers and boundary around one attachment
TEXT_ALLOWANCE = 8192  # headers, text part and boundaries beyond the measured text


def encoded_size(raw: int) -> int:
    """Bytes that `raw` bytes take base64-encoded in 76-char lines ending in CRLF."""
    return -(-raw // 57) * 78


def attachment_cost(attachment: FileAttachment) -> int:
    return encoded_size(len(attachment.data)) + ATTACHMENT_HEADERS


def raw_capacity(budget: int) -> int:
    """The largest file size whose attachment cost fits in `budget` bytes."""
    return max(0, (budget - ATTACHMENT_HEADERS) // 78 * 57)


def part_budget(max_bytes: int, text_bytes: int) -> int:
    """Bytes left for attachments in one part whose text is `text_bytes` long."""
    return max(0, max_bytes - text_bytes - TEXT_ALLOWANCE)


def pack(attachments: Sequence[FileAttachment], budget: int) -> list[tuple[FileAttachment, ...]]:
    """Group attachments, in order, into as few parts as fit `budget` each (at least one)."""
    parts: list[list[FileAttachment]] = [[]]
    used = 0
    for attachment in attachments:
        cost = attachment_cost(attachment)
        if parts[-1] and used + cost > budget:
            parts.append([])
            used = 0
        parts[-1].append(attachment)
        used += cost
    return [tuple(p) for p in parts]


def part_subject(subject: str, number: int, total: int) -> str:
    """The subject with «(часть 2 из 3)» appended when the mail has several parts."""
    return subject if total == 1 else f"{subject} (часть {number} из {total})"
