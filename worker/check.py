"""`hudhud check`: per provider, reachable, credentials valid, status, balance, senders.

Besides the facts, the report lists `problems` (anything that stops delivery: an unreachable
provider or Redis, refused or missing credentials, a Taqnyat outage, an empty balance, a
paused provider, a default sender the account does not have, a Redis that evicts keys or is
out of memory, tasks waiting on a queue that no running worker consumes) and `warnings` (a low
balance, a Redis that persists nothing or whose memory is more than 80 % used). `ok` is true
when there is no problem. Tokens never appear in the report.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis
from kombu.exceptions import KombuError
from kombu.transport import redis as kombu_redis
from kombu.utils.url import maybe_sanitize_url

from hudhud.config import Settings, get_settings
from hudhud.worker import redis_safety, runtime
from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger import Ledger
from hudhud.worker.providers.errors import AccountError, ProviderError

Facts = dict[str, Any]

INSPECT_TIMEOUT = 2.0  # seconds the workers have to say which queues they consume
BINDING_PREFIX = kombu_redis.Channel.keyprefix_queue % ""
KOMBU_SEP = kombu_redis.Channel.sep
KOMBU_PRIORITY_STEPS = tuple(kombu_redis.Channel.priority_steps)


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


def _redis_server(settings: Settings, client: redis.Redis, problems: list[str], warnings: list[str]) -> Facts:
    """Eviction policy (a problem unless HUDHUD_ALLOW_EVICTION=1), persistence (a warning),
    memory (a warning from 80 % of maxmemory, a problem from 95 % or when a write is refused)."""
    facts = redis_safety.read_facts(client)
    found, cautions = redis_safety.judge(facts, allow_eviction=settings.allow_eviction)
    refused = redis_safety.write_refused(client)
    if refused:
        found = [p for p in found if not p.startswith("redis: memory is")] + [refused]
    problems += found
    warnings += cautions
    return facts.as_dict()


def _worker_queues(settings: Settings) -> dict[str, list[str]]:
    """The queues each running worker consumes, as the workers answer within the timeout.
    Raises KombuError (or OSError) when the broker cannot carry the question."""
    from hudhud.worker.celery_app import create_app  # the app module reads the settings when imported

    app = create_app(settings)
    try:
        replies = app.control.inspect(timeout=INSPECT_TIMEOUT).active_queues() or {}
    finally:
        app.close()
    return {worker: sorted(str(q.get("name")) for q in queues or []) for worker, queues in replies.items()}


def _queues(settings: Settings, client: redis.Redis, problems: list[str]) -> Facts:
    """Tasks waiting on each queue, and who consumes it. A queue that holds tasks and that no
    running worker consumes is a problem: those tasks are never delivered."""
    depths = queue_depths(client)
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


def queue_names(client: redis.Redis) -> list[str]:
    """hudhud's queues, Celery's default one, and every queue bound to an exchange (kombu's
    Redis layout: the set `_kombu.binding.<exchange>` holds `routing key, pattern, queue`
    joined by its separator). Remote-control and event exchanges are left out."""
    from hudhud.worker.celery_app import CELERY_DEFAULT_QUEUE, CHANNEL_QUEUES, CONTROL_QUEUE

    names = dict.fromkeys((CELERY_DEFAULT_QUEUE, *CHANNEL_QUEUES, CONTROL_QUEUE))
    for key in client.scan_iter(match=f"{BINDING_PREFIX}*", count=500):
        exchange = _text(key)[len(BINDING_PREFIX) :]
        if exchange.endswith("pidbox") or exchange.startswith("celeryev"):
            continue
        for member in client.smembers(key):
            queue = _text(member).split(KOMBU_SEP)[-1]
            if queue and not queue.endswith(".pidbox"):
                names.setdefault(queue)
    return list(names)


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Tasks waiting on each queue: kombu keeps a queue as the Redis list named after it, and
    a message sent with a priority in a list of its own (`<queue><sep><step>`)."""
    names = queue_names(client)
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{name}{KOMBU_SEP}{step}" if step else name)
    # a key of another type under a queue's name is no queue: WRONGTYPE counts as empty
    lengths = [n if isinstance(n, int) else 0 for n in pipe.execute(raise_on_error=False)]
    width = len(KOMBU_PRIORITY_STEPS)
    return {name: sum(lengths[i * width : (i + 1) * width]) for i, name in enumerate(names)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    for provider in ("taqnyat", "taifa"):
        short = counts.get(f"short_of_balance_{provider}", 0)
        if short:
            warnings.append(f"{provider}: {short} send(s) wait for a top-up the balance cannot pay for")
    gone = ledger.gone()
    if gone:
        problems.append(
            f"ledger: {len(gone)} queued or scheduled message(s) lost their record in Redis "
            f"(evicted or not persisted), e.g. {gone[0]}"
        )


def run_checks(settings: Settings | None = None) -> dict[str, Any]:
    """The report of `hudhud check`. Raises ConfigurationError when the settings cannot be read."""
    cfg = settings or get_settings()
    problems: list[str] = []
    warnings: list[str] = []
    providers = {"taqnyat": _taqnyat(cfg, problems, warnings), "taifa": _taifa(cfg, problems)}
    client = runtime.redis_client(cfg)
    try:
        client.ping()
        redis_state = "reachable"
    except redis.RedisError as exc:
        where = maybe_sanitize_url(cfg.redis_url, mask="***")
        redis_state = f"unreachable ({type(exc).__name__}) at {where}"
        problems.append(f"redis: {redis_state}")
    ledger_state: dict[str, Any] = {}
    server: Facts = {}
    queues: Facts = {}
    if redis_state == "reachable":
        ledger = runtime.ledger(cfg)
        ledger_state = ledger.counts()
        _ledger_findings(ledger, ledger_state, problems, warnings)
        for name in providers:
            reason = ledger.pause_reason(name)
            providers[name]["paused"] = f"{reason.get('kind')}: {reason.get('error')}" if reason else "no"
            if reason:
                problems.append(f"{name}: delivery is paused ({providers[name]['paused']})")
        try:
            server = _redis_server(cfg, client, problems, warnings)
            queues = _queues(cfg, client, problems)
        except redis.RedisError as exc:
            problems.append(f"redis: the server could not be inspected ({type(exc).__name__})")
    return {
        "ok": not problems,
        "providers": providers,
        "redis": redis_state,
        "redis_server": server,
        "queues": queues,
        "ledger": ledger_state,
        "problems": problems,
        "warnings": warnings,
    }
