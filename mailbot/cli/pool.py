"""`mailbot pool status`: used and free codes per prefix, and who waits for codes."""

from __future__ import annotations

from rich.table import Table
from sqlmodel import col, func, select

from mailbot.cli.base import group, out, runtime
from mailbot.issuance.pool import pool_states, sync_prefixes
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, ApplicationState, Barcode

pool_app = group("pool", "The barcode pool.")


@pool_app.command("status")
def pool_status() -> None:
    """Used and free codes per prefix (the config's prefixes are applied first)."""
    rt = runtime()
    threshold = rt.settings.pool_low_threshold
    table = Table("prefix", "capacity", "used", "free", "state", "alerted")
    with transaction(rt.engine) as session:
        refused = sync_prefixes(session, rt.settings.prefixes, now=rt.clock())
        states = pool_states(session)
        issued = session.exec(select(func.count(col(Barcode.id)))).one()
        waiting = session.exec(
            select(func.count(col(Application.id))).where(
                Application.state == ApplicationState.paid, Application.waiting_reason != ""
            )
        ).one()
    for p in states:
        state = "removed" if not p.active else "LOW" if p.free < threshold else "active"
        alerted = p.alerted_on.isoformat() if p.alerted_on else "—"
        table.add_row(p.prefix, str(p.capacity), str(p.used), str(p.free), state, alerted)
    out.print(table)
    free = sum(p.free for p in states)
    out.print(f"codes issued in total: {issued}; free: {free} (alert below {threshold} a prefix)")
    for prefix in refused:
        out.print(f"[bold red]prefix {prefix} refused:[/] it overlaps a known prefix")
    if waiting:
        out.print(f"{waiting} paid application(s) wait for codes: add a prefix and restart")
