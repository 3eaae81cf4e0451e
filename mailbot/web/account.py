"""The overview page («Личный кабинет») and the bare route the benchmark compares with."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.web.visit import Visit, page, render


def _home(v: Visit) -> Response:
    return render(v, v.request, "home.html.j2")


def hello(request: Request) -> Response:
    """No session, no database: the floor the page timings are compared with (bench_web)."""
    return PlainTextResponse("hello")


routes: list[BaseRoute] = [
    Route("/", page(_home), methods=["GET"]),
    Route("/hello", hello, methods=["GET"]),
]
