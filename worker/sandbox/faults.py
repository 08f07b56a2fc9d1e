"""Injected trouble on the provider paths: latency, 429s, 5xx, timeouts, lost replies.

Also gives unknown paths, wrong methods and oversized bodies the owning provider's error shape.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable

from aiohttp import web

from hudhud.worker.sandbox.knobs import Knobs
from hudhud.worker.sandbox.responses import reply, taifa_error
from hudhud.worker.sandbox.state import ACCEPTED_HERE, STATE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN, STATUS, TAIFA, TAQNYAT = "admin", "status", "taifa", "taqnyat"
PROXY_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"
PROXY_504 = "<html><body><h1>504 Gateway Time-out</h1></body></html>"
SHARE_OF_502 = 0.2


def family(path: str) -> str:
    """Who answers a path: the admin, Taqnyat's status page, Taifa Mail or Taqnyat."""
    if path.startswith("/_sandbox"):
        return ADMIN
    if path.startswith(("/v1/emails", "/v1/webhooks")):
        return TAIFA
    if path.rstrip("/") == "/system/status":
        return STATUS
    return TAQNYAT


def html(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


def server_error(who: str) -> web.Response:
    """503 in the provider's shape, or now and then a proxy's 502 page."""
    if random.random() < SHARE_OF_502:
        return html(PROXY_502, 502)
    if who == TAIFA:
        return reply({"detail": "Service Unavailable"}, 503)
    return reply({"statusCode": 503, "message": "Service Unavailable"}, 503)


def too_many(who: str, knobs: Knobs) -> web.Response:
    headers = {"Retry-After": str(math.ceil(knobs.retry_after))}
    if who == TAIFA:
        return taifa_error(429, "rate_limited", "Too many requests", headers)
    return reply({"statusCode": 429, "message": "Too Many Requests"}, 429, headers)


def aimed_at(who: str, knobs: Knobs) -> bool:
    """Whether the faults (not the latency) hit this provider's paths (`fault_provider`)."""
    return not knobs.fault_provider or knobs.fault_provider == who


async def before_handler(who: str, knobs: Knobs) -> web.Response | None:
    """Delay the request, then maybe answer it with a fault instead of the handler."""
    delay = knobs.latency_ms + (
        random.uniform(0, knobs.latency_jitter_ms) if knobs.latency_jitter_ms else 0.0
    )
    if delay > 0:
        await asyncio.sleep(delay / 1000)
    if not aimed_at(who, knobs):
        return None
    if knobs.rate_429 and random.random() < knobs.rate_429:
        return too_many(who, knobs)
    if knobs.error_rate_5xx and random.random() < knobs.error_rate_5xx:
        return server_error(who)
    if knobs.timeout_rate and random.random() < knobs.timeout_rate:
        await asyncio.sleep(knobs.timeout_seconds)
        return html(PROXY_504, 504)
    return None


def shaped(who: str, error: web.HTTPException) -> web.Response | None:
    """aiohttp's plain-text 404/405/413 in the owner's JSON shape (None: leave it alone)."""
    status = error.status
    if status not in (404, 405, 413):
        return None
    text = {404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large"}[status]
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    if who == TAIFA:
        if status == 413:
            return taifa_error(413, "payload_too_large", "The request body is too large")
        return reply({"detail": text}, status, headers)
    if who == ADMIN:
        return reply({"error": text}, status, headers)
    return reply({"statusCode": status, "message": text}, status, headers)


async def call(handler: Handler, request: web.Request, who: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as error:
        response = shaped(who, error)
        if response is None:
            raise
        return response


@web.middleware
async def counted_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answer to a provider call by provider and status (`/_sandbox/stats`)."""
    response = await handler(request)
    who = family(request.path)
    if who not in (ADMIN, STATUS):
        request.app[STATE].answers[f"{who} {response.status}"] += 1
    return response


@web.middleware
async def provider_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    who = family(request.path)
    state = request.app[STATE]
    knobs = state.knobs
    if who in (ADMIN, STATUS) or not knobs.faulty:
        return await call(handler, request, who)
    fault = await before_handler(who, knobs)
    if fault is not None:
        return fault
    if not knobs.fault_after_accept or not aimed_at(who, knobs):
        return await call(handler, request, who)
    accepted: list[int] = []
    token = ACCEPTED_HERE.set(accepted)
    try:
        response = await call(handler, request, who)
    finally:
        ACCEPTED_HERE.reset(token)
    if accepted and random.random() < knobs.fault_after_accept:
        # A lost reply: the send was accepted but the gateway timed out waiting for it.
        return html(PROXY_504, 504)
    return response
