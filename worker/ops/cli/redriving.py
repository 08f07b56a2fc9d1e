"""`hudhud redrive`: send messages that ended failed or expired again, as new linked messages."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import redis

from hudhud.worker.ledger.status import REDRIVABLE, Status
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option


def _since(value: str | None, as_json: bool) -> float | None:
    """`--since` as epoch seconds: an ISO time (UTC when it names no offset)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(as_json, f"since: not an ISO time: {value!r}", EXIT_INPUT, field="since")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@click.command()
@click.option(
    "--status",
    "wanted",
    required=True,
    type=click.Choice(sorted(s.value for s in REDRIVABLE)),
    help="which ended messages to send again",
)
@click.option("--since", help="only those that ended at or after this ISO time")
@click.option("--provider", help="only those of this provider")
@click.option("--dry-run", is_flag=True, help="list what would be sent, send nothing")
@json_option
def redrive(wanted: str, since: str | None, provider: str | None, dry_run: bool, as_json: bool) -> None:
    """Send failed or expired messages again, as new messages linked to the old ones."""
    from hudhud.worker.producer.api import Hudhud
    from hudhud.worker.producer.redrive import Outcome
    from hudhud.worker.producer.redrive import redrive as run
    from hudhud.worker.providers import registry

    if provider is not None and not registry.known(provider):
        fail(as_json, f"provider: unknown provider {provider!r}", EXIT_INPUT, field="provider")
    moment = _since(since, as_json)
    try:
        done = run(Hudhud(), Status(wanted), since=moment, provider=provider, dry_run=dry_run)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    sent = [d for d in done if d.outcome is Outcome.REDRIVEN]
    would = [d for d in done if d.outcome is Outcome.WOULD_REDRIVE]
    skipped = [d for d in done if d.outcome is Outcome.SKIPPED]
    data = {
        "status": wanted,
        "dry_run": dry_run,
        "count": len(would) if dry_run else len(sent),
        "skipped": len(skipped),
        "messages": [d.as_dict() for d in done],
    }
    head = f"would redrive {len(would)}" if dry_run else f"redriven {len(sent)}"
    lines = [f"{head} {wanted} message(s), skipped {len(skipped)}"]
    for d in done:
        if d.outcome is Outcome.REDRIVEN:
            lines.append(f"{d.id} -> {d.new_id} {d.status}")
        elif d.outcome is Outcome.WOULD_REDRIVE:
            lines.append(f"{d.id} would be sent again ({d.provider})")
        else:
            lines.append(f"{d.id} skipped: {d.reason}")
    emit(as_json, data, "\n".join(lines))
