"""`mailbot clients balance [LOGIN]`: what each client holds, and how a balance came to be."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import col, select

from mailbot.billing.ledger import movements
from mailbot.cli.base import JsonOpt, fail, out, print_rows, runtime
from mailbot.cli.clients import clients_app
from mailbot.storage.db import transaction
from mailbot.storage.models import Client


@clients_app.command("balance")
def clients_balance(
    login: Annotated[
        str | None, typer.Argument(help="login (INN or INN-KPP) or INN; none: every client")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Balances: every client's, or one client's movements (credits, uses, returns)."""
    rt = runtime()
    with transaction(rt.engine) as session:
        if login is None:
            clients = session.exec(select(Client).order_by(col(Client.id))).all()
            rows = [(c.login or "", c.inn, c.org_name, c.balance) for c in clients]
            print_rows(("login", "inn", "organisation", "balance"), rows, as_json=as_json)
            return
        c = session.exec(select(Client).where(Client.login == login)).first()
        c = c or session.exec(select(Client).where(Client.inn == login)).first()
        if c is None or c.id is None:
            fail(f"client {login} not found")
        moves = movements(session, c.id)
        balance = c.balance
        name = f"{c.login or c.inn} {c.org_name}"
    if not as_json:
        out.print(f"[bold]{name}[/]: balance {balance} RUB", highlight=False)
    rows2 = [(m.at.replace(microsecond=0), m.event, m.amount, m.balance, m.ref) for m in moves]
    print_rows(("at", "event", "amount", "balance", "ref"), rows2, as_json=as_json)
