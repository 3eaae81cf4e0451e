"""`mailbot web --workers 2`: two processes on one port, nothing kept in a process's memory —
a session started by one is honoured by the other, and log-out ends it for both."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx2

from mailbot.config import load_settings
from mailbot.runtime import build_runtime
from tests.browser.harness import answers, free_port, poll, spawn, stop, write_config
from tests.web.pages2 import PASSWORD, add_client

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_two_web_processes_share_sessions_through_the_database(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, port)
    subprocess.run(
        [sys.executable, "-m", "mailbot", "db", "upgrade"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    rt = build_runtime(load_settings(tmp_path / "config.toml"))
    add_client(rt)
    rt.engine.dispose()
    web = spawn(tmp_path, "web", ["web", "--workers", "2"], {})
    try:
        base = f"http://127.0.0.1:{port}"
        poll(lambda: answers(f"{base}/hello") or None, "mailbot web --workers 2")
        # uvicorn's supervisor runs the workers as its children (a resource tracker may be one)
        poll(lambda: len(_children(web.pid)) >= 2 or None, "two worker processes")
        with httpx2.Client(base_url=base) as c:
            token = CSRF.search(c.get("/login").text)
            assert token is not None
            r = c.post(
                "/login", data={"login": "7707083893", "password": PASSWORD, "csrf": token[1]}
            )
            assert r.status_code == 303
            pages = [c.get("/applications") for _ in range(40)]
            assert {p.status_code for p in pages} == {200}
            home = c.get("/")
            logout = CSRF.search(home.text)
            assert logout is not None
            assert c.post("/logout", data={"csrf": logout[1]}).status_code == 303
            after = [c.get("/applications").status_code for _ in range(10)]
            assert set(after) == {303}  # ended on the server: no process still knows it
    finally:
        stop(web)
