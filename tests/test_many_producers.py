"""Many producers at once: 200 threads share one `Hudhud` whose Redis pool holds only 8
connections. A thread that finds every connection taken waits for one (up to
HUDHUD_REDIS_POOL_TIMEOUT) instead of failing with "Too many connections": every send is
recorded and its delivery task enqueued."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.producer.api import Hudhud
from tests.helpers import RedisServer

PRODUCERS = 200
POOL_SIZE = 8


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis").start()
    yield started
    started.stop()


def delivery_ids(client: redis.Redis, queue: str) -> list[str]:
    """The message ids of the `hudhud.deliver` tasks waiting on `queue` (kombu's layout: a
    list of JSON envelopes whose body is the base64 of `[args, kwargs, embed]`)."""
    ids = []
    for item in client.lrange(queue, 0, -1):
        envelope = json.loads(item)
        assert envelope["headers"]["task"] == "hudhud.deliver"
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        ids.append(str(args[0]))
    return ids


def test_two_hundred_threads_sharing_one_hudhud_all_send(server: RedisServer) -> None:
    settings = Settings(
        _env_file=None,
        HUDHUD_REDIS_URL=server.url,
        TAQNYAT_SENDER="HUDHUD",
        HUDHUD_REDIS_POOL_SIZE=POOL_SIZE,
        HUDHUD_REDIS_POOL_TIMEOUT=60,
    )
    hudhud = Hudhud(settings, app=create_app(settings))
    start = threading.Barrier(PRODUCERS)

    def produce(index: int) -> str:
        start.wait(timeout=60)  # all at once: far more callers than connections
        return hudhud.send_sms([f"9665{index:08d}"], f"many producers {index}").id

    with ThreadPoolExecutor(max_workers=PRODUCERS) as pool:
        futures = [pool.submit(produce, index) for index in range(PRODUCERS)]
    failures = [repr(f.exception()) for f in futures if f.exception() is not None]
    assert failures == [], f"{len(failures)} of {PRODUCERS} sends raised, e.g. {failures[:3]}"

    ids = [f.result() for f in futures]
    assert len(set(ids)) == PRODUCERS
    client = redis.Redis.from_url(server.url)
    try:
        statuses = hudhud.ledger.status_of(ids)
        assert statuses == ["queued"] * PRODUCERS
        assert sorted(delivery_ids(client, "sms")) == sorted(ids), "each record has its task enqueued"
    finally:
        client.close()
    pool_of = runtime.redis_client(settings).connection_pool
    assert isinstance(pool_of, redis.BlockingConnectionPool)
    assert pool_of.max_connections == POOL_SIZE
