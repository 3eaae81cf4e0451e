"""Attacker bytes measured before any parse that can go quadratic, and the few facts read raw.

The email package's header parser is quadratic (or worse) in the number of RFC 2047 encoded
words of one header: a Subject of 2 MB of encoded words took the daemon past 23 GB. So the
top header block is first walked here, on the raw bytes, in linear time and without
decoding anything: total header bytes, each header's bytes, «=?» per header (an upper bound
of its encoded words) and the number of headers. A message past a limit is never given to
`email` at all; `raw_facts` then reads the sender (to tell them) with plain regular
expressions over the raw lines.

Hand-written because no library measures a header block without parsing it; the walk
splits lines and ends the block exactly as the stdlib's feedparser does (headerRE, NLCRE),
so what is measured is what `email` would read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

KB = 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
# email.feedparser.headerRE: a header line, a continuation, or the mbox «From » line
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_UNIX_FROM = b"\x00unixfrom"
_ANGLE = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>\s*$")
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+"
)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,500}>")
_READ_MAX = 998 * 4  # a header we read raw: one folded line's worth, a few times over
_ROBOTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply")


@dataclass(frozen=True)
class HeaderLimits:
    """What one inbound message's top header block may hold before we refuse to parse it.

    Defaults, against what real mail needs: a header block is 3-20 KB (50 KB for mail that
    crossed many Exchange hops; Exim refuses more than 1 MB by default); one header is under
    a few KB (a DKIM signature ~1 KB; Postfix truncates a header at 100 KB); a Subject of
    1,000 Cyrillic letters is ~40 encoded words; a message has 20-100 headers (Postfix
    refuses more than 50 Received lines as a loop). Each is a few times that, and small
    enough that the worst legal header costs the stdlib parser milliseconds.
    """

    total_bytes: int = 256 * KB
    header_bytes: int = 64 * KB
    encoded_words: int = 200
    count: int = 1000


class Excess(StrEnum):
    total = "total"
    header = "header"
    encoded_words = "encoded_words"
    headers = "headers"


@dataclass(frozen=True)
class HeaderExcess:
    """The first limit the header block is over: `measured` is at least that much."""

    what: Excess
    name: str  # the header's name, printable ASCII, ≤ 40 characters ('' for total/count)
    measured: int
    limit: int

    def describe(self) -> str:
        """One English line for logs, the inbound row and the quarantine folder."""
        where = f" ({self.name})" if self.name else ""
        return {
            Excess.total: f"header block over {self.limit} bytes",
            Excess.header: f"one header{where} over {self.limit} bytes",
            Excess.encoded_words: f"one header{where} over {self.limit} encoded words",
            Excess.headers: f"more than {self.limit} headers",
        }[self.what] + " (not parsed)"


def fields(raw: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(lower-case name, start, end) of each field of the top header block, in order.

    Linear in the header block; the only copies are the names (≤ 80 bytes). The block ends
    at an empty line or at a line that is neither a header nor a continuation, as in
    `email.feedparser`. A continuation before any header counts as a field named b"".
    """
    pos, n = 0, len(raw)
    name: bytes | None = None
    start = 0
    while pos < n:
        m = _LINE_END.search(raw, pos)
        end, nxt = (m.start(), m.end()) if m else (n, n)
        if end == pos:
            break
        if raw[pos] in (9, 32):
            if name is None:
                name, start = b"", pos
        else:
            hm = _HEADER_LINE.match(raw, pos, end)
            if hm is None:
                break
            if name is not None:
                yield name, start, pos
            head = raw[pos : min(hm.end(), pos + 80)]
            name = _UNIX_FROM if head == b"From " else head.rstrip(b":").strip().lower()
            start = pos
        pos = nxt
    if name is not None:
        yield name, start, pos


def measure_headers(raw: bytes, limits: HeaderLimits) -> HeaderExcess | None:
    """The first limit the top header block of `raw` is over, or None when it is within all."""
    for count, (name, start, end) in enumerate(fields(raw), 1):
        label = name.decode("ascii", "replace")[:40]
        if end > limits.total_bytes:
            return HeaderExcess(Excess.total, "", end, limits.total_bytes)
        if count > limits.count:
            return HeaderExcess(Excess.headers, "", count, limits.count)
        if end - start > limits.header_bytes:
            return HeaderExcess(Excess.header, label, end - start, limits.header_bytes)
        words = raw.count(b"=?", start, end)
        if words > limits.encoded_words:
            return HeaderExcess(Excess.encoded_words, label, words, limits.encoded_words)
    return None


@dataclass(frozen=True)
class RawFacts:
    """What can be read from a message without parsing it: enough to answer, or not."""

    from_addr: str  # lower-case; '' when there is no single short From with a plain address
    message_id: str
    automatic: bool  # a robot's mail (auto-submitted, list, bounce): never answered


def raw_facts(raw: bytes) -> RawFacts:
    """The sender, Message-ID and robot markers of `raw`, read line by line, never decoded.

    Only headers no longer than a few folded lines are read; one From header exactly, and
    only its angle address (or a bare address), never an RFC 2047 display name.
    """
    values: dict[bytes, list[str]] = {}
    wanted = {b"from", b"message-id", b"auto-submitted", b"precedence", b"list-id"}
    wanted |= {b"return-path", b"content-type"}
    for name, start, end in fields(raw):
        if name in wanted:
            text = raw[start : min(end, start + _READ_MAX)].decode("ascii", "replace")
            value = re.sub(r"[\r\n]+[ \t]*", " ", text.partition(":")[2]).strip()
            values.setdefault(name, []).append(value if end - start <= _READ_MAX else "\x00")
    senders = values.get(b"from", [])
    addr = _sender(senders[0]) if len(senders) == 1 else ""
    ids = [m for v in values.get(b"message-id", [])[:1] for m in _MESSAGE_ID.findall(v)]

    def first(name: bytes) -> str:
        return (values.get(name) or [""])[0].lower()

    automatic = (
        first(b"auto-submitted") not in ("", "no")
        or first(b"precedence") in ("bulk", "junk", "list")
        or b"list-id" in values
        or first(b"return-path") == "<>"
        or first(b"content-type").startswith("multipart/report")
        or addr.partition("@")[0] in _ROBOTS
    )
    return RawFacts(from_addr=addr, message_id=(ids or [""])[0], automatic=automatic)


def _sender(value: str) -> str:
    angle = _ANGLE.search(value)
    candidate = angle.group(1) if angle else value.strip()
    return candidate.lower() if _ADDRESS.fullmatch(candidate) else ""
