"""Security headers on every response (ASVS 3.4), HSTS only over https, no inline script or
style in any web template (the CSP forbids them), no open redirect after log-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailbot.runtime import Runtime
from mailbot.web.app import create_app
from tests.web.authkit import PASSWORD, add_client, csrf_of, secure
from tests.web.authkit import web as web

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
PATHS = ["/login", "/hello", "/", "/no-such-page", "/static/style.css"]


def directives(csp: str) -> dict[str, str]:
    parts = (d.strip().split(None, 1) for d in csp.split(";") if d.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_headers(rt: Runtime, web: TestClient, path: str) -> None:
    r = web.get(path, follow_redirects=False)
    csp = directives(r.headers["content-security-policy"])
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'none'"
    assert csp["script-src"] == "'self'" and "unsafe" not in r.headers["content-security-policy"]
    assert csp["default-src"] == "'self'" and csp["form-action"] == "'self'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in r.headers


def test_hsts_only_when_served_over_https(rt: Runtime) -> None:
    secure(rt)
    with TestClient(create_app(rt), base_url="https://lk.example.ru") as tc:
        r = tc.get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_pages_are_not_cached_the_style_sheet_is(rt: Runtime, web: TestClient) -> None:
    assert web.get("/login").headers["cache-control"] == "no-store"
    assert web.get("/no-such-page").headers["cache-control"] == "no-store"
    assert web.get("/static/style.css").headers["cache-control"].startswith("public")


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.j2")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(template: Path) -> None:
    html = template.read_text("utf-8")
    assert "<script" not in html.lower() or re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"
    assert "<style" not in html.lower()


def test_post_forms_carry_a_csrf_field(rt: Runtime) -> None:
    for template in TEMPLATES.glob("*.j2"):
        html = template.read_text("utf-8")
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S | re.I):
            assert 'name="csrf"' in form, template.name


def test_no_open_redirect_after_log_in(rt: Runtime, web: TestClient) -> None:
    add_client(rt)
    token = csrf_of(web.get("/login?next=https://evil.example/").text)
    r = web.post(
        "/login?next=https://evil.example/",
        data={"login": "7707083893", "password": PASSWORD, "csrf": token, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
