"""`mailbot web`: serve the personal account («личный кабинет») beside the daemon."""

from __future__ import annotations

from typing import Annotated

import typer

from mailbot.cli.base import app, out, runtime


@app.command("web")
def web_command(
    listen: Annotated[str | None, typer.Option(help="address to listen on ([web] listen)")] = None,
    port: Annotated[int | None, typer.Option(help="port ([web] port)")] = None,
) -> None:
    """Serve the web personal account on the same database as the daemon (no state in memory:
    run as many as you like on PostgreSQL)."""
    import uvicorn  # here, not at the top: every other command starts faster without it

    from mailbot.web.app import create_app

    rt = runtime()
    web = rt.settings.web
    host, bind_port = listen or web.listen, port or web.port
    out.print(f"serving the personal account on http://{host}:{bind_port}")
    out.print(f"clients log in at {web.base_url.rstrip('/')}/login")
    uvicorn.run(
        create_app(rt),
        host=host,
        port=bind_port,
        proxy_headers=False,  # X-Forwarded-For is read only from [web] trusted_proxies
        server_header=False,
        access_log=False,
        log_config=None,
    )
