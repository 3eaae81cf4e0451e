"""The web application: routes of every page module, templates, static files, error pages."""

from __future__ import annotations

from importlib import resources

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from mailbot.runtime import Runtime
from mailbot.web import (
    account,
    auth,
    balance,
    details,
    news,
    orders,
    second_factor,
    security,
    status,
    support,
)
from mailbot.web.headers import SecurityHeaders

MESSAGES = {
    403: "Запрос отклонён: форма устарела или открыта не отсюда. Обновите страницу и повторите.",
    404: "Страница не найдена.",
    405: "Такой запрос здесь не принимается.",
    413: "Файл слишком большой.",
}


def page_routes() -> list[BaseRoute]:
    """Every page module's routes, in the order of the navigation."""
    return [
        *account.routes,
        *auth.routes,
        *second_factor.routes,
        *status.routes,
        *orders.routes,
        *details.routes,
        *balance.routes,
        *news.routes,
        *support.routes,
        *security.routes,
    ]


def make_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mailbot.templates", "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


async def _error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    html = request.app.state.templates.get_template("error.html.j2").render(
        client=None,
        csrf="",
        path=request.url.path,
        status=status,
        message=MESSAGES.get(status, "Ошибка на нашей стороне. Попробуйте позже."),
    )
    return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def create_app(rt: Runtime) -> Starlette:
    static = resources.files("mailbot.templates").joinpath("web/static")
    app = Starlette(
        routes=[
            *page_routes(),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders, https=rt.settings.web.base_url.startswith("https://"))
        ],
        exception_handlers={HTTPException: _error, 500: _error},
    )
    app.state.rt = rt
    app.state.templates = make_templates()
    return app


def from_environment() -> Starlette:
    """The app of one of several worker processes (`mailbot web --workers N`): each builds its
    own runtime from $MAILBOT_CONFIG, which the parent process set to the checked file."""
    from mailbot.config import load_settings
    from mailbot.runtime import build_runtime
    from mailbot.web.memory import freeze_startup_objects, hand_big_buffers_back

    hand_big_buffers_back()
    web_app = create_app(build_runtime(load_settings()))
    freeze_startup_objects()
    return web_app
