"""The sandbox's own controls under /_sandbox: knobs, balance, the record of sends, reset."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hudhud.worker.sandbox.bodies import load_json
from hudhud.worker.sandbox.knobs import KnobError, parse_amount, parse_balance
from hudhud.worker.sandbox.responses import reply
from hudhud.worker.sandbox.state import STATE, money
from hudhud.worker.sandbox.taifa_webhooks import HUB


def refuse(message: str, **extra: Any) -> web.Response:
    return reply({"error": message, **extra}, 400)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object; {} for an empty body; None when it is anything else."""
    raw = await request.read()
    if not raw.strip():
        return {}
    _, body = load_json(raw)
    return body if isinstance(body, dict) else None


async def stats(request: web.Request) -> web.Response:
    """Answers given to provider calls so far, by provider and HTTP status."""
    return reply({"answers": dict(request.app[STATE].answers)})


async def get_knobs(request: web.Request) -> web.Response:
    return reply(request.app[STATE].knobs_view())


async def patch_knobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    values = await json_object(request)
    if values is None:
        return refuse("the body must be a JSON object of knob values")
    try:
        state.patch_knobs(values)
    except KnobError as error:
        return refuse(error.message, unknown=error.unknown)
    return reply(state.knobs_view())


def balance_view(request: web.Request) -> web.Response:
    return reply({"balance": money(request.app[STATE].balance), "currency": "SAR"})


async def get_balance(request: web.Request) -> web.Response:
    return balance_view(request)


async def change_balance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await json_object(request)
    if body is None or len(body.keys() & {"set", "add"}) != 1 or body.keys() - {"set", "add"}:
        return refuse('the body must be {"set": amount} or {"add": amount}')
    try:
        if "set" in body:
            state.balance = parse_balance(body["set"])
        else:
            state.balance = parse_balance(state.balance + parse_amount(body["add"]))
    except KnobError as error:
        return refuse(error.message)
    return balance_view(request)


def query_number(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    value = int(raw)
    if value < 0:
        raise ValueError(name)
    return value


async def sends(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        since = query_number(request, "since_seq") or 0
        limit = query_number(request, "limit")
    except ValueError:
        return refuse("since_seq and limit must be whole numbers >= 0")
    chosen = state.sends_since(since, limit)
    return reply(
        {"count": len(chosen), "last_seq": len(state.sends), "sends": [entry.as_dict() for entry in chosen]}
    )


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset()
    request.app[HUB].reset()
    return reply({"reset": True, "knobs": state.knobs_view()})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/_sandbox/knobs", get_knobs)
    router.add_post("/_sandbox/knobs", patch_knobs)
    router.add_get("/_sandbox/balance", get_balance)
    router.add_post("/_sandbox/balance", change_balance)
    router.add_get("/_sandbox/sends", sends)
    router.add_post("/_sandbox/reset", reset)
    router.add_get("/_sandbox/stats", stats)
