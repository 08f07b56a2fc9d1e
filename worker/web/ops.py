"""The operator page: `GET /ops` (HTML) and `GET /ops/data` (the same figures as JSON).

Both take an API key, as `Authorization: Bearer <key>` or as HTTP basic auth with the key
for password (any user name, e.g. `ops`), so that a browser can open the page; without one
they answer 401 with `WWW-Authenticate: Basic`, which makes a browser ask. Only reads: no
route here changes anything. Numbers, addresses and bodies are never shown (`ops_page`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from hudhud.worker import runtime
from hudhud.worker.ledger import Ledger
from hudhud.worker.providers import registry
from hudhud.worker.web import auth
from hudhud.worker.web.ops_page import figures, render

router = APIRouter(tags=["operator page"], include_in_schema=False)
REALM = 'Basic realm="hudhud operator page", charset="UTF-8"'
PRIVATE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def presented_key(request: Request) -> str | None:
    """The key of a bearer token, or the password of basic auth."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon and password else None
    return None


def refusal(request: Request) -> Response | None:
    """None for a caller with a valid key; else the 401 that makes a browser ask for one."""
    keys: auth.Keys = request.app.state.api_keys
    presented = presented_key(request)
    if presented is not None and keys.match(presented) is not None:
        return None
    return JSONResponse(
        {
            "error": {
                "field": "authorization",
                "message": "needs a valid API key: Authorization: Bearer <key>, or basic auth "
                "with the key as password",
            }
        },
        status_code=401,
        headers={"WWW-Authenticate": REALM, **PRIVATE},
    )


def _read(request: Request, by: str, q: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    ledger: Ledger = runtime.ledger(request.app.state.settings)
    live = figures.live(ledger, registry.names(), now=time.time())
    found = figures.find(ledger, by, q) if q.strip() else None
    return live, found


@router.get("/ops")
async def page(request: Request, by: str = "id", q: str = "") -> Response:
    refused = refusal(request)
    if refused is not None:
        return refused
    live, found = await run_in_threadpool(_read, request, by, q)
    nonce = secrets.token_urlsafe(16)
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    body = render.page(live, found, nonce=nonce)
    return HTMLResponse(body, headers={"Content-Security-Policy": policy, **PRIVATE})


@router.get("/ops/data")
async def data(request: Request, by: str = "id", q: str = "") -> Response:
    refused = refusal(request)
    if refused is not None:
        return refused
    live, found = await run_in_threadpool(_read, request, by, q)
    return JSONResponse({**live, "lookup": found}, headers=PRIVATE)
