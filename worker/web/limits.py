"""The size of a request body: over `HUDHUD_API_MAX_BODY` bytes it is refused with 413.

A `Content-Length` over the limit is refused before a byte of the body is read; a chunked
body is counted as it streams in and refused as soon as it passes the limit, so no more
than the limit is ever held. After the answer, what the client still sends is read and
dropped for a few seconds (as a web server's lingering close does), so a client that reads
its answer only once it has sent everything gets the 413 rather than a reset connection;
then the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LINGER_SECONDS = 10.0


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers") or ():
        if name == wanted:
            return bytes(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _drop_the_rest(receive: Receive) -> None:
    """Read what the client still sends, without keeping it, for up to LINGER_SECONDS."""
    deadline = time.monotonic() + LINGER_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class BodyLimit:
    """ASGI middleware: at most `max_body` bytes of request body reach the application."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "field": "body",
                    "message": f"is larger than {self.max_body} bytes (HUDHUD_API_MAX_BODY)",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": True})
        # A client waiting for "100 Continue" sends nothing more: reading would invite it.
        if _header(scope, b"expect") != b"100-continue":
            await _drop_the_rest(receive)
        await send({"type": "http.response.body", "body": b""})
