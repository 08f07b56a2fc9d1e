"""`hudhud top`: a live view of the queues, the sends, the providers' pauses and balances,
read from the ledger's overview (`hudhud.worker.ledger.overview`).

Rates are the change of the ledger's counters between two readings, so every view (and every
Prometheus scrape) agrees with the change stream. Nothing shown names a recipient: the figures
are counts by queue, channel, provider and status, and a pause's words are redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import click
import redis

from hudhud.worker.ledger import overview
from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.status import Status
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import fail, json_option
from hudhud.worker.redaction import NO_SECRETS

FAILURES = (Status.FAILED, Status.REJECTED)  # a change to one of these is a failed send
NONE = "—"
WIDTH = 120  # columns of a frame printed where there is no terminal to measure


def quantile(histogram: overview.Histogram, q: float) -> float | None:
    """The `q` quantile of a cumulative histogram, interpolated within its bucket (as
    Prometheus does); beyond the last finite bound, that bound. None with nothing counted."""
    total = histogram.buckets[-1][1] if histogram.buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, cumulative in histogram.buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            within = cumulative - below
            return lower + (bound - lower) * (rank - below) / within if within else bound
        lower, below = bound, cumulative
    return lower


def _seconds(histogram: overview.Histogram | None, q: float) -> float | None:
    found = quantile(histogram, q) if histogram else None
    return None if found is None else round(found, 3)


def _count(shot: overview.Snapshot, channel: str, provider: str, statuses: tuple[Status, ...]) -> int:
    return sum(shot.messages.get((channel, provider, str(s)), 0) for s in statuses)


def _rate(now: int, before: int | None, seconds: float) -> float | None:
    if before is None or seconds <= 0:
        return None
    return round(max(0, now - before) / seconds, 3)


def _sends(shot: overview.Snapshot, before: overview.Snapshot | None) -> list[dict[str, Any]]:
    """Per channel and provider: sends and failures (totals and per second), p50/p95."""
    series = {(c, p) for c, p, _ in shot.messages} | set(shot.send)
    seconds = shot.at - before.at if before else 0.0
    rows = []
    for channel, provider in sorted(series):
        sent = _count(shot, channel, provider, (Status.SENT,))
        failed = _count(shot, channel, provider, FAILURES)
        histogram = shot.send.get((channel, provider))
        rows.append(
            {
                "channel": channel,
                "provider": provider,
                "sent": sent,
                "failed": failed,
                "sent_per_second": _rate(
                    sent, _count(before, channel, provider, (Status.SENT,)) if before else None, seconds
                ),
                "failed_per_second": _rate(
                    failed, _count(before, channel, provider, FAILURES) if before else None, seconds
                ),
                "send_seconds_p50": _seconds(histogram, 0.5),
                "send_seconds_p95": _seconds(histogram, 0.95),
            }
        )
    return rows


def _pause(reason: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pause's kind, words (redacted) and start; not the message that caused it."""
    if reason is None:
        return None
    since = reason.get("since")
    return {
        "kind": str(reason.get("kind") or "paused"),
        "error": NO_SECRETS(str(reason["error"])) if reason.get("error") else None,
        "since": iso(float(since)) if isinstance(since, int | float) else None,
    }


def _balance(balance: dict[str, Any] | None) -> dict[str, Any] | None:
    if not balance or balance.get("amount") in (None, "", "None"):
        return None
    at = balance.get("at")
    try:
        read_at = iso(float(at)) if at else None
    except ValueError:
        read_at = None
    return {"amount": balance["amount"], "currency": balance.get("currency") or None, "at": read_at}


def figures(shot: overview.Snapshot, before: overview.Snapshot | None) -> dict[str, Any]:
    """One frame as plain data (what `--json` prints): rates need the reading `before`."""
    return {
        "at": iso(shot.at),
        "interval": round(shot.at - before.at, 3) if before else None,
        "queues": [
            {"name": q.name, "lane": q.lane, "depth": q.depth, "oldest_age": round(q.oldest_age, 3)}
            for q in shot.queues
        ],
        "sends": _sends(shot, before),
        "changes": [
            {"channel": c, "provider": p, "status": s, "count": n}
            for (c, p, s), n in sorted(shot.messages.items())
        ],
        "providers": [
            {
                "name": p.name,
                "paused": p.paused,
                "pause": _pause(p.pause),
                "held": p.held,
                "balance": _balance(p.balance),
            }
            for p in shot.providers
        ],
        "scheduled": shot.scheduled,
        "callbacks_pending": shot.callbacks_pending,
        "in_doubt": {"total": shot.in_doubt_total, "waiting": shot.in_doubt_waiting},
        "failover_moves": sum(shot.failover_moves.values()),
    }


