"""What every page shares: the logged-in client, the CSRF check, rendering, the client address.

A page is a plain function `(visit) -> Response`; `page()` and `action()` wrap it:
- `page()` (GET): a valid session or a redirect to the log-in page;
- `action()` (POST): the same, plus the form, refused with 403 when its CSRF token is wrong.
Both accept only fully logged-in sessions by default (`stages=("full",)`); the second step
of a log-in with TOTP passes `stages=("totp",)`. A client who must change its password
reaches only /password and /logout.
Every object a page takes by id is looked up with the client's id in the query (`owned`),
so another client's object is 404, never 403 (it does not reveal that it exists).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailbot.runtime import Runtime
from mailbot.storage.models import Client
from mailbot.storage.models_web import WebSession
from mailbot.web import sessions

# Upload forms: at most this many files and fields (python-multipart's own caps).
MAX_FILES = 1
MAX_FIELDS = 50
# What a client who must change its password may still reach (ASVS 6.4.1).
FORCED_CHANGE_OPEN = frozenset({"/password", "/logout"})


@dataclass(frozen=True)
class Visit:
    """One request of a logged-in client: who, which session, and the posted form."""

    rt: Runtime
    request: Request
    client: Client  # a detached copy, read at the start of the request
    session: WebSession
    form: FormData | None = None

    @property
    def client_id(self) -> int:
        if self.client.id is None:
            raise HTTPException(500)
        return self.client.id


View = Callable[[Visit], Response]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def client_ip(request: Request) -> str:
    """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    trusted = runtime(request).settings.web.trusted_proxies
    forwarded = request.headers.get("x-forwarded-for", "")
    if peer in trusted and forwarded:
        return forwarded.split(",")[-1].strip()[:45]
    return peer[:45]


def cookie_name(request: Request) -> str:
    """`__Host-` needs Secure: plain http://localhost gets a plain name."""
    return "__Host-mb_session" if runtime(request).settings.web.secure_cookies else "mb_session"


def _visit(request: Request, stages: tuple[str, ...]) -> Visit | Response:
    rt = runtime(request)
    found = sessions.lookup(rt, request.cookies.get(cookie_name(request), ""))
    if found is None:
        return RedirectResponse("/login", status_code=303)
    ws, client = found
    if ws.stage not in stages:
        return RedirectResponse("/login/totp" if ws.stage == "totp" else "/", 303)
    if client.must_change and ws.stage == "full" and request.url.path not in FORCED_CHANGE_OPEN:
        return RedirectResponse("/password", status_code=303)
    return Visit(rt=rt, request=request, client=client, session=ws)


def page(view: View, *, stages: tuple[str, ...] = ("full",)) -> Callable[[Request], Response]:
    """A GET page for a logged-in client (`stages`: which session stages may see it)."""

    def endpoint(request: Request) -> Response:
        v = _visit(request, stages)
        return v if isinstance(v, Response) else view(v)

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    return endpoint


def action(view: View, *, stages: tuple[str, ...] = ("full",)) -> Callable[[Request], Any]:
    """A POST for a logged-in client: the form is read (with caps) and its CSRF token checked."""

    async def endpoint(request: Request) -> Response:
        v = await run_in_threadpool(_visit, request, stages)
        if isinstance(v, Response):
            return v
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
        check_csrf(v.session, form)
        visit = Visit(rt=v.rt, request=request, client=v.client, session=v.session, form=form)
        response: Response = await run_in_threadpool(view, visit)
        return response

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    return endpoint


def check_csrf(ws: WebSession, form: FormData) -> None:
    """403 unless the form carries this session's anti-forgery token (ASVS 3.5.1)."""
    sent = form.get("csrf")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, ws.csrf):
        raise HTTPException(403, "csrf")


def field(form: FormData | None, name: str, *, limit: int = 2000) -> str:
    """A text field of the form, stripped and capped (a missing field is "")."""
    value = form.get(name) if form is not None else None
    return value.strip()[:limit] if isinstance(value, str) else ""


def secret_field(form: FormData | None, name: str, *, limit: int) -> str:
    """A password field exactly as typed (never stripped), cut at `limit` characters: pass one
    more than the longest allowed, so that a too-long password is refused, not truncated."""
    value = form.get(name) if form is not None else None
    return value[:limit] if isinstance(value, str) else ""


def render(
    visit: Visit | None, request: Request, name: str, status: int = 200, **ctx: Any
) -> Response:
    """A page from templates/web: every page gets the client, the CSRF token and the nav
    (`ctx` may set `csrf` itself: the log-in form, which has no session yet)."""
    env = request.app.state.templates
    values: dict[str, Any] = {
        "client": visit.client if visit else None,
        "csrf": visit.session.csrf if visit else "",
        "path": request.url.path,
    }
    values.update(ctx)
    html = env.get_template(name).render(**values)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def not_found() -> HTTPException:
    """What a route answers for an object that is not this client's (or does not exist)."""
    return HTTPException(404)
