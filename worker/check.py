"""`hudhud check`: per provider, reachable, credentials valid, status, balance, senders.

Besides the facts, the report lists `problems` (anything that stops delivery: an unreachable
provider or Redis, refused or missing credentials, a Taqnyat outage, an empty balance, a
paused provider, a default sender the account does not have) and `warnings` (a low balance).
`ok` is true when there is no problem. Tokens never appear in the report.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis

from config import Settings, get_settings
from worker import runtime
from worker.errors import ConfigurationError
from worker.providers.errors import AccountError, ProviderError

Facts = dict[str, Any]


def _bad_setting(exc: ConfigurationError) -> str:
    return f"{exc.variable} is invalid ({exc.detail})" if exc.detail else f"{exc.variable} is invalid"


def _taqnyat(settings: Settings, problems: list[str], warnings: list[str]) -> Facts:
    facts: Facts = {"reachable": False, "credentials": "unknown"}
    try:
        client = runtime.provider_client("taqnyat", settings)
    except ConfigurationError as exc:
        facts["credentials"] = f"{exc.variable} is not set"
        problems.append(f"taqnyat: {exc.variable} is not set")
        return facts
    try:
        status = client.system_status()
        facts.update(
            reachable=True, status="operational" if status.operational else f"outage: {status.description}"
        )
        if not status.operational:
            problems.append(f"taqnyat: outage reported ({status.description})")
    except ProviderError as exc:
        facts["status"] = f"unknown ({exc.describe()})"
    except ConfigurationError as exc:
        facts["error"] = _bad_setting(exc)
        problems.append(f"taqnyat: {facts['error']}")
        return facts
    try:
        balance = client.balance()
        facts.update(
            reachable=True, credentials="valid", balance=f"{balance.balance} {balance.currency or ''}".strip()
        )
        amount = Decimal(balance.balance)
        if amount <= 0:
            problems.append(f"taqnyat: the balance is {facts['balance']}: every send is refused")
        elif amount <= Decimal(str(settings.low_balance)):
            warnings.append(
                f"taqnyat: the balance {facts['balance']} is at or below HUDHUD_LOW_BALANCE "
                f"({settings.low_balance:g})"
            )
        names = [s.name for s in client.senders()]
        facts["senders"] = ", ".join(names) or "(none)"
        if settings.taqnyat_sender and settings.taqnyat_sender not in names:
            problems.append(
                f"taqnyat: TAQNYAT_SENDER {settings.taqnyat_sender} is not a sender of the account"
            )
    except AccountError as exc:
        facts.update(reachable=True, credentials=f"refused ({exc.describe()})")
        problems.append(f"taqnyat: TAQNYAT_TOKEN refused ({exc.describe()})")
    except ProviderError as exc:
        facts["error"] = exc.describe()
        problems.append(f"taqnyat: {'' if facts['reachable'] else 'unreachable: '}{exc.describe()}")
    return facts


def _taifa(settings: Settings, problems: list[str]) -> Facts:
    facts: Facts = {"reachable": False, "credentials": "unknown"}
    try:
        client = runtime.provider_client("taifa", settings)
    except ConfigurationError as exc:
        facts["credentials"] = f"{exc.variable} is not set"
        problems.append(f"taifa: {exc.variable} is not set")
        return facts
    try:
        client.list(limit=1)
        facts.update(reachable=True, credentials="valid", status="operational")
    except AccountError as exc:
        facts.update(reachable=True, credentials=f"refused ({exc.describe()})")
        problems.append(f"taifa: TAIFA_API_KEY refused ({exc.describe()})")
    except ProviderError as exc:
        facts["error"] = exc.describe()
        problems.append(f"taifa: unreachable: {exc.describe()}")
    except ConfigurationError as exc:
        facts["error"] = _bad_setting(exc)
        problems.append(f"taifa: {facts['error']}")
    return facts


def run_checks(settings: Settings | None = None) -> dict[str, Any]:
    """The report of `hudhud check`. Raises ConfigurationError when the settings cannot be read."""
    cfg = settings or get_settings()
    problems: list[str] = []
    warnings: list[str] = []
    providers = {"taqnyat": _taqnyat(cfg, problems, warnings), "taifa": _taifa(cfg, problems)}
    try:
        runtime.redis_client(cfg).ping()
        redis_state = "reachable"
    except redis.RedisError as exc:
        redis_state = f"unreachable ({type(exc).__name__})"
        problems.append(f"redis: {redis_state}")
    ledger_state: dict[str, Any] = {}
    if redis_state == "reachable":
        ledger = runtime.ledger(cfg)
        ledger_state = ledger.counts()
        for name in providers:
            reason = ledger.pause_reason(name)
            providers[name]["paused"] = f"{reason.get('kind')}: {reason.get('error')}" if reason else "no"
            if reason:
                problems.append(f"{name}: delivery is paused ({providers[name]['paused']})")
    return {
        "ok": not problems,
        "providers": providers,
        "redis": redis_state,
        "ledger": ledger_state,
        "problems": problems,
        "warnings": warnings,
    }
