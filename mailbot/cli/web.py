"""`mailbot web`: serve the personal account («личный кабинет») beside the daemon."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from mailbot.cli.base import app, config_path, out, runtime


@app.command("web")
def web_command(
    listen: Annotated[str | None, typer.Option(help="address to listen on ([web] listen)")] = None,
    port: Annotated[int | None, typer.Option(help="port ([web] port)")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes sharing the port (one per core)")
    ] = 1,
) -> None:
    """Serve the web personal account on the same database as the daemon (no state in memory:
    run as many processes as there are cores; on PostgreSQL, on as many machines as needed)."""
    import uvicorn  # here, not at the top: every other command starts faster without it

    from mailbot.web.app import create_app
    from mailbot.web.memory import freeze_startup_objects, hand_big_buffers_back

    rt = runtime()  # checks the config and the database once, in the parent
    web = rt.settings.web
    host, bind_port = listen or web.listen, port or web.port
    out.print(f"serving the personal account on http://{host}:{bind_port} ({workers} process(es))")
    out.print(f"clients log in at {web.base_url.rstrip('/')}/login")
    common: dict[str, Any] = {
        "host": host,
        "port": bind_port,
        "proxy_headers": False,  # X-Forwarded-For is read only from [web] trusted_proxies
        "server_header": False,
        "access_log": False,
        "log_config": None,
    }
    if workers == 1:
        hand_big_buffers_back()
        web_app = create_app(rt)
        freeze_startup_objects()
        uvicorn.run(web_app, **common)
        return
    rt.engine.dispose()
    path = config_path()
    if path is not None:  # each worker reads the same file the parent checked
        os.environ["MAILBOT_CONFIG"] = str(path.resolve())
    uvicorn.run("mailbot.web.app:from_environment", factory=True, workers=workers, **common)
