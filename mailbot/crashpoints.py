"""Named step boundaries where a test can SIGKILL the process (MAILBOT_CRASH_AT).

Used by the crash tests to prove that a kill between any two steps, plus a restart, gives
the same result as no crash. The switch names one or more steps, comma-separated:

    MAILBOT_CRASH_AT=after_process        the first time the step is reached
    MAILBOT_CRASH_AT=after_process@7      the 7th time it is reached in this process
    MAILBOT_CRASH_AT=after_fetch@3,after_deliver@2   whichever comes first
    MAILBOT_CRASH_AT=while_processing~POISON   only where the step is about something
                                          holding "POISON" (a poison message's subject)

Counts are per process: a restarted daemon counts from zero again. Unset, a crash point
costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "MAILBOT_CRASH_AT"
STEPS = (
    "after_fetch",  # a message read from the mailbox, nothing of it stored yet
    "after_archive",  # raw bytes + inbound row committed, message still in the mailbox
    "after_claim",  # inbound row leased by this process, its processing not begun
    "after_process",  # replies/invoice (or a mailed statement's payments) committed, not sent
    "after_move",  # message moved out of the mailbox, its row not yet marked acknowledged
    "after_acknowledge",  # message moved and its row marked; the next one not yet moved
    "after_deliver",  # mail handed to the transport, not yet marked sent
    "after_payment",  # payment committed by the CLI (pay, import), codes not issued yet
    "during_allocation",  # a block of codes taken and inserted, the transaction not committed
    "after_allocate",  # codes of one paid application committed, its deliverables not yet
    "after_issue",  # codes + credentials + deliverables mail committed, not sent
)

# Steps meant for `~TEXT` (one item's fault, not a boundary every workload crosses): the
# crash matrix does not walk them.
TARGETED = ("while_processing",)  # one message's processing begun (about: its subject)

_parsed: dict[str, dict[str, int]] = {}  # raw value → step → the count that kills
_about: dict[str, dict[str, str]] = {}  # raw value → step → text its subject must hold
_reached: dict[str, int] = {}  # step → times reached in this process (named steps only)


def crash_point(step: str, about: str = "") -> None:
    """Kill this process with SIGKILL when MAILBOT_CRASH_AT names `step` (at this count).

    A step named as `step~TEXT` counts (and kills) only where `about` holds TEXT.
    """
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    targets = _parsed.get(spec)
    if targets is None:
        targets = _parsed[spec] = parse(spec)
        _about[spec] = parse_about(spec)
    at = targets.get(step)
    if at is None:
        return
    needle = _about[spec].get(step)
    if needle is not None and needle not in about:
        return
    _reached[step] = seen = _reached.get(step, 0) + 1
    if seen == at:
        os.kill(os.getpid(), signal.SIGKILL)


def parse_about(spec: str) -> dict[str, str]:
    """Return step → TEXT for the items written `step[@N]~TEXT`."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        head, sep, text = item.partition("~")
        if sep:
            out[head.partition("@")[0]] = text
    return out


def parse(spec: str) -> dict[str, int]:
    """Return step → count for `step[@N][~TEXT],…`; a bare step means @1. ValueError when
    malformed."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        item = item.partition("~")[0]
        step, sep, count = item.rpartition("@")
        if not sep:
            step, count = item, "1"
        if not step or not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise ValueError(f"{VARIABLE}: {item!r} is not STEP or STEP@N (N ≥ 1)")
        out[step] = int(count)
    return out
