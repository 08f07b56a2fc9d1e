"""`hudhud check`: per provider, reachable, credentials valid, status, balance, senders.

Besides the facts, the report lists `problems` (anything that stops delivery: an unreachable
provider or Redis, refused or missing credentials, a Taqnyat outage, an empty balance, a
paused provider, a default sender the account does not have, a Redis that evicts keys or is
out of memory, tasks waiting on a queue that no running worker consumes) and `warnings` (a low
balance, a Redis that persists nothing or whose memory is more than 80 % used). `ok` is true
when there is no problem. Tokens never appear in the report. `failover` counts the email
failover moves so far, by `from>to:reason` (`hudhud:failover:stats`).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.exceptions import KombuError

from hudhud.config import Settings, get_settings
from hudhud.worker import redaction, runtime
from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger import Ledger, inspect
from hudhud.worker.ledger.calls import failover_stats
from hudhud.worker.ops import redis_safety
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import CheckReport

Facts = dict[str, Any]

INSPECT_TIMEOUT = 2.0  # seconds the workers have to say which queues they consume


def _bad_setting(exc: ConfigurationError) -> str:
    return f"{exc.variable} is invalid ({exc.detail})" if exc.detail else f"{exc.variable} is invalid"


def _provider(name: str, settings: Settings, problems: list[str], warnings: list[str]) -> Facts:
    """One registered provider's facts (`Provider.check`); its problems and warnings added."""
    report = CheckReport()
    try:
        runtime.provider_client(name, settings).check(settings, report)
    except ConfigurationError as exc:
        unset = exc.detail is None
        report.facts["credentials" if unset else "error"] = (
            f"{exc.variable} is not set" if unset else _bad_setting(exc)
        )
        report.problems.append(f"{name}: {report.facts['credentials' if unset else 'error']}")
    problems += report.problems
    warnings += report.warnings
    return report.facts


def _redis_server(settings: Settings, ledger: Ledger, problems: list[str], warnings: list[str]) -> Facts:
    """Eviction policy (a problem unless HUDHUD_ALLOW_EVICTION=1), persistence (a warning),
    memory (a warning from 80 % of maxmemory, a problem from 95 % or when a write is refused)."""
    facts = inspect.server_facts(ledger)
    found, cautions = redis_safety.judge(facts, allow_eviction=settings.allow_eviction)
    refused = inspect.write_refusal(ledger)
    if refused:
        found = [p for p in found if not p.startswith("redis: memory is")]
        found.append(redis_safety.refusal_text(refused))
    problems += found
    warnings += cautions
    return redis_safety.facts_report(facts)


def _worker_queues(settings: Settings) -> dict[str, list[str]]:
    """The queues each running worker consumes, as the workers answer within the timeout.
    Raises KombuError (or OSError) when the broker cannot carry the question."""
    from hudhud.worker.broker.celery_app import create_app  # the app module reads the settings when imported

    app = create_app(settings)
    try:
        replies = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    finally:
        app.close()
    return {worker: sorted(str(q.get("name")) for q in queues or []) for worker, queues in replies.items()}


def _queues(settings: Settings, ledger: Ledger, problems: list[str]) -> Facts:
    """Tasks waiting on each queue, and who consumes it. A queue that holds tasks and that no
    running worker consumes is a problem: those tasks are never delivered."""
    depths = queue_depths(ledger)
    waiting = {name: depth for name, depth in depths.items() if depth}
    facts: Facts = {"depths": depths}
    if not waiting:
        facts["workers"] = "not asked (no task waits)"
        return facts
    total = sum(waiting.values())
    try:
        consumed = _worker_queues(settings)
        facts["workers"] = consumed
        if not consumed:
            problems.append(
                f"queues: no running worker answered within {INSPECT_TIMEOUT:g} s while "
                f"{_tasks(total)} wait{'s' if total == 1 else ''}"
            )
    except (KombuError, OSError) as exc:
        consumed = {}
        facts["workers"] = f"could not be asked ({type(exc).__name__})"
        problems.append(
            f"queues: the workers could not be asked ({type(exc).__name__}) while "
            f"{_tasks(total)} wait{'s' if total == 1 else ''}"
        )
    consumers = {q for queues in consumed.values() for q in queues}
    for name, depth in waiting.items():
        if name not in consumers:
            problems.append(
                f"queues: {_tasks(depth)} wait{'s' if depth == 1 else ''} on queue {name}, "
                "which no running worker consumes"
            )
    return facts


