"""The «Безопасность» page: the client's live sessions with «Завершить» for each (ASVS 7.5.2),
the password change link and the state of the second factor."""

from __future__ import annotations

from sqlmodel import col, func, select
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.storage.db import read_only, transaction
from mailbot.storage.models_web import RecoveryCode
from mailbot.web import owned, sessions
from mailbot.web.visit import Visit, action, cookie_name, page, render


def _security(v: Visit) -> Response:
    with read_only(v.rt.engine) as session:
        live = sessions.live(session, v.rt, v.client)
        codes_left = session.exec(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.client_id == v.client_id, col(RecoveryCode.used_at).is_(None))
        ).one()
    rows = [
        {
            "id": ws.id,
            "created_at": ws.created_at,
            "last_seen_at": ws.last_seen_at,
            "ip": ws.ip,
            "user_agent": ws.user_agent,
            "this": ws.id == v.session.id,
        }
        for ws in live
    ]
    return render(
        v,
        v.request,
        "security.html.j2",
        sessions=rows,
        totp_on=bool(v.client.totp_secret),
        codes_left=codes_left,
    )


def _end_session(v: Visit) -> Response:
    session_id = int(v.request.path_params["session_id"])
    now = v.rt.clock()
    with transaction(v.rt.engine) as session:
        ws = owned.web_session(session, v.client_id, session_id)
        if ws.ended_at is None:
            sessions.end(session, ws, "user", now)
    if session_id == v.session.id:  # «Завершить» on this very device is a log-out
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie_name(v.request), path="/")
        return response
    return RedirectResponse("/security", status_code=303)


routes: list[BaseRoute] = [
    Route("/security", page(_security), methods=["GET"]),
    Route("/security/sessions/{session_id:int}/end", action(_end_session), methods=["POST"]),
]