# --- the frame on a terminal -----------------------------------------------------------------


def _age(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _num(value: float | None, unit: str = "") -> str:
    return NONE if value is None else f"{value:.2f}{unit}"


def render(frame: dict[str, Any]) -> Any:
    """The frame as rich tables: queues, sends, providers, then the totals."""
    from rich.console import Group
    from rich.table import Table

    queues = Table("queue", "lane", "depth", "oldest", title="queues", title_justify="left")
    for q in frame["queues"]:
        queues.add_row(q["name"], q["lane"], str(q["depth"]), _age(q["oldest_age"]) if q["depth"] else NONE)
    sends = Table(
        "channel", "provider", "sent/s", "failed/s", "p50", "p95", "sent", "failed",
        title="sends", title_justify="left",
    )  # fmt: skip
    for s in frame["sends"]:
        sends.add_row(
            s["channel"],
            s["provider"],
            _num(s["sent_per_second"]),
            _num(s["failed_per_second"]),
            _num(s["send_seconds_p50"], " s"),
            _num(s["send_seconds_p95"], " s"),
            str(s["sent"]),
            str(s["failed"]),
        )
    return Group(_heading(frame), queues, sends, _providers(frame), _totals(frame))


def _providers(frame: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        "provider", "state", "since", "why", "held", "balance", title="providers", title_justify="left"
    )
    for p in frame["providers"]:
        pause, balance = p["pause"] or {}, p["balance"]
        money = f"{balance['amount']} {balance['currency'] or ''}".strip() if balance else NONE
        state = f"[bold red]paused: {pause['kind']}[/]" if p["paused"] else "sending"
        table.add_row(
            p["name"], state, pause.get("since") or NONE, pause.get("error") or NONE, str(p["held"]), money
        )
    return table


def _heading(frame: dict[str, Any]) -> str:
    every = f"rates over {frame['interval']:.1f} s" if frame["interval"] else "one reading: no rates"
    return f"[bold]hudhud top[/]  {frame['at']}  ({every})"


def _totals(frame: dict[str, Any]) -> str:
    doubt = frame["in_doubt"]
    return (
        f"scheduled {frame['scheduled']}   callbacks pending {frame['callbacks_pending']}   "
        f"in doubt {doubt['total']} (waiting for an operator {doubt['waiting']})   "
        f"failover moves {frame['failover_moves']}"
    )


# --- the command -----------------------------------------------------------------------------


def _readings(interval: float) -> Iterator[dict[str, Any]]:
    """A frame every `interval` seconds, each with the rates since the one before."""
    from hudhud.config import get_settings
    from hudhud.worker import runtime
    from hudhud.worker.providers import registry

    ledger = runtime.ledger(get_settings())
    names = registry.names()
    before = overview.snapshot(ledger, names)
    while True:
        time.sleep(interval)
        shot = overview.snapshot(ledger, names)
        yield figures(shot, before)
        before = shot


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=WIDTH)


def _live(readings: Iterator[dict[str, Any]], interval: float) -> None:
    from rich.live import Live

    console = _console()
    with Live(f"reading the ledger every {interval:g} s…", console=console, auto_refresh=False) as live:
        for frame in readings:
            live.update(render(frame), refresh=True)


@click.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="seconds between readings (the rates are over this time)",
)
@click.option("--once", is_flag=True, help="one frame (two readings --interval apart), then exit")
@json_option
def top(interval: float, once: bool, as_json: bool) -> None:
    """A live view of queues, sends per second, pauses, held sends and balances (Ctrl-C ends).

    With --json, one JSON object per frame (with --once, just one)."""
    readings = _readings(interval)
    try:
        if once:
            frame = next(readings)
            if as_json:
                click.echo(json.dumps(frame, ensure_ascii=False))
            else:
                _console().print(render(frame))
        elif as_json:
            for frame in readings:
                click.echo(json.dumps(frame, ensure_ascii=False))
        else:
            _live(readings, interval)
    except KeyboardInterrupt:
        return
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
