"""Prometheus metrics: the ledger's figures, read when scraped, and this process's own.

Every process that serves `/metrics` (the API, each worker) exposes two kinds of series:

- the ledger's (`LedgerCollector`): status changes, send durations, queues, pauses,
  balances, callbacks, failover moves. They are read from Redis at each scrape, so every
  target shows the same values: aggregate them with `max`, not `sum`, across targets;
- the process's own: provider request durations (`hudhud_provider_request_duration_seconds`,
  observed in `worker/providers/http.py`), and for a worker the queues it consumes
  (`hudhud_worker_consuming`). These add up across targets.

No label carries a number, an address, a body or an id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from hudhud.config import Settings
from hudhud.worker.ledger import Ledger, overview
from hudhud.worker.providers import registry

log = logging.getLogger("hudhud.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


class LedgerCollector(Collector):
    """The ledger's figures at the moment of the scrape (`hudhud_ledger_up` 0 when Redis does
    not answer: the scrape itself never fails)."""

    def __init__(self, ledger: Callable[[], Ledger], settings: Settings) -> None:
        self._ledger = ledger
        self._settings = settings

    def describe(self) -> list[Metric]:
        return []  # registering reads nothing from Redis

    def collect(self) -> Iterator[Metric]:
        up = _gauge("hudhud_ledger_up", "1 when the ledger's Redis answered this scrape")
        try:
            shot = overview.snapshot(self._ledger(), registry.names())
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: the ledger did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._changes(shot)
        yield from self._queues(shot)
        yield from self._providers(shot)
        yield from self._rest(shot)

    def _changes(self, shot: overview.Snapshot) -> Iterator[Metric]:
        labels = ["channel", "provider", "status"]
        yield _counter("hudhud_messages", "Status changes of messages", labels, shot.messages)
        yield _counter("hudhud_recipients", "Status changes of campaign recipients", labels, shot.recipients)
        send = HistogramMetricFamily(
            "hudhud_send_duration_seconds",
            "Seconds from a message's creation (or due time) to its hand-over to the provider",
            labels=["channel", "provider"],
        )
        for (channel, provider), h in sorted(shot.send.items()):
            buckets = [(floatToGoString(bound), count) for bound, count in h.buckets if bound != float("inf")]
            buckets.append(("+Inf", h.count))
            send.add_metric([channel, provider], buckets, h.sum)
        yield send

    def _queues(self, shot: overview.Snapshot) -> Iterator[Metric]:
        depth = _gauge("hudhud_queue_depth", "Tasks waiting in each broker queue", ["queue", "lane"])
        age = _gauge(
            "hudhud_queue_oldest_age_seconds", "Age of the oldest task of each queue", ["queue", "lane"]
        )
        for q in shot.queues:
            depth.add_metric([q.name, q.lane], q.depth)
            age.add_metric([q.name, q.lane], q.oldest_age)
        yield depth
        yield age
        scheduled = _gauge("hudhud_scheduled_messages", "Messages waiting for their due time")
        scheduled.add_metric([], shot.scheduled)
        yield scheduled

    def _providers(self, shot: overview.Snapshot) -> Iterator[Metric]:
        held = _gauge("hudhud_held_messages", "Messages held while their provider is paused", ["provider"])
        paused = _gauge("hudhud_provider_paused", "1 while a provider is paused", ["provider"])
        balance = _gauge(
            "hudhud_provider_balance", "A provider's last balance read", ["provider", "currency"]
        )
        low = _gauge(
            "hudhud_provider_balance_low_level",
            "The balance at which hudhud warns (HUDHUD_LOW_BALANCE)",
            ["provider"],
        )
        for p in shot.providers:
            held.add_metric([p.name], p.held)
            paused.add_metric([p.name], 1 if p.paused else 0)
            if p.balance and p.balance.get("amount") not in (None, "", "None"):
                balance.add_metric([p.name, p.balance.get("currency", "")], float(p.balance["amount"]))
                low.add_metric([p.name], float(self._settings.low_balance))
        yield from (held, paused, balance, low)

    def _rest(self, shot: overview.Snapshot) -> Iterator[Metric]:
        doubt = CounterMetricFamily("hudhud_in_doubt", "Messages whose hand-over was found in doubt")
        doubt.add_metric([], shot.in_doubt_total)
        waiting = _gauge("hudhud_in_doubt_waiting", "In-doubt campaign batches waiting for an operator")
        waiting.add_metric([], shot.in_doubt_waiting)
        pending = _gauge("hudhud_callbacks_pending", "Status callbacks not yet delivered or given up")
        pending.add_metric([], shot.callbacks_pending)
        yield from (doubt, waiting, pending)
        yield _counter(
            "hudhud_callback_attempts",
            "Tries of status callbacks, by what they got (an HTTP status or a fault)",
            ["outcome"],
            shot.callback_attempts,
        )
        yield _counter(
            "hudhud_failover_moves",
            "Emails moved from one provider to the other",
            ["from", "to", "reason"],
            shot.failover_moves,
        )


class ConsumingCollector(Collector):
    """The queues this worker consumes now (`hudhud_worker_consuming{queue}` 1 each)."""

    def __init__(self, queues: Callable[[], Iterable[str]]) -> None:
        self._queues = queues

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = _gauge("hudhud_worker_consuming", "1 for each queue this worker consumes", ["queue"])
        for name in sorted(set(self._queues())):
            family.add_metric([name], 1)
        yield family


_registered: dict[str, Collector] = {}


def register(kind: str, collector: Collector, into: CollectorRegistry = REGISTRY) -> None:
    """Add a collector once per process (a second call replaces the first)."""
    old = _registered.pop(kind, None)
    if old is not None:
        into.unregister(old)
    into.register(collector)
    _registered[kind] = collector


def exposition(into: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(into)


def serve(host: str, port: int, into: CollectorRegistry = REGISTRY) -> bool:
    """Serve `/metrics` on host:port in a background thread (a greenlet under gevent); False
    when the port is taken (the worker runs on without it)."""
    try:
        start_http_server(port, addr=host, registry=into)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", host, port, exc.strerror or exc)
        return False
    log.info("metrics served at http://%s:%d/metrics", host, port)
    return True


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    """`worker_ready`: register the ledger's and the consumer's collectors and serve them."""
    from hudhud.config import get_settings
    from hudhud.worker import runtime

    settings = get_settings()
    into = _worker_registry()
    register("ledger", LedgerCollector(lambda: runtime.ledger(settings), settings), into)
    consumer = sender

    def consumed() -> list[str]:
        task_consumer = getattr(consumer, "task_consumer", None)
        return [q.name for q in getattr(task_consumer, "queues", None) or []]

    register("consuming", ConsumingCollector(consumed), into)
    if settings.metrics_port:
        serve(settings.metrics_host, settings.metrics_port, into)


def _worker_registry() -> CollectorRegistry:
    """This process's registry; with a forking pool (PROMETHEUS_MULTIPROC_DIR set, as
    `hudhud worker -P prefork` does), one that reads every pool process's files."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    into = CollectorRegistry()
    multiprocess.MultiProcessCollector(into)
    return into


def on_process_exit(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


def install() -> None:
    """Serve a worker's metrics once it is ready (`hudhud worker` and `celery worker` alike)."""
    from celery import signals

    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid="hudhud-metrics")
    signals.worker_process_shutdown.connect(on_process_exit, weak=False, dispatch_uid="hudhud-metrics-exit")
