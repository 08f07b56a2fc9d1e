"""`hudhud status` and `hudhud changes`: the record of one message, and the status changes as
they are recorded."""

from __future__ import annotations

from typing import Any

import click
import redis

from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option

_SHOWN = (
    "id",
    "channel",
    "provider",
    "status",
    "final",
    "lane",
    "attempts",
    "provider_message_id",
    "cost",
    "currency",
    "error",
    "at",
    "expires_at",
    "in_doubt",
    "retry_of",
    "created_at",
    "recipients",
    "suppressed",
    "batches",
    "recipient_counts",
    "batch_statuses",
)


@click.command()
@click.argument("message_id")
@json_option
def status(message_id: str, as_json: bool) -> None:
    """The record of one message: status, attempts, provider ids, cost, error, events."""
    from hudhud.worker.producer.api import Hudhud, NotFound

    try:
        record = Hudhud().status(message_id)
    except NotFound as exc:
        fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    if as_json:
        emit(True, record, "")
        return
    for name in _SHOWN:
        value = record.get(name)
        if name == "final" and isinstance(value, bool):
            value = "yes" if value else "no"
        if value not in (None, "", False):
            click.echo(f"{name:20} {value}")
    for item in record["events"]:
        extra = ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("type", "at"))
        click.echo(f"  {item.get('at', ''):26} {item.get('type', '')} {extra}".rstrip())


@click.command()
@click.option("--follow", is_flag=True, help="then print each change as it is recorded (Ctrl-C stops)")
@click.option("--last", type=click.IntRange(min=1), help="the last N changes (20 unless --follow or --since)")
@click.option("--since", help="the changes after this stream entry id (e.g. 1764646800000-0)")
@json_option
def changes(follow: bool, last: int | None, since: str | None, as_json: bool) -> None:
    """Status changes as recorded, oldest first, one a line (--json: one JSON object a line)."""
    import signal
    import threading

    from hudhud.worker import runtime
    from hudhud.worker.ledger import changes as feed

    if since is not None and (last is not None or not feed.is_entry_id(since)):
        problem = "give --last or --since, not both" if last else "not a stream entry id (1764646800000-0)"
        fail(as_json, f"since: {problem}", EXIT_INPUT, field="since")
    ledger = runtime.ledger()
    cursor = since or "$"
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM) if follow else ():
        signal.signal(sig, lambda *_: stop.set())
    try:
        if since:
            shown: Any = feed.after(ledger, since)
        else:
            shown = feed.last(ledger, last or 20) if last or not follow else []
        for change in shown:
            emit(as_json, change.as_dict(), change.line())
            cursor = change.entry
        if follow:
            live = feed.follow(ledger, since=cursor, stop=stop)
            click.echo("following the status changes (Ctrl-C stops)", err=True)
            for change in live:
                emit(as_json, change.as_dict(), change.line())
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
