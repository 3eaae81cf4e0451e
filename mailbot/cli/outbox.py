"""Held outgoing mail (over a cap on mail to others): list, release, drop."""

from __future__ import annotations

from typing import Annotated

import typer

from mailbot.cli.base import JsonOpt, fail, out, print_rows, runtime, stamp
from mailbot.cli.records import outbox_app
from mailbot.mail import caps
from mailbot.storage.db import transaction


@outbox_app.command("held")
def outbox_held(as_json: JsonOpt = False) -> None:
    """Mail held by a cap on mail to others, oldest first, with the reason."""
    rt = runtime()
    with transaction(rt.engine) as session:
        rows = [
            (
                m.id,
                m.kind,
                ", ".join(m.recipients),
                stamp(m.created_at, as_json=as_json),
                m.held_reason,
            )
            for m in caps.held(session)
        ]
    if rows or as_json:
        print_rows(("id", "kind", "to", "queued", "why held"), rows, as_json=as_json)
    else:
        out.print("no held mail")


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
