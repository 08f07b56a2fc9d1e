"""The Celery application, configured from `hudhud.config.get_settings()`.

- Redis broker from HUDHUD_REDIS_URL (`rediss://` gets certificate checks by default).
- Two queues per channel, its lanes (`sms` for transactional sends, `sms.bulk` for bulk
  ones, ...; see `lanes.py`), `hudhud` for beat jobs and intake, and
  Celery's default queue `celery` for producers that name no queue.
- `acks_late` + reject-on-worker-lost: a task is acknowledged after it ran; the ledger's
  atomic claim makes the redelivered copy harmless.
- The visibility timeout is applied to the broker and to every transport option that has one.
- Task arguments shown to Flower and events are redacted (see `RedactedRequest`).
- No task results are stored: the ledger is the record. Celery keeps a result backend per
  thread unless told it is thread safe, and under the gevent pool every task runs in a new
  green thread: its "disabled" backend, which holds no state, is declared shareable.
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import parse_qs, urlparse

from celery import Celery
from celery.exceptions import InvalidTaskError
from celery.worker.request import Request
from kombu import Exchange, Queue

from hudhud.config import Settings, get_settings
from hudhud.worker import redaction
from hudhud.worker.broker.transport import TRANSPORT as BROKER_TRANSPORT
from hudhud.worker.ledger import lanes
from hudhud.worker.ops import metrics, redis_safety

CHANNEL_QUEUES = lanes.CHANNELS  # each channel's transactional lane
DELIVERY_QUEUES = lanes.DELIVERY_QUEUES  # and its bulk lane, `{channel}.bulk`
CONTROL_QUEUE = "hudhud"
# Where a producer's own plain Celery app puts a task it names no queue for: Celery's default
# queue, exchange and routing key. Workers consume it too, so a `send_task` by name alone is
# delivered (intake then moves each message to its channel's queue).
CELERY_DEFAULT_QUEUE = "celery"
INTAKE_TASKS = {"hudhud.send_sms": "sms", "hudhud.send_email": "email", "hudhud.send_voice": "voice"}


class RedactedRequest(Request):
    """A worker-side request whose argument reprs (events, Flower, inspect) carry no data.

    Producers with only `celery` installed send `argsrepr`/`kwargsrepr` built from the real
    arguments; the worker replaces them before any event leaves the process.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            # a body that is not [args, kwargs, embed]: Celery's own invalid-task handling
            # discards it, instead of the worker stopping on an "Unrecoverable error"
            raise InvalidTaskError(f"malformed task message ({type(exc).__name__})") from None
        name = self._request_dict.get("task", "")
        if name == "hudhud.deliver":
            return  # its only argument is a message id
        self._argsrepr = "()"
        self._kwargsrepr = redaction.argument_shape(self.kwargs)

    def info(self, safe: bool = False) -> dict[str, Any]:
        """What `inspect reserved/scheduled` (and Flower's worker page) show: the redacted
        reprs, never the arguments themselves (a delivery's are only a message id)."""
        deliver = self._request_dict.get("task", "") == "hudhud.deliver"
        return dict(super().info(safe=safe or not deliver))


def _concurrency() -> int:
    try:
        return int(os.environ.get("HUDHUD_CONCURRENCY", "0"))
    except ValueError:
        return 0


def _broker_ssl(url: str) -> dict[str, Any] | None:
    parsed = urlparse(url)
    if parsed.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parsed.query):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def create_app(settings: Settings | None = None) -> Celery:
    """The app for `settings` (default: the environment's). Producers in other processes may
    make their own with the same settings; only the worker needs the tasks imported."""
    settings = settings or get_settings()
    app = Celery("hudhud", include=["hudhud.tasks.delivery", "hudhud.tasks.beat"], set_as_current=False)
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # A killed worker's tasks come back within the visibility timeout plus one sweep:
        # every worker sweeps the unacked index every 5 s (kombu: 10 s x a throttle of 10),
        # all that is due at once, and a sweep's lock left by a killed worker runs out in
        # 20 s (kombu: 300 s).
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "unacked_restore_limit": None,
        "unacked_mutex_expire": 20,
        "health_check_interval": 25,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        # kombu's default of 10 connections starves a gevent pool that acks late
        # ("Couldn't ack ... Too many connections"): allow one per green thread.
        "max_connections": max(64, 2 * _concurrency()),
    }
    exchange = Exchange("hudhud", type="direct")
    app.conf.update(
        broker_url=settings.redis_url,
        broker_transport=BROKER_TRANSPORT,
        broker_use_ssl=_broker_ssl(settings.redis_url),
        broker_transport_options=transport,
        result_backend=None,
        result_backend_thread_safe=True,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_track_started=False,
        task_queues=_task_queues(exchange),
        task_default_queue=CONTROL_QUEUE,
        task_default_exchange="hudhud",
        task_default_routing_key=CONTROL_QUEUE,
        task_routes={name: {"queue": q, "routing_key": q} for name, q in INTAKE_TASKS.items()},
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        worker_eta_task_limit=settings.eta_task_limit,
        worker_send_task_events=settings.task_events,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=30.0,
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
        task_default_rate_limit=None,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=_beat_schedule(settings),
    )
    app.Task.Request = RedactedRequest
    return app


def _task_queues(exchange: Exchange) -> list[Queue]:
    """hudhud's queues on its exchange, and Celery's default queue bound the way a plain
    Celery app declares it (a direct exchange `celery`, routing key `celery`): kombu's Redis
    transport routes a message published to exchange `celery` through the set
    `_kombu.binding.celery`, and one published to the nameless exchange straight to the list."""
    default = Exchange(CELERY_DEFAULT_QUEUE, type="direct")
    return [
        *(Queue(q, exchange, routing_key=q) for q in (*DELIVERY_QUEUES, CONTROL_QUEUE)),
        Queue(CELERY_DEFAULT_QUEUE, default, routing_key=CELERY_DEFAULT_QUEUE),
    ]


def _beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    jobs = {
        "release-due": ("hudhud.beat.release_due", settings.release_interval),
        "expire-due": ("hudhud.beat.expire_due", settings.release_interval),
        "requeue-stale": ("hudhud.beat.requeue_stale", settings.recover_interval),
        "recover-leases": ("hudhud.beat.recover_leases", settings.recover_interval),
        "taqnyat-status": ("hudhud.beat.taqnyat_status", settings.status_interval),
        "taqnyat-balance": ("hudhud.beat.taqnyat_balance", settings.balance_interval),
        "probe-paused": ("hudhud.beat.probe_paused", settings.probe_interval),
        "taifa-events": ("hudhud.beat.taifa_events", settings.events_interval),
    }
    return {
        name: {
            "task": task,
            "schedule": interval,
            "options": {"queue": CONTROL_QUEUE, "expires": max(interval, 1.0) * 2},
        }
        for name, (task, interval) in jobs.items()
    }


app = create_app()
app.set_current()
redaction.install()
redis_safety.install()
metrics.install()
