"""The client's address (throttling, the sessions list): X-Forwarded-For is believed only
from `[web] trusted_proxies`, and then only its last hop (the one the proxy appended)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.web.app import create_app
from tests.web.authkit import add_client, live_sessions, log_in


@pytest.mark.parametrize(
    ("trusted", "expected"), [((), "testclient"), (("testclient",), "203.0.113.7")]
)
def test_forwarded_address_only_from_a_trusted_proxy(
    rt: Runtime, trusted: tuple[str, ...], expected: str
) -> None:
    rt.settings = replace(rt.settings, web=replace(rt.settings.web, trusted_proxies=trusted))
    cid = add_client(rt)
    with TestClient(create_app(rt)) as web:
        web.headers["x-forwarded-for"] = "10.9.9.9, 203.0.113.7"
        assert log_in(web) == "/"
    assert [ws.ip for ws in live_sessions(rt, cid)] == [expected]
