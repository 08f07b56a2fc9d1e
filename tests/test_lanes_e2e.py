"""Lanes end to end: real `hudhud worker` and `hudhud beat` processes, redis-server and the
sandbox. A transactional send overtakes a queue of bulk ones; a bulk message keeps its lane
through a retry; workers named for one lane serve that lane only; `hudhud status` shows the
lane and whether the state is final."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hudhud.worker.ledger.status import Lane, Status
from tests.stack import Stack, idle_stack, wait_until
from tests.test_bulk import queued_tasks

pytestmark = pytest.mark.e2e

ALL_SENT = {Status.SENT.value}
BULK_QUEUES = "sms.bulk,email.bulk,voice.bulk"
TRANSACTIONAL_QUEUES = "sms,email,voice,hudhud,celery"
JOB_QUEUES = "hudhud,celery"


def number(i: int) -> str:
    return f"9665{i:08d}"


@pytest.fixture()
def idle(tmp_path: Path) -> Iterator[Stack]:
    with idle_stack(tmp_path) as made:
        yield made


def waiting_ids(stack: Stack, queue: str) -> list[str]:
    """The message ids of the delivery tasks waiting in the broker list of `queue`."""
    return [str(task["args"][0]) for task in queued_tasks(stack.redis, queue)]  # type: ignore[index]


def status_json(stack: Stack, message_id: str) -> dict[str, Any]:
    run = stack.cli("status", "--json", message_id)
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout))


def status_lines(stack: Stack, message_id: str) -> dict[str, str]:
    """`hudhud status ID` as printed: each `name  value` line before the events."""
    run = stack.cli("status", message_id)
    assert run.returncode == 0, run.stderr
    found = (re.match(r"^(\w+)\s+(.*)$", line) for line in run.stdout.splitlines())
    return {m.group(1): m.group(2) for m in found if m}


def test_transactional_sms_overtake_a_queue_of_bulk_ones(idle: Stack) -> None:
    # the worker names the bulk queues first and still takes every transactional one before
    # them (kombu alone would take its queues in turn: about one bulk message per OTP)
    concurrency, otps = 10, 30
    bulk = idle.hudhud.send_many(
        "sms", [{"to": [number(i)], "body": f"weekly news {i}", "lane": "bulk"} for i in range(300)]
    )
    codes = [idle.hudhud.send_sms(to=[number(1000 + i)], body=f"your code is {i:04d}") for i in range(otps)]
    assert len(waiting_ids(idle, "sms.bulk")) == 300
    assert sorted(waiting_ids(idle, "sms")) == sorted(r.id for r in codes)

    idle.start_worker("w1", concurrency=concurrency, queues=f"{BULK_QUEUES},{TRANSACTIONAL_QUEUES}")
    idle.wait_status([r.id for r in [*codes, *bulk]], ALL_SENT, timeout=120)

    order = [send["recipients"] for send in idle.sandbox.sends()]
    assert len(order) == 300 + otps
    otp_positions = sorted(order.index([number(1000 + i)]) for i in range(otps))
    bulk_before = otp_positions[-1] - (otps - 1)  # bulk sends handed over before the last OTP
    assert bulk_before <= concurrency, f"{bulk_before} bulk sends were handed over before an OTP"


def test_a_retried_bulk_sms_goes_back_to_the_bulk_queue(idle: Stack) -> None:
    # a 429 whose Retry-After is past the ETA window parks the message; beat releases it
    idle.sandbox.knobs(rate_429=1.0, retry_after=6)
    sent = idle.hudhud.send_sms(to=[number(7)], body="weekly news", lane="bulk")
    idle.start_worker("w1")

    def retried() -> dict[str, Any] | None:
        record = idle.ledger.get(sent.id)
        kinds = [e["type"] for e in (record or {}).get("events", [])]
        return record if "retry" in kinds and record and record["status"] == Status.QUEUED else None

    wait_until(retried, timeout=30)
    idle.kill("w1", signal.SIGTERM)
    idle.sandbox.knobs(rate_429=0.0)
    assert idle.sandbox.sends() == []

    idle.start_beat()
    idle.start_worker("jobs", queues=JOB_QUEUES)  # runs beat's release, delivers nothing
    wait_until(lambda: waiting_ids(idle, "sms.bulk") == [sent.id], timeout=30)
    assert waiting_ids(idle, "sms") == []

    idle.start_worker("w2")
    idle.wait_status([sent.id], ALL_SENT, timeout=60)
    shown = status_json(idle, sent.id)
    assert shown["lane"] == Lane.BULK and shown["attempts"] >= 1
    assert "429" in json.dumps([e for e in shown["events"] if e["type"] == "retry"])
    assert [s["recipients"] for s in idle.sandbox.sends()] == [[number(7)]]


def test_lane_workers_serve_their_lane_and_status_shows_it(idle: Stack) -> None:
    campaign = idle.hudhud.send_campaign("sms", {"to": [number(20 + i) for i in range(5)], "body": "sale"})
    news = idle.hudhud.send_sms(to=[number(30)], body="weekly news", lane="bulk")
    otp = idle.hudhud.send_sms(to=[number(31)], body="your code is 5120")
    batch = f"{campaign.id}.0"

    idle.start_worker("bulk", queues=BULK_QUEUES)
    idle.wait_status([batch, news.id], ALL_SENT, timeout=60)
    assert idle.ledger.status_of([otp.id]) == [Status.QUEUED], "a bulk-only worker leaves the OTP"
    assert waiting_ids(idle, "sms") == [otp.id]

    assert status_json(idle, batch)["lane"] == Lane.BULK, "a campaign is bulk unless told"
    assert status_json(idle, news.id)["lane"] == Lane.BULK
    waiting = status_json(idle, otp.id)
    assert (waiting["lane"], waiting["final"]) == (Lane.TRANSACTIONAL, False)
    shown = status_lines(idle, otp.id)
    assert (shown["status"], shown["lane"], shown["final"]) == ("queued", "transactional", "no")
    shown = status_lines(idle, news.id)
    assert (shown["status"], shown["lane"], shown["final"]) == ("sent", "bulk", "yes")

    idle.start_worker("transactional", queues=TRANSACTIONAL_QUEUES)
    idle.wait_status([otp.id], ALL_SENT, timeout=60)
    shown = status_lines(idle, otp.id)
    assert (shown["status"], shown["lane"], shown["final"]) == ("sent", "transactional", "yes")
    summary = status_json(idle, campaign.id)
    assert summary["final"] and summary["recipient_counts"]["sent"] == 5
    handed = sorted(n for s in idle.sandbox.sends() for n in s["recipients"])  # type: ignore[attr-defined]
    assert handed == sorted([number(20 + i) for i in range(5)] + [number(30), number(31)])
