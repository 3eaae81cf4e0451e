"""Held outgoing mail (over a cap on mail to others): list, release, drop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailbot.cli.base import fail, out, runtime
from mailbot.cli.records import outbox_app
from mailbot.mail import caps
from mailbot.storage.db import transaction


@outbox_app.command("held")
def outbox_held() -> None:
    """Mail held by a cap on mail to others, oldest first, with the reason."""
    rt = runtime()
    table = Table("id", "kind", "to", "queued", "why held")
    with transaction(rt.engine) as session:
        for m in caps.held(session):
            table.add_row(
                str(m.id),
                m.kind,
                ", ".join(m.recipients),
                f"{m.created_at:%Y-%m-%d %H:%M}",
                m.held_reason,
            )
    out.print(table if table.row_count else "no held mail")


@outbox_app.command("release")
def outbox_release(outbox_id: Annotated[int, typer.Argument(help="outgoing mail id")]) -> None:
    """Send a held mail (it goes out on the next pass)."""
    rt = runtime()
    with transaction(rt.engine) as session:
        error = caps.release(session, outbox_id, now=rt.clock())
    if error:
        fail(error)
    out.print(f"outgoing mail {outbox_id} released")


@outbox_app.command("drop")
def outbox_drop(
    outbox_id: Annotated[int, typer.Argument(help="outgoing mail id")],
    reason: Annotated[str, typer.Option("--reason", help="why it is never sent")],
) -> None:
    """Never send a held mail; it stays on record with the reason."""
    rt = runtime()
    with transaction(rt.engine) as session:
        error = caps.drop(session, outbox_id, reason=reason, now=rt.clock())
    if error:
        fail(error)
    out.print(f"outgoing mail {outbox_id} dropped: {reason}")
