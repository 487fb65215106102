"""Who may see the dashboard: loopback only by default; a shared token when bound to another interface.

Why a token and not user accounts: the appliance has no user database, and the people who need the
page (a line supervisor's tablet, the commissioning engineer's laptop) can be given one secret. The
ROI editor writes the config file, so an open port on a plant network would let anyone change what is
counted: binding beyond loopback without a token is refused at start-up (`options.check_exposure`).

The token is accepted as ``Authorization: Bearer <token>`` (scripts), as the ``edge_dashboard_token``
cookie, or once as ``?token=<token>`` in a URL (a bookmark on a tablet), which sets that cookie so that
``<img>`` and ``EventSource`` requests, which cannot send headers, are authorised too. Comparisons are
constant-time.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

COOKIE = "edge_dashboard_token"


def _presented(request: Request) -> tuple[str | None, bool]:
    """The token the request carries, and whether it came in the URL (then it is turned into a cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    if COOKIE in request.cookies:
        return request.cookies[COOKIE], False
    query = request.query_params.get("token")
    return query, query is not None


def install_token_auth(app: FastAPI, token: str) -> None:
    """Every route, the page and its static files included, needs ``token`` (401 otherwise)."""
    expected = token.encode("utf-8")

    @app.middleware("http")
    async def require_token(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette's signature
        presented, from_url = _presented(request)
        if presented is None or not hmac.compare_digest(presented.encode("utf-8"), expected):
            return JSONResponse({"detail": "dashboard token required: send 'Authorization: Bearer <token>' or "
                                 "open /?token=<token> once"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        response = await call_next(request)
        if from_url:
            response.set_cookie(COOKIE, presented, httponly=True, samesite="strict")
        return response
