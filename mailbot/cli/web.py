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
    _hand_big_buffers_back()
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


def _hand_big_buffers_back() -> None:
    """Fix glibc's mmap threshold at 128 KiB, as MALLOC_MMAP_THRESHOLD_=131072 would.

    glibc raises the threshold after the first large free (argon2's 19 MiB buffer), and from
    then on keeps such buffers in each thread's arena: 50 log-ins at once left a web process
    at 820 MB resident (bench_web). With the threshold fixed, every argon2 buffer is mmapped
    and handed back at free (measured 119 MB). No library exposes mallopt; ctypes does.
    Not glibc (musl, macOS): nothing to do.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        m_mmap_threshold = -3  # <malloc.h>
        mallopt(m_mmap_threshold, 128 * 1024)
