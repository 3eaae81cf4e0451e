"""The daemon under systemd's eyes: READY, WATCHDOG and STOPPING on $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import Session, select

from mailbot.runtime import Runtime
from mailbot.service import daemon
from mailbot.service.status import render_health
from mailbot.storage.models_workers import Worker
from tests.conftest import REPO, FakeClock
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


def test_a_long_pass_feeds_the_watchdog_and_the_heartbeat_between_messages(
    rt: Runtime, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.setblocking(False)  # a datagram sent is already queued: no waiting needed
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        stop = threading.Event()
        started = clock()
        due = daemon._KeepAlive(rt, started, reader=True, stop=stop, every=0.0)
        clock.advance(minutes=7)  # a pass over a big backlog, several messages in
        assert due() is False
        assert sock.recv(4096) == b"WATCHDOG=1"
        with Session(rt.engine) as session:
            [worker] = session.exec(select(Worker)).all()
        assert (worker.last_pass_at, worker.reader) == (clock(), True)
        stop.set()
        not_yet = daemon._KeepAlive(rt, started, reader=True, stop=stop, every=3600.0)
        assert not_yet() is True  # SIGTERM: the pass ends before the next message
        with pytest.raises(BlockingIOError):
            sock.recv(4096)  # nothing was due


def test_status_calls_a_daemon_silent_when_its_heartbeat_is_old(
    rt: Runtime, clock: FakeClock
) -> None:
    with Session(rt.engine) as session:
        for name, minutes in (("host:1", 1), ("host:2", 6)):
            at = clock() - timedelta(minutes=minutes)
            session.add(Worker(id=name, reader=name == "host:2", started_at=at, last_pass_at=at))
        session.commit()
        console = Console(width=250, record=True)
        render_health(session, clock(), console)
    lines = console.export_text().splitlines()
    assert "ok" in next(line for line in lines if "host:1" in line)
    assert "SILENT" in next(line for line in lines if "host:2" in line)
