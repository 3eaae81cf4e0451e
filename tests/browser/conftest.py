"""A real browser against a real site: Debian's headless Chromium (Selenium), `mailbot web`
and the daemon (`mailbot run`) on the embedded defaults (SQLite, local Maildir) in a temp dir.

One browser for the test session, one site (web server + daemon) per module. Readiness is
polled with a deadline (the web port answering /hello, rows appearing in the database), never
waited for with a fixed sleep. Every page visited is photographed at 1280 and 375 px wide
under `$MAILBOT_ARTEFACTS/browser/` (or tests/artefacts/browser/) as `<step>-<width>.png`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver

from mailbot.storage.db import make_engine
from tests.browser.harness import (
    CHROMEDRIVER,
    CHROMIUM,
    Camera,
    Site,
    answers,
    artefacts_dir,
    exited,
    free_port,
    poll,
    spawn,
    start_chromium,
    stop,
    write_config,
)
from tests.e2e.helpers import mailbot


@pytest.fixture(scope="session")
def web_browser() -> Iterator[WebDriver]:
    """Debian's Chromium, headless, for the whole test session (never a downloaded build)."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            pytest.fail(f"{exe} is missing: apt-get install chromium chromium-driver (.ci/test)")
    try:
        driver = start_chromium()
    except WebDriverException:  # a cold profile on a fresh machine can fail the first start
        driver = start_chromium()
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`mailbot web` and the daemon on a fresh site; stopped (SIGTERM) at the module's end."""
    workdir = tmp_path_factory.mktemp("browser-site")
    port = free_port()
    write_config(workdir, port)
    mailbot(workdir, "db", "upgrade")
    db = make_engine(f"sqlite:///{workdir / 'var/mailbot.db'}")
    site = Site(workdir, f"http://localhost:{port}", db)
    # WATCHDOG_USEC as systemd's WatchdogSec=1 would set it: the daemon then looks for work
    # (paid invoices, queued mail) at least every 0.5 s instead of every 5 s.
    site.procs.append(spawn(workdir, "daemon", ["run"], {"WATCHDOG_USEC": "1000000"}))
    site.procs.append(spawn(workdir, "web", ["web", "--port", str(port)], {}))
    try:
        poll(lambda: answers(f"{site.url}/hello") or exited(site), "mailbot web on /hello")
        if exited(site):
            pytest.fail(f"a process of the site ended early:\n{site.logs()}")
        yield site
    finally:
        for proc in site.procs:
            stop(proc)
        site.engine.dispose()


@pytest.fixture(scope="session")
def web_camera(web_browser: WebDriver) -> Camera:
    return Camera(web_browser, artefacts_dir())
