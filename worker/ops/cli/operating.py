"""`hudhud check` and `hudhud resolve`: what an operator asks of a running deployment."""

from __future__ import annotations

import sys
from typing import Any

import click
import redis

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger.status import Status
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option


@click.command()
@click.argument("message_id")
@click.option("--sent", "as_sent", is_flag=True, help="record it as sent (the provider most likely has it)")
@click.option("--resend", is_flag=True, help="send the whole batch again")
@json_option
def resolve(message_id: str, as_sent: bool, resend: bool, as_json: bool) -> None:
    """Decide on a campaign batch held in doubt (its provider's reply was lost)."""
    from hudhud.config import get_settings
    from hudhud.worker import runtime
    from hudhud.worker.broker import enqueue
    from hudhud.worker.broker.celery_app import app
    from hudhud.worker.delivery import doubt
    from hudhud.worker.delivery.attempt import Delivery
    from hudhud.worker.ledger import lanes

    if as_sent == resend:
        fail(as_json, "resolve: give exactly one of --sent or --resend", EXIT_INPUT, field="decision")
    settings = get_settings()
    delivery = Delivery(runtime.ledger(settings), settings, runtime.provider_client)
    try:
        status = doubt.decide(delivery, message_id, resend=resend)
    except LookupError as exc:
        fail(as_json, str(exc.args[0]), 1)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    if status == Status.QUEUED:
        record = delivery.ledger.get(message_id) or {}
        lane = lanes.lane_or_default(record.get("lane"))
        task = enqueue.DeliveryTask(
            message_id, record.get("provider", ""), record.get("channel", "sms"), None, lane
        )
        enqueue.enqueue(app, delivery.ledger, task)
    emit(as_json, {"id": message_id, "status": status}, f"{message_id} {status}")


@click.command()
@json_option
def check(as_json: bool) -> None:
    """Per provider: reachable, credentials valid, status, balance, senders (exit 1 on a problem)."""
    from hudhud.worker.ops.check import run_checks

    try:
        report = run_checks()
    except ConfigurationError as exc:
        fail(as_json, str(exc), 1, field=exc.variable)
    if as_json:
        emit(True, report, "")
    else:
        _echo_report(report)
    sys.exit(0 if report["ok"] else 1)


def _echo_report(report: dict[str, Any]) -> None:
    for provider, facts in report["providers"].items():
        click.echo(f"{provider}:")
        for name, value in facts.items():
            click.echo(f"  {name:14} {value}")
    click.echo(f"redis: {report['redis']}")
    for name, value in report["redis_server"].items():
        click.echo(f"  {name:16} {value}")
    _echo_queues(report["queues"])
    if report.get("callbacks"):
        click.echo("callbacks:")
        for name, value in report["callbacks"].items():
            click.echo(f"  {name:18} {value}")
    if report.get("failover"):
        click.echo("failover moves:")
        for move, count in report["failover"].items():
            click.echo(f"  {move:32} {count}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")
    for problem in report["problems"]:
        click.echo(f"problem: {problem}")
    click.echo("ok" if report["ok"] else f"not ok: {len(report['problems'])} problem(s)")


def _echo_queues(queues: dict[str, Any]) -> None:
    if not queues:
        return
    workers = queues.get("workers")
    click.echo("queues:")
    for name, depth in queues["depths"].items():
        if isinstance(workers, dict):
            by = [w for w, consumed in workers.items() if name in consumed]
            line = f"{depth} waiting, consumed by {', '.join(by) or 'no running worker'}"
        else:
            line = f"{depth} waiting"
        click.echo(f"  {name:16} {line}")
