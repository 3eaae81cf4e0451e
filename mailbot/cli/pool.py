"""`mailbot pool status`: used and free codes per prefix, and who waits for codes."""

from __future__ import annotations

from sqlmodel import col, func, select

from mailbot.cli.base import JsonOpt, err, group, out, print_rows, runtime
from mailbot.issuance.pool import pool_states, sync_prefixes
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, ApplicationState, Barcode

pool_app = group("pool", "The barcode pool.")


@pool_app.command("status")
def pool_status(as_json: JsonOpt = False) -> None:
    """Used and free codes per prefix (the config's prefixes are applied first).

    With --json: one row per prefix; the totals and warnings go to stderr.
    """
    rt = runtime()
    threshold = rt.settings.pool_low_threshold
    with transaction(rt.engine) as session:
        refused = sync_prefixes(session, rt.settings.prefixes, now=rt.clock())
        states = pool_states(session)
        issued = session.exec(select(func.count(col(Barcode.id)))).one()
        waiting = session.exec(
            select(func.count(col(Application.id))).where(
                Application.state == ApplicationState.paid, Application.waiting_reason != ""
            )
        ).one()
    rows = [
        (
            p.prefix,
            p.capacity,
            p.used,
            p.free,
            "removed" if not p.active else "LOW" if p.free < threshold else "active",
            p.alerted_on if as_json else p.alerted_on.isoformat() if p.alerted_on else "—",
        )
        for p in states
    ]
    columns = ("prefix", "capacity", "used", "free", "state", "alerted")
    print_rows(columns, rows, as_json=as_json)
    notes = err if as_json else out
    free = sum(p.free for p in states)
    notes.print(f"codes issued in total: {issued}; free: {free} (alert below {threshold} a prefix)")
    for prefix in refused:
        notes.print(f"[bold red]prefix {prefix} refused:[/] it overlaps a known prefix")
    if waiting:
        notes.print(f"{waiting} paid application(s) wait for codes: add a prefix and restart")
