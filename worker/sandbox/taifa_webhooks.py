"""Taifa Mail's webhooks in the sandbox: `/v1/webhooks/` registers a URL, the event types it
wants and a `whsec_` secret; each change of an email's life is then posted to it, signed.

An email's life is computed from its timestamps (`taifa_model`), so a background task looks
every `TICK` seconds for the events that came due and posts each, in its own task, to every
webhook that wants its type: `{"type": "email.delivered", "email_id", "data"}` with
`X-TaifaMail-Event`, `X-TaifaMail-Delivery-ID` and `X-TaifaMail-Signature` (the hex
HMAC-SHA256 of the body keyed with the secret's text). Only a 2xx counts; a delivery is tried
again after 1 min, 5 min, 30 min, 2 h and 8 h, each times the `webhook_time_scale` knob. Only
events from the first registration on are delivered. `GET /_sandbox/taifa/webhooks` shows
the webhooks and every delivery with its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from hudhud.worker.sandbox.clock import iso_time
from hudhud.worker.sandbox.responses import reply, taifa_error
from hudhud.worker.sandbox.state import STATE
from hudhud.worker.sandbox.taifa import BadInput, authed, json_body
from hudhud.worker.sandbox.taifa_model import Email
from hudhud.worker.sandbox.taifa_store import EmailStore

RETRY_SCHEDULE = (60.0, 300.0, 1800.0, 7200.0, 28800.0)
EVENT_TYPES = (
    "email.scheduled",
    "email.queued",
    "email.sent",
    "email.delivered",
    "email.bounced",
    "email.failed",
    "email.rejected",
    "email.cancelled",
    "email.opened",
    "email.clicked",
)
TICK = 0.05
TIMEOUT_SECONDS = 10.0
LAST_EVENT_STEPS = 3  # an email's last event comes at most this many steps after its start
MAX_URL = 2000


@dataclass
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: float

    def wants(self, kind: str) -> bool:
        return kind in self.events or kind.removeprefix("email.") in self.events or "*" in self.events

    def view(self, *, secret: bool) -> dict[str, Any]:
        shown = {"id": self.id, "url": self.url, "events": list(self.events), "active": True}
        if secret:
            shown["secret"] = self.secret
        return {**shown, "created_at": iso_time(self.created_at)}


@dataclass
class Attempt:
    at: float
    status: int | None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {"at": iso_time(self.at), "status": self.status, "error": self.error}


@dataclass
class Delivery:
    id: str
    webhook: Webhook
    kind: str
    email_id: str
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)
    state: str = "pending"  # then "delivered", or "failed" once every retry is spent
    next_at: float | None = None

    def headers(self) -> dict[str, str]:
        signature = hmac.new(self.webhook.secret.encode(), self.body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "User-Agent": "TaifaMail-Webhooks/1.0",
            "X-TaifaMail-Event": self.kind,
            "X-TaifaMail-Delivery-ID": self.id,
            "X-TaifaMail-Signature": signature,
        }

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook.id,
            "url": self.webhook.url,
            "type": self.kind,
            "email_id": self.email_id,
            "state": self.state,
            "next_attempt_at": None if self.next_at is None else iso_time(self.next_at),
            "attempts": [attempt.view() for attempt in self.attempts],
            "body": json.loads(self.body),
        }


@dataclass
class Hub:
    """The webhooks, their deliveries, and which of each email's events were posted."""

    webhooks: dict[str, Webhook] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    since: float | None = None  # events from then on are delivered
    posted: dict[str, set[str]] = field(default_factory=dict)  # email id -> event types
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.webhooks.clear()
        self.deliveries.clear()
        self.posted.clear()
        self.since = None


HUB: web.AppKey[Hub] = web.AppKey("taifa_webhooks", Hub)


# -- what came due ------------------------------------------------------------------------


def recent(store: EmailStore, now: float) -> Iterator[Email]:
    """Emails that may still have an event to come (or just come) at `now`."""
    first = bisect_left(store.created, now - LAST_EVENT_STEPS * store.max_step - 2.0)
    seen: set[str] = set()
    for email in itertools.chain(store.order[first:], store.waiting):
        if email.id not in seen:
            seen.add(email.id)
            yield email


def due(hub: Hub, store: EmailStore, now: float) -> list[tuple[Email, dict[str, Any]]]:
    """The events that came due since the last look, each once: (email, Taifa's event row)."""
    assert hub.since is not None
    found = []
    posted: dict[str, set[str]] = {}
    for email in recent(store, now):
        done = posted[email.id] = hub.posted.get(email.id, set())
        timeline = [(name, at) for name, at in email.timeline() if at <= now]
        for (name, at), row in zip(timeline, email.events(now), strict=True):
            if name not in done and at >= hub.since:
                done.add(name)
                found.append((email, row))
    hub.posted = posted
    return found


def delivery(webhook: Webhook, email: Email, row: dict[str, Any], now: float) -> Delivery:
    kind = f"email.{row['event_type']}"
    data = {**row, "event_id": row["id"], "status": email.status_at(now)}
    del data["id"]
    body = {"type": kind, "email_id": email.id, "data": data}
    text = json.dumps(body, separators=(",", ":"))
    return Delivery(str(uuid.uuid4()), webhook, kind, email.id, text.encode())


