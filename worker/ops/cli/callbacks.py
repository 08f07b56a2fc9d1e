"""`hudhud callbacks run | replay | status | enable`: the status callbacks' dispatcher and
what an operator asks of it."""

from __future__ import annotations

import logging
import signal
from typing import Any

import click
import redis

from hudhud.worker.errors import InvalidInput
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option


def _store() -> Any:
    from hudhud.config import get_settings
    from hudhud.worker import runtime
    from hudhud.worker.ledger.callbacks import CallbackStore

    settings = get_settings()
    return settings, CallbackStore(runtime.ledger(settings))


@click.group()
def callbacks() -> None:
    """Status callbacks: run the dispatcher, replay, status, enable an endpoint again."""


@callbacks.command()
@click.option("--threads", type=click.IntRange(1, 512), default=16, show_default=True, help="calls at once")
def run(threads: int) -> None:
    """The dispatcher: from the change stream to the endpoints, until SIGTERM or SIGINT."""
    from hudhud.worker.web.callbacks.dispatcher import Dispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from hudhud.config import get_settings
    from hudhud.worker import runtime

    settings = get_settings()
    dispatcher = Dispatcher(settings, runtime.ledger(settings), threads=threads)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: dispatcher.stop())
    dispatcher.run()


@callbacks.command()
@click.option("--since", required=True, help="ISO 8601 time with an offset or Z")
@json_option
def replay(since: str, as_json: bool) -> None:
    """Queue again the callbacks of every change since then (with their first webhook-ids)."""
    from hudhud.worker.web.callbacks.replay import replay as queue_again

    settings, store = _store()
    try:
        counts = queue_again(store, settings, since)
    except InvalidInput as exc:
        fail(as_json, f"{exc.field}: {exc.message}", EXIT_INPUT, field=exc.field)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    text = f"{counts['queued']} callback(s) queued again"
    others = [f"{n} {what.replace('_', ' ')}" for what, n in counts.items() if what != "queued" and n]
    emit(as_json, counts, text + (f" ({', '.join(others)})" if others else ""))


@callbacks.command()
@json_option
def status(as_json: bool) -> None:
    """Pending, given up, dropped, disabled endpoints, tries by what they got."""
    from hudhud.worker.web.callbacks.report import lines, summary

    settings, store = _store()
    try:
        report = summary(store, settings)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    emit(as_json, report, "\n".join(lines(report)))


@callbacks.command()
@click.argument("url")
@json_option
def enable(url: str, as_json: bool) -> None:
    """Send to an endpoint disabled by a 410 again: HUDHUD_CALLBACK_URL, any URL of a disabled
    origin (scheme, host, port), or either as `status` shows it."""
    from hudhud.worker.producer import targets

    _settings, store = _store()
    named = {url, targets.origin(url)} if "://" in url else {url}
    try:
        found = [u for u in store.disabled() if u in named or url == targets.shown(u)]
        for each in found:
            store.enable(each)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    if not found:
        fail(as_json, "url: no disabled endpoint has this URL", EXIT_INPUT, field="url")
    emit(as_json, {"enabled": len(found)}, f"{len(found)} endpoint(s) enabled")