def _tasks(count: int) -> str:
    return f"{count} task{'' if count == 1 else 's'}"


def queue_depths(ledger: Ledger) -> dict[str, int]:
    """Tasks waiting on hudhud's queues, Celery's default one and every queue bound to an
    exchange (remote-control and event exchanges left out)."""
    from hudhud.worker.broker.celery_app import CELERY_DEFAULT_QUEUE, CHANNEL_QUEUES, CONTROL_QUEUE

    return inspect.queue_depths(ledger, (CELERY_DEFAULT_QUEUE, *CHANNEL_QUEUES, CONTROL_QUEUE))


def _ledger_findings(
    ledger: Ledger, counts: dict[str, int], problems: list[str], warnings: list[str]
) -> None:
    """Messages waiting on a person (in doubt), on a top-up, or lost by Redis."""
    doubt = counts.get("in_doubt_awaiting_decision", 0)
    if doubt:
        first = ledger.in_index("doubt", limit=1)[0][0]
        problems.append(
            f"ledger: {doubt} campaign batch(es) in doubt wait for a decision "
            f"(e.g. hudhud resolve {first} --sent | --resend)"
        )
    for provider in registry.names():
        short = counts.get(f"short_of_balance_{provider}", 0)
        if short:
            warnings.append(f"{provider}: {short} send(s) wait for a top-up the balance cannot pay for")
    gone = ledger.gone()
    if gone:
        problems.append(
            f"ledger: {len(gone)} queued or scheduled message(s) lost their record in Redis "
            f"(evicted or not persisted), e.g. {gone[0]}"
        )


def _callbacks(settings: Settings, ledger: Ledger, problems: list[str], warnings: list[str]) -> Facts:
    """Callbacks pending and given up; an endpoint disabled by a 410 is a problem, callbacks
    pending with no dispatcher running a warning."""
    from hudhud.worker.ledger.callbacks import CallbackStore
    from hudhud.worker.web.callbacks.report import summary

    report = summary(CallbackStore(ledger), settings)
    for endpoint in report["disabled_endpoints"]:
        problems.append(
            f"callbacks: {endpoint['endpoint']} answered 410 Gone and is disabled "
            "(hudhud callbacks enable URL)"
        )
    if report["pending"] and not report["dispatchers"]:
        warnings.append(f"callbacks: {report['pending']} pending and no `hudhud callbacks run` is running")
    keep = ("endpoint", "dispatchers", "pending", "given_up", "dropped", "refused", "disabled_endpoints")
    return {name: report[name] for name in keep}


def run_checks(settings: Settings | None = None) -> dict[str, Any]:
    """The report of `hudhud check`. Raises ConfigurationError when the settings cannot be read."""
    cfg = settings or get_settings()
    problems: list[str] = []
    warnings: list[str] = []
    providers = {name: _provider(name, cfg, problems, warnings) for name in registry.names()}
    ledger = runtime.ledger(cfg)
    try:
        inspect.ping(ledger)
        redis_state = "reachable"
    except redis.RedisError as exc:
        where = redaction.mask_url(cfg.redis_url)
        redis_state = f"unreachable ({type(exc).__name__}) at {where}"
        problems.append(f"redis: {redis_state}")
    ledger_state: dict[str, Any] = {}
    server: Facts = {}
    queues: Facts = {}
    callbacks: Facts = {}
    moves: dict[str, int] = {}
    if redis_state == "reachable":
        ledger_state = ledger.counts(registry.names())
        moves = dict(sorted(failover_stats(ledger).items()))
        _ledger_findings(ledger, ledger_state, problems, warnings)
        for name in providers:
            reason = ledger.pause_reason(name)
            providers[name]["paused"] = f"{reason.get('kind')}: {reason.get('error')}" if reason else "no"
            if reason:
                problems.append(f"{name}: delivery is paused ({providers[name]['paused']})")
        try:
            server = _redis_server(cfg, ledger, problems, warnings)
            queues = _queues(cfg, ledger, problems)
            callbacks = _callbacks(cfg, ledger, problems, warnings)
        except redis.RedisError as exc:
            problems.append(f"redis: the server could not be inspected ({type(exc).__name__})")
    return {
        "ok": not problems,
        "providers": providers,
        "redis": redis_state,
        "redis_server": server,
        "queues": queues,
        "ledger": ledger_state,
        "callbacks": callbacks,
        "failover": moves,
        "problems": problems,
        "warnings": warnings,
    }
