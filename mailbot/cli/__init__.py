"""The `mailbot` command: thin wrappers over the same functions the daemon runs.

Each module of this package owns one area's commands; importing it registers them.
"""

from __future__ import annotations

from mailbot.cli import (
    check,  # noqa: F401 - registers its commands
    clients,  # noqa: F401 - registers its commands
    clients_balance,  # noqa: F401 - registers its commands
    clients_mail,  # noqa: F401 - registers its commands
    forms,  # noqa: F401 - registers its commands
    invoices,  # noqa: F401 - registers its commands
    ops,  # noqa: F401 - registers its commands
    outbox,  # noqa: F401 - registers its commands
    payments,  # noqa: F401 - registers its commands
    pool,  # noqa: F401 - registers its commands
    records,  # noqa: F401 - registers its commands
    report,  # noqa: F401 - registers its commands
    web,  # noqa: F401 - registers its commands
)
from mailbot.cli.base import main

__all__ = ["main"]
