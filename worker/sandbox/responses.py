"""JSON replies in both providers' shapes, with UTF-8 kept as is (the Arabic texts)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_JSON = "application/json"


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate echoed from a request: keep it as a \u escape
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
    return web.Response(body=data, status=status, content_type=_JSON, charset="utf-8", headers=headers)


def taqnyat_error(status: int, message: str, reason: str | None = None) -> web.Response:
    """Taqnyat REST errors: `{"statusCode", "message"}`, plus `reason` when message is a code."""
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if reason is not None:
        body["reason"] = reason
    return reply(body, status)


def taifa_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return reply({"detail": {"code": code, "message": message}}, status, headers)


def taifa_unauthorized() -> web.Response:
    return taifa_error(401, "unauthorized", "Missing or invalid API key", {"WWW-Authenticate": "Bearer"})


def taifa_not_found() -> web.Response:
    return taifa_error(404, "not_found", "Email not found")


def field_errors(errors: list[dict[str, Any]]) -> web.Response:
    """FastAPI's 422 body."""
    return reply({"detail": errors}, 422)


def bearer(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
