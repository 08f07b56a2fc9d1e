"""A bare Celery app for the baseline of `bench/run.py`: one task that makes the same
Taqnyat SMS call as hudhud (POST /v1/messages with JSON, bearer token) through a pooled
`requests` session configured as hudhud's (environment read once, not per request), and
nothing else: no ledger, no claim, no events.

    BARE_REDIS_URL=redis://127.0.0.1:6379/0 BARE_TAQNYAT_URL=http://127.0.0.1:8025 \\
        python -m celery -A bare_app worker -P gevent -c 50 -Q bare

The broker settings mirror hudhud's (JSON, late acks, ignored results, prefetch 4).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from celery import Celery
from kombu import Exchange, Queue
from requests.adapters import HTTPAdapter

QUEUE = "bare"
IDLE_QUEUE = "bare_idle"
TASK = "bare.send_sms"

app = Celery("bare", set_as_current=False)
_exchange = Exchange("bare", type="direct")
app.conf.update(
    broker_url=os.environ.get("BARE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=4,
    task_queues=[Queue(q, _exchange, routing_key=q) for q in (QUEUE, IDLE_QUEUE)],
    task_default_queue=QUEUE,
    task_default_exchange="bare",
    task_default_routing_key=QUEUE,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
)

_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        size = int(os.environ.get("BARE_POOL_SIZE", "100"))
        made = requests.Session()
        made.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=size))
        made.headers["Authorization"] = "Bearer " + os.environ.get("TAQNYAT_TOKEN", "sandbox-taqnyat-token")
        made.trust_env = False  # as hudhud's client: no proxy lookup from the environment per request
        _session = made
    return _session


@app.task(name=TASK)
def send_sms(to: str, body: str, sender: str = "HUDHUD") -> Any:
    base = os.environ.get("BARE_TAQNYAT_URL", "http://127.0.0.1:8025")
    reply = session().post(
        f"{base}/v1/messages",
        json={"recipients": [to], "body": body, "sender": sender},
        timeout=(3.05, 10),
    )
    reply.raise_for_status()
    return reply.json().get("messageId")
