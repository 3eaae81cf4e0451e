"""The browser harness: Debian's Chromium, a site of `mailbot web` + `mailbot run` in a temp
folder, polling with a deadline, and the camera that photographs every page at two widths."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from sqlalchemy.engine import Engine

from tests.conftest import REPO
from tests.e2e.helpers import mailbot

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = (1280, 375)
T = TypeVar("T")


def artefacts_dir() -> Path:
    base = os.environ.get("MAILBOT_ARTEFACTS")
    folder = Path(base) / "browser" if base else REPO / "tests/artefacts/browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def poll(check: Callable[[], T | None], what: str, *, seconds: float = 30.0) -> T:
    """Call `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")
        pause.wait(0.05)  # the poll interval, not a synchronisation


def start_chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=ru"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@dataclass
class Site:
    """A running `mailbot web` and `mailbot run` sharing one folder and database."""

    workdir: Path
    url: str
    engine: Engine
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        """Run the real `mailbot` command in the site's folder; its standard output."""
        return mailbot(self.workdir, *args).stdout

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(workdir: Path, port: int) -> None:
    text = (REPO / "config.toml").read_text()
    text = text.replace("port = 8080", f"port = {port}").replace(
        'base_url = "http://localhost:8080"', f'base_url = "http://localhost:{port}"'
    )
    assert f"port = {port}" in text and f"localhost:{port}" in text
    (workdir / "config.toml").write_text(text)


def spawn(
    workdir: Path, name: str, args: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", *args],
        cwd=workdir,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback http
            return bool(r.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exited(site: Site) -> bool:
    return any(p.poll() is not None for p in site.procs)


@dataclass
class Camera:
    """Screenshots of the current page at every width, named `<step>-<width>.png`."""

    driver: WebDriver
    folder: Path
    taken: list[Path] = field(default_factory=list)
    too_wide: list[str] = field(default_factory=list)  # pages that scroll sideways on a phone

    def shoot(self, step: str) -> None:
        for width in WIDTHS:
            self.driver.set_window_size(width, 900)
            height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
            self.driver.set_window_size(width, min(max(height + 140, 600), 6000))
            wide = int(self.driver.execute_script("return document.documentElement.scrollWidth"))
            if wide > width:
                self.too_wide.append(f"{step}: {wide} px at {width}")
            path = self.folder / f"{step}-{width}.png"
            assert self.driver.save_screenshot(str(path)), path
            self.taken.append(path)
        self.driver.set_window_size(WIDTHS[0], 900)
