"""The single sends as plain Starlette routes, placed before their documented FastAPI routes:
the same key check, body checks and answers, without FastAPI's per-request dependency and
validation machinery, which cost about a third of the API's CPU per send. The FastAPI routes
stay, for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hudhud.worker.producer.messages import CHANNELS
from hudhud.worker.web import auth, sends


def _caller(request: Request) -> str:
    """The name of the caller's key (as `auth.require_key` finds it), else `Unauthorized`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    keys: auth.Keys = request.app.state.api_keys
    name = keys.match(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if name is None:
        raise auth.Unauthorized()
    return name


def _single(channel: str) -> Callable[[Request], Awaitable[Response]]:
    async def send(request: Request) -> Response:
        _caller(request)
        return await sends._send_one(request, channel)

    return send


def routes() -> list[Route]:
    return [
        Route(f"/v1/messages/{channel}", _single(channel), methods=["POST"], include_in_schema=False)
        for channel in CHANNELS
    ]
