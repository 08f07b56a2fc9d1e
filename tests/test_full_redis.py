"""A full Redis (`maxmemory` reached, policy `noeviction`): it refuses every write and every
command inside MULTI, yet still serves BRPOP, pops and deletes.

- At the broker (hudhud's kombu transport, a real redis-server): a message popped while Redis
  refuses its unacked entry is kept, not lost; acks, sweeps and queue bindings go on or wait;
  a publish waits a while, then tells its caller; consuming resumes once memory is freed.
- End to end (redis-server, sandbox, workers, beat): workers stay up while Redis is full, a
  worker starts while it is full, and once memory is freed every message goes out exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from hudhud.worker.broker.transport import TRANSPORT
from tests.helpers import RedisServer
from tests.stack import Stack, idle_stack, wait_until

FULL = ["--maxmemory", "24mb", "--maxmemory-policy", "noeviction"]
BALLAST = "ballast:"


class Ballast:
    """Fills a Redis: writes ballast keys until it refuses one, then goes OVERSHOOT beyond
    `maxmemory` (Redis checks memory before a command, not after: the one that finds room
    may take more), so that the little a pop or an ack frees does not make room again."""

    OVERSHOOT = 1024 * 1024

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write_until_refused(self, size: int) -> list[str]:
        written: list[str] = []
        try:
            while True:
                key = f"{BALLAST}{self.count}"
                self.client.set(key, b"x" * size)
                self.count += 1
                written.append(key)
        except redis.exceptions.OutOfMemoryError:
            return written

    def fill(self) -> None:
        small = [*self._write_until_refused(64 * 1024), *self._write_until_refused(256)]
        while small:  # it took some: free a little and go beyond in one write
            self.client.delete(small.pop())
            try:
                # a short command that makes a long value: the command itself takes no room
                self.client.setrange(f"{BALLAST}{self.count}", self.OVERSHOOT, b"x")
                self.count += 1
                return
            except redis.exceptions.OutOfMemoryError:
                continue

    def keep_full(self) -> None:
        self.fill()
        self._thread = threading.Thread(target=self._run, name="ballast", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.fill()

    def refuses_writes(self) -> bool:
        try:
            self.client.set("probe:test", "1", ex=5)
        except redis.exceptions.OutOfMemoryError:
            return True
        return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        keys = list(self.client.scan_iter(f"{BALLAST}*", count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start : start + 500])
        self.client.close()


# --- at the broker ------------------------------------------------------------------------
EXCHANGE = Exchange("tasks", type="direct")
QUEUE = Queue("work", EXCHANGE, routing_key="work")


@pytest.fixture()
def full_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", extra_args=FULL).start()
    yield server
    server.stop()


def drain(connection: Connection, times: int = 1) -> None:
    for _ in range(times):
        try:
            connection.drain_events(timeout=1.2)
        except TimeoutError:
            pass


def test_the_broker_keeps_what_it_took_while_redis_is_full_and_resumes_by_itself(
    full_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(full_redis.url)
    ballast = Ballast(full_redis.url)
    options = {"oom_publish_wait": 1}
    with Connection(full_redis.url, transport=TRANSPORT, transport_options=options) as connection:
        with connection.Producer() as producer:
            for number in range(3):
                producer.publish({"n": number}, exchange=EXCHANGE, routing_key="work", declare=[QUEUE])
        got: list[tuple[Any, Any]] = []
        channel = connection.channel()
        consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: got.append((body, message))])
        consumer.qos(prefetch_count=10)
        consumer.consume()
        drain(connection)
        assert [body for body, _ in got] == [{"n": 0}] and client.hlen("unacked") == 1

        ballast.fill()
        got[0][1].ack()  # an ack without MULTI: Redis serves it when full
        assert client.hlen("unacked") == 0, "the ack removed the unacked entry"

        ballast.fill()
        drain(connection, times=2)
        assert [body for body, _ in got] == [{"n": 0}], "nothing is handed on while Redis refuses writes"
        assert not channel._kept, "the take (one script) is refused whole: nothing popped"
        assert client.llen("work") == 2 and client.hlen("unacked") == 0
        assert not channel.qos.can_consume(), "no more messages are taken while Redis refuses writes"

        ballast.fill()
        channel.qos.restore_visible(num=None, interval=1)  # a sweep Redis refuses: no error

        ballast.fill()
        began = time.monotonic()
        with pytest.raises(redis.exceptions.OutOfMemoryError), Producer(connection.channel()) as producer:
            producer.publish({"n": 9}, exchange=EXCHANGE, routing_key="work")
        assert time.monotonic() - began >= 1.0, "a publish waits oom_publish_wait before it gives up"

        with Connection(full_redis.url, transport=TRANSPORT) as starting:  # a consumer starts
            ballast.fill()
            fresh = Queue("fresh", EXCHANGE, routing_key="fresh")
            starting_channel = starting.channel()
            Consumer(starting_channel, [fresh], callbacks=[]).consume()
            assert starting_channel.writes_refused, "its queue binding was refused"
            assert b"fresh\x06\x16\x06\x16fresh" not in client.smembers("_kombu.binding.tasks")

            ballast.release()
            time.sleep(1.1)  # the next probe
            drain(starting)
            assert not starting_channel.writes_refused
            assert b"fresh\x06\x16\x06\x16fresh" in client.smembers("_kombu.binding.tasks"), "binding written"

        time.sleep(1.1)
        drain(connection, times=3)
        assert [body for body, _ in got] == [{"n": 0}, {"n": 1}, {"n": 2}], "in their order"
        assert client.hlen("unacked") == 2, "each message handed on has its unacked entry"
        for _, message in got[1:]:
            message.ack()
        assert client.hlen("unacked") == 0 and client.llen("work") == 0
    client.close()


def test_a_message_kept_while_redis_was_full_goes_back_to_its_queue_when_the_channel_closes(
    full_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(full_redis.url)
    ballast = Ballast(full_redis.url)
    with Connection(full_redis.url, transport=TRANSPORT) as connection:
        with connection.Producer() as producer:
            producer.publish({"n": 1}, exchange=EXCHANGE, routing_key="work", declare=[QUEUE])
        channel = connection.channel()
        got: list[Any] = []
        consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: got.append(body)])
        consumer.consume()
        ballast.fill()
        drain(connection)
        assert got == [] and not channel._kept and client.llen("work") == 1, "nothing taken"
        ballast.release()
        channel.close()  # a worker's shutdown
    assert client.llen("work") == 1, "the kept message is back on its queue"
    client.close()


# --- end to end ---------------------------------------------------------------------------
LATENCY_MS = 1500  # provider calls long enough to be in flight as Redis fills up
ENV = {"HUDHUD_HTTP_READ_TIMEOUT": "5"}
PYTHON_SENDS = 24
INTAKE_SENDS = 8
HOLD = 10.0  # seconds Redis stays full
DRAIN = 90.0  # seconds after memory is freed by which every message is sent


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    with idle_stack(tmp_path, extra_env=ENV, knobs={"latency_ms": LATENCY_MS}, redis_args=FULL) as made:
        yield made


def produce(stack: Stack) -> list[str]:
    ids: list[str] = []
    for i in range(max(PYTHON_SENDS, INTAKE_SENDS)):
        if i < PYTHON_SENDS:
            ids.append(stack.hudhud.send_sms([f"96654{i:07d}"], f"full {i}").id)
        if i < INTAKE_SENDS:  # a foreign producer: the fields travel in the task
            fields = {"to": [f"96655{i:07d}"], "body": f"full intake {i}"}
            ids.append(str(stack.app.send_task("hudhud.send_sms", kwargs=fields).id))
    return ids


def sms_sends(stack: Stack) -> Counter[str]:
    return Counter(str(s["sms_id"]) for s in stack.sandbox.sends() if s.get("sms_id"))


@pytest.mark.e2e
def test_workers_survive_a_full_redis_and_every_message_goes_out_once(stack: Stack) -> None:
    w1 = stack.start_worker("w1", concurrency=4)
    stack.start_beat()
    ids = produce(stack)

    def calling() -> list[str]:
        return [m for m, s in zip(ids, stack.ledger.status_of(ids), strict=True) if s == "sending"]

    wait_until(lambda: len(calling()) >= 2, timeout=20)
    ballast = Ballast(stack.redis_server.url)
    ballast.keep_full()  # while provider calls are in flight, their outcomes still to be written
    in_flight = calling()
    assert ballast.refuses_writes(), "Redis is full"
    time.sleep(HOLD / 2)
    assert w1.poll() is None, f"w1 died while Redis was full: {stack.log('w1').read_text()[-2000:]}"
    w2 = stack.start_worker("w2", concurrency=4)  # starts while Redis refuses writes
    assert ballast.refuses_writes(), "w2 started while Redis was still full"
    time.sleep(HOLD / 2)
    for name, proc in (("w1", w1), ("w2", w2)):
        assert proc.poll() is None, f"{name} died while Redis was full: {stack.log(name).read_text()[-2000:]}"
    assert "Redis refuses writes" in stack.log("w2").read_text(), "w2 met the full Redis at its start"
    pending = [m for m, s in zip(ids, stack.ledger.status_of(ids), strict=True) if s != "sent"]
    assert pending, "messages were still queued or in flight while Redis was full"
    ballast.release()
    freed_at = time.monotonic()

    while True:
        counts = sms_sends(stack)
        statuses = dict(zip(ids, stack.ledger.status_of(ids), strict=True))
        if all(statuses[m] == "sent" and counts[m] for m in ids):
            break
        if time.monotonic() - freed_at > DRAIN:
            unsent = {m: statuses[m] for m in ids if statuses[m] != "sent" or not counts[m]}
            raise AssertionError(
                f"{DRAIN:.0f}s after memory was freed, not sent: {unsent}. A message whose "
                "record was written depends on the delivery side waiting out the full Redis "
                "(worker/ledger/patience.py); an intake message never recorded (None) on the "
                "intake waiting to record it (worker/delivery/intake.py) or on the broker keeping it"
            )
        time.sleep(1)
    for name, proc in (("w1", w1), ("w2", w2)):
        assert proc.poll() is None, f"{name} died after Redis was freed"
        assert "Unrecoverable error" not in stack.log(name).read_text()
    twice = {m: counts[m] for m in ids if counts[m] != 1}
    assert not twice, (
        f"sent more than once: {twice} (in flight as Redis filled up: {in_flight}). Depends on "
        "the delivery side (worker/delivery.py with worker/ledger/patience.py): the outcome of a "
        "provider call that Redis refused to record must be kept and written once Redis takes "
        "writes, never sent again"
    )
    held = [json.loads(entry)[0]["headers"]["task"] for entry in stack.redis.hvals("unacked")]
    # beat's jobs go on (a balance check waits out the sandbox's latency): some are in flight
    assert all(task.startswith("hudhud.beat.") for task in held), f"the broker acknowledged what ran: {held}"