# -- posting --------------------------------------------------------------------------------


async def attempt(hub: Hub, item: Delivery) -> bool:
    assert hub.session is not None
    try:
        async with hub.session.post(item.webhook.url, data=item.body, headers=item.headers()) as answer:
            await answer.read()
            item.attempts.append(Attempt(time.time(), answer.status))
            return 200 <= answer.status < 300
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        item.attempts.append(Attempt(time.time(), None, type(error).__name__))
        return False


async def deliver(app: web.Application, item: Delivery) -> None:
    """Post `item` until a 2xx, waiting the scaled schedule between tries."""
    for wait in (*RETRY_SCHEDULE, None):
        if await attempt(app[HUB], item):
            item.state, item.next_at = "delivered", None
            return
        if wait is None:
            break
        pause = wait * app[STATE].knobs.webhook_time_scale
        item.next_at = time.time() + pause
        await asyncio.sleep(pause)
    item.state, item.next_at = "failed", None


def spawn(app: web.Application, item: Delivery) -> None:
    hub = app[HUB]
    task = asyncio.get_running_loop().create_task(deliver(app, item))
    hub.tasks.add(task)
    task.add_done_callback(hub.tasks.discard)


async def dispatch(app: web.Application) -> None:
    """Every TICK: post each event that came due to the webhooks that want it."""
    hub = app[HUB]
    while True:
        await asyncio.sleep(TICK)
        if not hub.webhooks or hub.since is None:
            continue
        now = time.time()
        for email, row in due(hub, app[STATE].emails, now):
            for webhook in list(hub.webhooks.values()):
                if webhook.wants(f"email.{row['event_type']}"):
                    item = delivery(webhook, email, row, now)
                    hub.deliveries.append(item)
                    spawn(app, item)


async def running(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))
    loop = asyncio.get_running_loop().create_task(dispatch(app))
    yield
    loop.cancel()
    hub.reset()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    await hub.session.close()


# -- the API ----------------------------------------------------------------------------------


def _problem(loc: str, message: str) -> BadInput:
    return BadInput([{"type": "value_error", "loc": ["body", loc], "msg": message}])


def checked_webhook(body: Any, now: float) -> Webhook:
    if not isinstance(body, dict):
        raise BadInput([{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary"}])
    url = body.get("url")
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise _problem("url", "Input should be a valid http or https URL")
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _problem("url", "Input should be a valid http or https URL")
    events = body.get("events", list(EVENT_TYPES))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise _problem("events", "Input should be a non-empty list of event types")
    secret = body.get("secret")
    if secret is None:
        secret = "whsec_" + secrets.token_urlsafe(32)
    elif not isinstance(secret, str) or not secret.strip() or len(secret) > 200:
        raise _problem("secret", "Input should be a string of at most 200 characters")
    return Webhook(str(uuid.uuid4()), url, tuple(events), secret, now)


@authed
async def register(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    now = time.time()
    webhook = checked_webhook(await json_body(request), now)
    hub.webhooks[webhook.id] = webhook
    if hub.since is None:
        hub.since = now
    return reply(webhook.view(secret=True), 201)


@authed
async def list_webhooks(request: web.Request) -> web.StreamResponse:
    items = [webhook.view(secret=False) for webhook in request.app[HUB].webhooks.values()]
    return reply({"items": items, "total": len(items)})


@authed
async def remove(request: web.Request) -> web.StreamResponse:
    if request.app[HUB].webhooks.pop(request.match_info["webhook_id"], None) is None:
        return taifa_error(404, "not_found", "Webhook not found")
    return web.Response(status=204)


async def redirect_collection(request: web.Request) -> web.StreamResponse:
    raise web.HTTPTemporaryRedirect(request.url.with_path("/v1/webhooks/"))


async def record(request: web.Request) -> web.Response:
    """The sandbox's record: every webhook (with its secret) and delivery (with its attempts)."""
    hub = request.app[HUB]
    email_id = request.query.get("email_id")
    chosen = [d for d in hub.deliveries if email_id is None or d.email_id == email_id]
    return reply(
        {
            "webhooks": [webhook.view(secret=True) for webhook in hub.webhooks.values()],
            "deliveries": [item.view() for item in chosen],
        }
    )


async def redeliver(request: web.Request) -> web.Response:
    """Post one delivery once more now, as it was (same id, body and signature)."""
    hub = request.app[HUB]
    wanted = request.match_info["delivery_id"]
    item = next((d for d in hub.deliveries if d.id == wanted), None)
    if item is None:
        return reply({"error": "no such delivery"}, 404)
    ok = await attempt(hub, item)
    return reply({"delivered": ok, "attempt": item.attempts[-1].view()})


def add_routes(app: web.Application) -> None:
    app[HUB] = Hub()
    app.cleanup_ctx.append(running)
    router = app.router
    router.add_route("*", "/v1/webhooks", redirect_collection)
    router.add_post("/v1/webhooks/", register)
    router.add_get("/v1/webhooks/", list_webhooks)
    router.add_delete("/v1/webhooks/{webhook_id}", remove)
    router.add_get("/_sandbox/taifa/webhooks", record)
    router.add_post("/_sandbox/taifa/webhooks/deliveries/{delivery_id}/redeliver", redeliver)
