"""One function enqueues a delivery and decides how: due now on its channel's queue, due within
the ETA window as an ETA task, due later parked in the ledger for beat to release."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.broker.enqueue import DeliveryTask, Placement, enqueue, enqueue_many, placement
from hudhud.worker.jobs import Jobs
from hudhud.worker.ledger import Ledger, NewMessage
from tests.helpers import RedisServer
from tests.stack import Stack, running_stack, wait_until

WINDOW = 10.0


# --- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (None, Placement.NOW),
        (-3600.0, Placement.NOW),
        (0.01, Placement.NOW),
        (0.5, Placement.ETA),
        (WINDOW, Placement.ETA),
        (WINDOW + 0.01, Placement.PARK),
        (86400.0, Placement.PARK),
    ],
)
def test_the_due_time_decides_between_the_queue_an_eta_and_parking(
    offset: float | None, expected: Placement
) -> None:
    now = 1_800_000_000.0
    assert placement(None if offset is None else now + offset, now, WINDOW) is expected


# --- against a real Redis ---------------------------------------------------------------------


@pytest.fixture()
def settings(redis_server: RedisServer) -> Iterator[Settings]:
    runtime.reset()
    yield Settings(redis_url=redis_server.url, taqnyat_sender="HUDHUD", eta_window=int(WINDOW))
    runtime.reset()


def ledger_with(client: redis.Redis, window: float) -> Ledger:
    return Ledger(client, retention_seconds=3600, idempotency_ttl=3600, lease_seconds=30, park_after=window)


def recorded(ledger: Ledger, number: int, due: float | None = None) -> str:
    message_id = f"enqueue-{number}"
    payload = {"to": [f"9665{number:08d}"], "body": "x", "sender": "HUDHUD"}
    msg = NewMessage(message_id, "sms", "taqnyat", payload, f"hash-{number}", due=due)
    assert ledger.create(msg, now=time.time()).outcome == "created"
    return message_id


def waiting(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The task messages on `queue`, oldest first, as a worker reads them."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append({"headers": envelope["headers"], "args": args, "kwargs": kwargs, **envelope["properties"]})
    return out


def eta_of(task: dict[str, Any]) -> float | None:
    eta = task["headers"]["eta"]
    return None if eta is None else datetime.fromisoformat(eta).timestamp()


def test_a_message_due_now_goes_on_its_channels_queue_without_an_eta(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = ledger_with(redis_client, WINDOW)
    message_id = recorded(ledger, 1)
    assert enqueue(create_app(settings), ledger, DeliveryTask(message_id, "taqnyat", "sms")) is Placement.NOW
    (task,) = waiting(redis_client, "sms")
    assert task["headers"]["task"] == "hudhud.deliver" and task["args"] == [message_id, "taqnyat"]
    assert task["kwargs"] == {} and eta_of(task) is None
    assert task["delivery_info"] == {"exchange": "", "routing_key": "sms"}


def test_a_message_due_within_the_window_waits_as_an_eta_task_of_its_due_time(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = ledger_with(redis_client, WINDOW)
    due = time.time() + WINDOW / 2
    message_id = recorded(ledger, 2, due)
    assert redis_client.zscore("hudhud:queued", message_id) == pytest.approx(due)
    placed = enqueue(create_app(settings), ledger, DeliveryTask(message_id, "taqnyat", "sms", due))
    assert placed is Placement.ETA
    (task,) = waiting(redis_client, "sms")
    assert task["args"] == [message_id, "taqnyat"] and eta_of(task) == pytest.approx(due, abs=0.001)


def test_a_message_due_beyond_the_window_is_parked_until_beat_releases_it_as_an_eta_task(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = ledger_with(redis_client, WINDOW)
    app = create_app(settings)
    due = time.time() + WINDOW * 3
    message_id = recorded(ledger, 3, due)
    assert enqueue(app, ledger, DeliveryTask(message_id, "taqnyat", "sms", due)) is Placement.PARK
    assert redis_client.llen("sms") == 0, "nothing for a worker to hold"
    assert redis_client.zscore("hudhud:scheduled", message_id) == pytest.approx(due)

    jobs = Jobs(ledger, settings, app, runtime.provider_client)
    assert jobs.release_due() == 0, "not within the window yet"
    later = Jobs(ledger_with(redis_client, WINDOW * 4), settings, app, runtime.provider_client)
    assert later.release_due() == 1, "once within the window, beat releases it"
    (task,) = waiting(redis_client, "sms")
    assert task["args"] == [message_id, "taqnyat"] and eta_of(task) == pytest.approx(due, abs=0.001)
    assert redis_client.zscore("hudhud:scheduled", message_id) is None


def test_many_deliveries_go_in_one_call_and_the_parked_ones_are_not_pushed(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = ledger_with(redis_client, WINDOW)
    now = time.time()
    dues = [None, now + 1, now + WINDOW * 5, None, now + WINDOW * 2]
    tasks = [DeliveryTask(recorded(ledger, 10 + i, due), "taqnyat", "sms", due) for i, due in enumerate(dues)]
    tasks.append(DeliveryTask("enqueue-email", "taifa", "email"))
    assert enqueue_many(create_app(settings), ledger, tasks, now=now) == 4
    assert [t["args"][0] for t in waiting(redis_client, "sms")] == ["enqueue-10", "enqueue-11", "enqueue-13"]
    assert [t["args"] for t in waiting(redis_client, "email")] == [["enqueue-email", "taifa"]]
    assert len({t["headers"]["id"] for t in waiting(redis_client, "sms")}) == 3, "a task id each"


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # HUDHUD_ETA_WINDOW is 3 s in the test stack: a send 8 s ahead is parked, one 2 s ahead an ETA.
    with running_stack(Path(tmp_path_factory.mktemp("enqueue")), beat=True) as made:
        yield made


def sent_at(stack: Stack, message_id: str) -> float:
    events = stack.hudhud.status(message_id)["events"]
    return next(datetime.fromisoformat(e["at"]).timestamp() for e in events if e["type"] == "sent")


def sends_of(stack: Stack) -> Counter[str]:
    return Counter(str(s["sms_id"]) for s in stack.sandbox.sends() if s.get("sms_id"))


@pytest.mark.e2e
def test_sends_due_now_soon_and_later_each_go_out_once_and_never_early(stack: Stack) -> None:
    assert runtime.park_after(stack.settings) == 3
    base = datetime.now(UTC)
    now = stack.hudhud.send_sms(["966511110001"], "now")
    soon_at, later_at = base + timedelta(seconds=2), base + timedelta(seconds=8)
    soon = stack.hudhud.send_sms(["966511110002"], "soon", at=soon_at)
    later = stack.hudhud.send_sms(["966511110003"], "later", at=later_at)
    assert stack.redis.zscore("hudhud:scheduled", later.id) is not None, "parked"
    assert stack.redis.zscore("hudhud:scheduled", soon.id) is None, "an ETA task, not parked"
    ids = [now.id, soon.id, later.id]
    stack.wait_status(ids, {"sent"}, timeout=60)
    assert [sends_of(stack)[i] for i in ids] == [1, 1, 1]
    assert sent_at(stack, soon.id) >= soon_at.timestamp() - 0.01
    assert sent_at(stack, later.id) >= later_at.timestamp() - 0.01


@pytest.mark.e2e
def test_a_retry_the_provider_asks_for_is_enqueued_again_and_sent_once(stack: Stack) -> None:
    stack.sandbox.knobs(error_rate_5xx=1.0)
    try:
        receipt = stack.hudhud.send_sms(["966511110004"], "after a retry")
        wait_until(
            lambda: any(e["type"] == "retry" for e in stack.hudhud.status(receipt.id)["events"]), timeout=30
        )
    finally:
        stack.sandbox.knobs(error_rate_5xx=0.0)
    stack.wait_status([receipt.id], {"sent"}, timeout=60)
    assert sends_of(stack)[receipt.id] == 1
