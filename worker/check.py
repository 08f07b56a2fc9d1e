"""`hudhud check`: per provider, reachable, credentials valid, status, balance, senders."""

from __future__ import annotations

from typing import Any

import redis

from config import get_settings
from worker import runtime
from worker.errors import ConfigurationError
from worker.providers.errors import AccountError, ProviderError


def _taqnyat() -> dict[str, Any]:
    facts: dict[str, Any] = {"reachable": False, "credentials": "unknown"}
    try:
        client = runtime.provider_client("taqnyat")
    except ConfigurationError as exc:
        return {**facts, "credentials": f"{exc.variable} is not set"}
    try:
        status = client.system_status()
        facts.update(
            reachable=True, status="operational" if status.operational else f"outage: {status.description}"
        )
    except ProviderError as exc:
        facts["status"] = f"unknown ({exc.describe()})"
    try:
        balance = client.balance()
        facts.update(
            reachable=True, credentials="valid", balance=f"{balance.balance} {balance.currency or ''}".strip()
        )
        facts["senders"] = ", ".join(s.name for s in client.senders()) or "(none)"
    except AccountError as exc:
        facts.update(reachable=True, credentials=f"refused ({exc.describe()})")
    except ProviderError as exc:
        facts["error"] = exc.describe()
    return facts


def _taifa() -> dict[str, Any]:
    facts: dict[str, Any] = {"reachable": False, "credentials": "unknown"}
    try:
        client = runtime.provider_client("taifa")
    except ConfigurationError as exc:
        return {**facts, "credentials": f"{exc.variable} is not set"}
    try:
        client.list(limit=1)
        facts.update(reachable=True, credentials="valid", status="operational")
    except AccountError as exc:
        facts.update(reachable=True, credentials=f"refused ({exc.describe()})")
    except ProviderError as exc:
        facts["error"] = exc.describe()
    return facts


def run_checks() -> dict[str, Any]:
    settings = get_settings()
    providers = {"taqnyat": _taqnyat(), "taifa": _taifa()}
    try:
        runtime.redis_client(settings).ping()
        redis_state = "reachable"
    except redis.RedisError as exc:
        redis_state = f"unreachable ({type(exc).__name__})"
    ledger_state: dict[str, Any] = {}
    if redis_state == "reachable":
        ledger = runtime.ledger(settings)
        ledger_state = ledger.counts()
        for name in providers:
            reason = ledger.pause_reason(name)
            providers[name]["paused"] = f"{reason.get('kind')}: {reason.get('error')}" if reason else "no"
    ok = redis_state == "reachable" and all(
        p["reachable"] and p["credentials"] == "valid" for p in providers.values()
    )
    return {"ok": ok, "providers": providers, "redis": redis_state, "ledger": ledger_state}
