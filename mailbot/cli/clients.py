"""`mailbot clients list|show|reset-password`: registered clients and their credentials."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import col, func, select

from mailbot.cli.base import JsonOpt, YesOpt, confirm, fail, group, out, print_rows, runtime, stamp
from mailbot.issuance.credentials import reset_password
from mailbot.storage.db import transaction
from mailbot.storage.models import Application, Barcode, Client, ClientAddress

clients_app = group("clients", "Registered clients and their logins.")


@clients_app.command("list")
def clients_list(
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Clients, newest first (passwords are never shown: only whether one is set)."""
    rt = runtime()
    with transaction(rt.engine) as session:
        rows = [
            (
                c.login if as_json else c.login or "—",
                c.inn,
                c.kpp,
                c.org_name,
                c.email,
                _password_state(c),
                stamp(c.created_at, as_json=as_json, fmt="%Y-%m-%d"),
            )
            for c in session.exec(select(Client).order_by(col(Client.id).desc()).limit(limit))
        ]
    columns = ("login", "inn", "kpp", "organisation", "email", "password", "created")
    print_rows(columns, rows, as_json=as_json)


def _password_state(c: Client) -> str:
    if not c.password_hash:
        return "none"
    return "must change" if c.must_change else "set"


@clients_app.command("show")
def clients_show(
    login: Annotated[str, typer.Argument(help="login (INN or INN-KPP) or INN")],
) -> None:
    """One client: requisites, addresses, applications and codes."""
    rt = runtime()
    with transaction(rt.engine) as session:
        c = session.exec(select(Client).where(Client.login == login)).first()
        c = c or session.exec(select(Client).where(Client.inn == login)).first()
        if c is None:
            fail(f"client {login} not found")
        out.print(f"[bold]{c.login or '—'}[/] {c.org_name}", highlight=False)
        out.print(f"  INN {c.inn}  KPP {c.kpp or '—'}  OGRN {c.ogrn or '—'}", highlight=False)
        out.print(f"  e-mail {c.email}  phone {c.phone or '—'}  contact {c.contact_name or '—'}")
        out.print(
            f"  password: {_password_state(c)} (argon2id), issued {c.credentials_seq} time(s)"
        )
        out.print(f"  balance {c.balance} RUB, registered {c.created_at:%Y-%m-%d %H:%M}")
        for a in session.exec(select(ClientAddress).where(ClientAddress.client_id == c.id)):
            out.print(f"  address {a.address}")
        for app in session.exec(select(Application).where(Application.client_id == c.id)):
            codes = session.exec(
                select(func.count(col(Barcode.id))).where(Barcode.application_id == app.id)
            ).one()
            out.print(f"  application {app.number}: {app.state}, {codes} codes")


@clients_app.command("reset-password")
def clients_reset_password(
    login: Annotated[str, typer.Argument(help="the client's login (INN or INN-KPP)")],
    yes: YesOpt = False,
) -> None:
    """Issue a new password and mail it to the client's registered address.

    The old password stops working at once: the client's web sessions end, and a password
    mail of an earlier reset still waiting in the outbox is dropped (it holds a void one).
    """
    rt = runtime()
    with transaction(rt.engine) as session:
        client = session.exec(select(Client).where(Client.login == login)).first()
        if client is None:
            fail(f"client {login} not found")
        email = client.email
    confirm(f"reset the password of {login} and mail a new one to {email}?", yes=yes)
    result = reset_password(rt, login)
    if result is None:
        fail(f"client {login} not found")
    out.print(
        f"new password for {login} queued to {result.email}; it is sent on the next pass "
        "(mailbot run) and shown nowhere else",
        highlight=False,
    )
    if result.superseded:
        ids = ", ".join(str(i) for i in result.superseded)
        out.print(f"dropped the unsent password mail(s) {ids}: their password is void")
    if result.sessions_ended:
        out.print(f"ended {result.sessions_ended} web session(s)")
