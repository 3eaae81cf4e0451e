"""On SQLite a page that only reads takes no write lock: it answers while the daemon holds
one (a long issuance, say) instead of queueing behind it for up to the busy timeout."""

from __future__ import annotations

import threading

from sqlalchemy import text

from mailbot.runtime import Runtime
from mailbot.storage.db import transaction
from tests.web.pages2 import ON_SQLITE, add_client, browser


@ON_SQLITE
def test_pages_answer_while_another_connection_holds_the_write_lock(rt: Runtime) -> None:
    add_client(rt)
    web = browser(rt, "7707083893")
    holding, release = threading.Event(), threading.Event()

    def daemon_writing() -> None:
        with transaction(rt.engine) as s:  # BEGIN IMMEDIATE: the write lock, until released
            s.execute(text("UPDATE client SET phone = phone"))
            holding.set()
            release.wait(60)

    writer = threading.Thread(target=daemon_writing)
    writer.start()
    try:
        assert holding.wait(10)
        for path in ("/", "/applications", "/balance", "/news", "/tickets", "/details"):
            r = web.get(path)
            assert r.status_code == 200, path
            assert writer.is_alive()  # the lock was still held when the page came back
    finally:
        release.set()
        writer.join()
