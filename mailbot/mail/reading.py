"""One inbound message read with bounded work: measured raw, then parsed in the parse worker.

Every step that decodes attacker bytes — the header parse, the MIME walk, charset decoding,
zip unpacking — happens inside `parse_message`, and `parse_message` runs only here, in the
guarded parse worker (mailbot.guard: a child under RLIMIT_AS with a deadline), after the
header block was measured on the raw bytes (mailbot.mail.measure). The attached files are
parsed later by the handlers, in the same worker. What cannot be read comes back as an
`Unreadable` value, never as an exception and never as a dead daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from mailbot.config import Limits
from mailbot.guard import Budget, guarded
from mailbot.mail.measure import Excess, HeaderExcess, HeaderLimits, RawFacts, measure_headers
from mailbot.mail.message import ParsedMessage, parse_result
from mailbot.parsers.problems import Location, ProblemCode


@dataclass(frozen=True)
class Unreadable:
    """Why a message was not read: `problem` picks the sentence of mail/unreadable.txt.j2."""

    problem: str  # Excess value, or "damaged" / "time" / "memory" (the parse worker's verdict)
    reason: str  # one English line: logs, the inbound row, the quarantine folder
    params: dict[str, str]


def header_limits(lim: Limits) -> HeaderLimits:
    return HeaderLimits(
        total_bytes=lim.max_header_block_bytes,
        header_bytes=lim.max_header_bytes,
        encoded_words=lim.max_encoded_words,
        count=lim.max_headers,
    )


def budget(lim: Limits) -> Budget:
    """The same budget as the attached files' parses: one parse worker serves both."""
    return Budget(seconds=lim.parse_seconds, memory_mb=lim.parse_memory_mb)


def read_message(
    raw: bytes, lim: Limits, *, headers_only: bool = False
) -> ParsedMessage | Unreadable:
    """The parsed message, or why it was not read (headers over a limit, time, memory).

    A bug in the parser (an exception) is raised as mailbot.guard.GuardedParseError, for the
    per-message boundary to count as a failed attempt.
    """
    excess = measure_headers(raw, header_limits(lim))
    if excess is not None:
        return _over(excess)
    result = guarded(
        partial(parse_result, raw, headers_only=headers_only), Location(file="message"), budget(lim)
    )
    if result.value is not None:
        return result.value
    problem = next(iter(result.problems), None)
    reason = problem.params.get("reason", "") if problem is not None else ""
    if problem is not None and problem.code == ProblemCode.file_damaged:
        return Unreadable("damaged", "the mail parser gave up (structure nested too deep)", {})
    if problem is not None and problem.code == ProblemCode.file_too_complex and reason == "time":
        return Unreadable(
            "time",
            f"parse did not finish within {lim.parse_seconds:g} s",
            {"seconds": f"{lim.parse_seconds:g}"},
        )
    return Unreadable(
        "memory",
        f"parse went over its {lim.parse_memory_mb} MB memory cap (or crashed)",
        {"memory_mb": str(lim.parse_memory_mb)},
    )


def unread_message(facts: RawFacts) -> ParsedMessage:
    """A message we did not parse, as the little its raw lines tell (sender, Message-ID)."""
    return ParsedMessage(
        message_id=facts.message_id,
        from_addr=facts.from_addr,
        from_name="",
        reply_to="",
        subject="",
        in_reply_to="",
        references=(),
        headers={},
        content_type="",
        text="",
        attachments=(),
        # the plain address raw_facts read, so identity.address_of gives the same sender
        from_headers=(facts.from_addr,) if facts.from_addr else (),
    )


def _over(excess: HeaderExcess) -> Unreadable:
    limit = excess.limit
    shown = f"{limit // 1024}" if excess.what in (Excess.total, Excess.header) else str(limit)
    return Unreadable(excess.what.value, excess.describe(), {"name": excess.name, "limit": shown})
