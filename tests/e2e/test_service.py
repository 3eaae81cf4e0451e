"""The daemon under systemd's eyes: READY, WATCHDOG and STOPPING on $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.e2e.helpers import mailbot


def receive_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    got: list[str] = []
    while wanted not in got:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            raise AssertionError(f"no {wanted} in {got}") from None
    return got


def test_sigterm_sends_stopping_after_ready_and_watchdog_pings(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    mailbot(tmp_path, "db", "upgrade")
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        env = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            first = receive_until(sock, "WATCHDOG=1", deadline)
            assert first[0] == "READY=1"
            receive_until(sock, "WATCHDOG=1", deadline)  # again, within the 0.2 s interval
            proc.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in receive_until(sock, "STOPPING=1", deadline)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
