"""systemd notifications reach $NOTIFY_SOCKET and are no-ops outside systemd."""

from __future__ import annotations

import socket
from pathlib import Path

from mailbot.service.sdnotify import notify, watchdog_interval


def test_ready_reaches_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert notify("READY=1", env={"NOTIFY_SOCKET": str(path)}) is True
        assert server.recv(100) == b"READY=1"


def test_outside_systemd_nothing_is_sent() -> None:
    assert notify("READY=1", env={}) is False


def test_watchdog_pings_at_half_the_configured_interval() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
