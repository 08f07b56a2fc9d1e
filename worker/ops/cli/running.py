"""`hudhud worker`, `beat`, `flower`, `sandbox` and `dev`: the long-running processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hudhud.worker.ops.processes import DEFAULT_CONCURRENCY

_passthrough = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """A Celery worker (ARGS go to celery worker)."""
    from hudhud.worker.ops.processes import run_worker

    run_worker(list(args))


@click.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def beat(args: tuple[str, ...]) -> None:
    """The periodic jobs (exactly one beat per deployment)."""
    from hudhud.worker.ops.processes import run_beat

    run_beat(list(args))


@click.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def flower(args: tuple[str, ...]) -> None:
    """Flower on this app (ARGS go to flower, e.g. --port=5555 --basic-auth=user:pass)."""
    from hudhud.worker.ops.processes import run_flower

    run_flower(list(args))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8030, show_default=True)
def api(host: str, port: int) -> None:
    """The HTTP API for producers in any language, and the provider webhooks."""
    from hudhud.worker.web.server import run

    run(host=host, port=port)


@click.command()
@click.option("--port", type=int, default=8025, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--latency-ms", type=float)
@click.option("--error-rate", type=float, help="share of 5xx answers (0..1)")
@click.option("--timeout-rate", type=float, help="share of requests that hang (0..1)")
@click.option("--rate-429", type=float, help="share of 429 answers (0..1)")
@click.option("--balance", type=float)
@click.option("--knobs", help="JSON object of further knobs")
def sandbox(
    port: int,
    host: str,
    latency_ms: float | None,
    error_rate: float | None,
    timeout_rate: float | None,
    rate_429: float | None,
    balance: float | None,
    knobs: str | None,
) -> None:
    """A local simulator of both provider APIs (Taqnyat at /, Taifa at /v1/emails)."""
    from hudhud.worker.sandbox.app import run

    values: dict[str, Any] = json.loads(knobs) if knobs else {}
    for name, value in (
        ("latency_ms", latency_ms),
        ("error_rate_5xx", error_rate),
        ("timeout_rate", timeout_rate),
        ("rate_429", rate_429),
        ("balance", balance),
    ):
        if value is not None:
            values[name] = value
    run(host=host, port=port, knobs=values)


@click.command()
@click.option("--data-dir", default=".hudhud", show_default=True, help="where Redis keeps its data")
@click.option("--redis-port", type=int, default=6390, show_default=True)
@click.option("--sandbox-port", type=int, default=8025, show_default=True)
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option("--api-port", type=int, default=8030, show_default=True)
@click.option(
    "--concurrency", type=int, default=DEFAULT_CONCURRENCY, show_default=True, help="worker greenlets"
)
def dev(
    data_dir: str, redis_port: int, sandbox_port: int, flower_port: int, api_port: int, concurrency: int
) -> None:
    """Everything on one machine: Redis, sandbox, worker, beat, Flower, the API and the
    callback dispatcher (Ctrl-C stops all)."""
    from hudhud.worker.ops.devstack import DevPorts, run_dev

    ports = DevPorts(redis=redis_port, sandbox=sandbox_port, flower=flower_port, api=api_port)
    sys.exit(run_dev(Path(data_dir), ports=ports, concurrency=concurrency))
