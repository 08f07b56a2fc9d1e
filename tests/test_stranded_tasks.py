"""A worker SIGKILLed while it holds prefetched intake tasks, prefetched delivery tasks and ETA
tasks: with hudhud's default visibility timeout and unacked sweep (nothing shortened here),
the broker hands every one of them back, and each message goes out exactly once within two
minutes of the kill.

Intake tasks (`hudhud.send_sms` sent by a foreign producer, the message fields in the task)
are the hard case: the ledger records such a message only when a worker runs the task, so
only the broker can bring a stranded one back.

Real processes: redis-server, the sandbox (slowed down, so that tasks wait in the worker's
prefetch), a small worker `w1` on the `sms` queue, a `control` worker for beat's jobs, beat;
after the kill, a second worker `w2` on the `sms` queue. `w1` runs the prefork pool: a gevent
worker takes a task off the queue only when a green thread is free for it (Celery's gevent
pool blocks the consumer until then), so it holds its running tasks, one more and its ETA
tasks, while a prefork worker holds its whole prefetch. The recovering workers run gevent,
hudhud's default. The outcome is judged from the
sandbox's record of accepted sends (Taqnyat echoes each SMS's `smsId`, the message id)."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hudhud.config import Settings
from tests.stack import Stack, idle_stack, wait_until

pytestmark = pytest.mark.e2e

LATENCY_MS = 1500  # every provider call takes this long, so tasks wait in the prefetch
KILL_TO_SENT = 120.0  # seconds from the kill until every stranded message is sent
ENV = {
    "HUDHUD_PREFETCH_MULTIPLIER": "8",  # 2 greenlets x 8: sixteen tasks held at once
    "HUDHUD_ETA_WINDOW": "60",  # its default (the test stack shortens it): sends due soon are ETA tasks
    "HUDHUD_HTTP_READ_TIMEOUT": "5",  # above the sandbox's latency
}
ETA_SENDS = 4
INTAKE_SENDS = 10
DELIVERY_SENDS = 10


@dataclass(frozen=True)
class Held:
    """A task the killed worker held (its entry in kombu's `unacked` hash)."""

    tag: str
    kind: str  # intake | delivery | eta
    message_id: str


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    with idle_stack(tmp_path, extra_env=ENV, knobs={"latency_ms": LATENCY_MS}) as made:
        yield made


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def held_tasks(stack: Stack) -> list[Held]:
    held: list[Held] = []
    for tag, raw in stack.redis.hgetall("unacked").items():
        payload = json.loads(raw)[0]
        headers = payload["headers"]
        if headers.get("task") == "hudhud.send_sms":
            held.append(Held(text(tag), "intake", headers["id"]))
        elif headers.get("task") == "hudhud.deliver":
            args = json.loads(base64.b64decode(payload["body"]))[0]
            kind = "eta" if headers.get("eta") else "delivery"
            held.append(Held(text(tag), kind, str(args[0])))
    return held


def sms_sends(stack: Stack) -> Counter[str]:
    return Counter(str(s["sms_id"]) for s in stack.sandbox.sends() if s.get("sms_id"))


def produce(stack: Stack) -> list[str]:
    """ETA sends first (each raises the worker's prefetch by one), then intake tasks and
    delivery tasks in turn. Returns every message id."""
    ids: list[str] = []
    due = datetime.now(UTC)
    for i in range(ETA_SENDS):
        at = due + timedelta(seconds=12 + 2 * i)
        ids.append(stack.hudhud.send_sms([f"96651{i:07d}"], f"eta {i}", at=at).id)
    for i in range(max(INTAKE_SENDS, DELIVERY_SENDS)):
        if i < INTAKE_SENDS:  # a foreign producer: the fields travel in the task
            fields = {"to": [f"96652{i:07d}"], "body": f"intake {i}"}
            ids.append(str(stack.app.send_task("hudhud.send_sms", kwargs=fields).id))
        if i < DELIVERY_SENDS:
            ids.append(stack.hudhud.send_sms([f"96653{i:07d}"], f"delivery {i}").id)
    return ids


def test_tasks_a_killed_worker_held_come_back_and_go_out_once_within_two_minutes(stack: Stack) -> None:
    default = Settings.model_fields["visibility_timeout"].default
    assert stack.settings.visibility_timeout == default, "the default visibility timeout is under test"
    stack.start_worker("control", concurrency=10, queues="hudhud")
    stack.start_worker("w1", pool="prefork", concurrency=2, queues="sms")
    stack.start_beat()

    ids = produce(stack)
    wait_until(lambda: len(held_tasks(stack)) >= ETA_SENDS + 14, timeout=20)
    stack.kill("w1")
    killed_at = time.monotonic()
    held = held_tasks(stack)
    status_at_kill = dict(zip(ids, stack.ledger.status_of(ids), strict=True))
    stack.start_worker("w2", concurrency=4, queues="sms")

    in_flight = {m for m, s in status_at_kill.items() if s == "sending"}
    stranded = {
        kind: {h.message_id for h in held if h.kind == kind and h.message_id not in in_flight}
        for kind in ("intake", "delivery", "eta")
    }
    assert all(status_at_kill[m] is None for m in stranded["intake"]), "an intake task records when it runs"
    assert len(stranded["intake"]) >= 3, f"w1 held too few intake tasks to judge: {held}"
    assert len(stranded["delivery"]) >= 3, f"w1 held too few delivery tasks to judge: {held}"
    assert len(stranded["eta"]) == ETA_SENDS, f"w1 did not hold every ETA task: {held}"

    def all_sent() -> bool:
        counts = sms_sends(stack)
        statuses = stack.ledger.status_of(ids)
        return all(s == "sent" for s in statuses) and all(counts[m] >= 1 for m in ids)

    deadline = killed_at + KILL_TO_SENT
    while not all_sent():
        if time.monotonic() > deadline:
            counts = sms_sends(stack)
            statuses = dict(zip(ids, stack.ledger.status_of(ids), strict=True))
            missing = {
                kind: sorted(m for m in members if statuses[m] != "sent" or not counts[m])
                for kind, members in stranded.items()
            }
            raise AssertionError(
                f"{KILL_TO_SENT:.0f}s after the kill, stranded messages not sent: {missing} "
                f"(intake ones never recorded: {[m for m in missing['intake'] if statuses[m] is None]}; "
                f"visibility timeout {stack.settings.visibility_timeout}s, "
                f"unacked entries left: {stack.redis.hlen('unacked')})"
            )
        time.sleep(1)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in <= KILL_TO_SENT

    counts = sms_sends(stack)
    for message_id in ids:
        if message_id in in_flight:  # its provider call was cut short: sent again, marked in doubt
            record = stack.ledger.get(message_id) or {}
            assert counts[message_id] == 1 or record.get("in_doubt") == "1", (message_id, counts[message_id])
        else:
            assert counts[message_id] == 1, f"{message_id} sent {counts[message_id]} times"

    tags = {h.tag for h in held}
    wait_until(lambda: not tags & {text(t) for t in stack.redis.hkeys("unacked")}, timeout=10)
    kinds = Counter(h.kind for h in held)
    print(f"every stranded message sent {recovered_in:.1f}s after the kill; held: {kinds}")
