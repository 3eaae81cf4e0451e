"""Named step boundaries where a test can SIGKILL the process (MAILBOT_CRASH_AT=step).

Used by the crash tests to prove that a kill between any two steps, plus a restart,
gives the same result as no crash. Costs one dict lookup when unset.
"""

from __future__ import annotations

import os
import signal

STEPS = (
    "after_archive",  # raw bytes + inbound row committed, message still in the mailbox
    "after_process",  # replies/invoice committed to the outbox, nothing sent
    "after_acknowledge",  # message moved out of the mailbox, row not yet marked
    "after_deliver",  # mail handed to the transport, not yet marked sent
    "after_payment",  # payment committed, codes not issued yet
    "after_issue",  # codes + credentials + deliverables mail committed, not sent
)


def crash_point(step: str) -> None:
    """Kill this process with SIGKILL when MAILBOT_CRASH_AT names `step`."""
    if os.environ.get("MAILBOT_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
