"""Lanes: a bulk message waits in `{channel}.bulk` and passes a second limiter that leaves a
share of the provider's rate to transactional ones; every path that enqueues a message again
keeps its lane."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from hudhud.config import Settings, reset_settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.delivery import intake
from hudhud.worker.jobs import recovery
from hudhud.worker.ledger import Ledger, NewMessage
from hudhud.worker.ledger.status import ClaimOutcome, Lane, Status
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.runtime import make_ledger
from tests.helpers import RedisServer
from tests.test_bulk import queued_tasks

RATE, SHARE, BURST = 20.0, 0.25, 1.0


def number(i: int) -> str:
    return f"9665{i:08d}"


def message(mid: str, lane: Lane) -> NewMessage:
    return NewMessage(
        id=mid, channel="sms", provider="taqnyat", payload={"to": [number(1)]}, request_hash=mid, lane=lane
    )


@pytest.fixture()
def settings(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("HUDHUD_REDIS_URL", redis_server.url)
    monkeypatch.setenv("TAQNYAT_SENDER", "HUDHUD")
    monkeypatch.setenv("TAIFA_FROM", "noreply@example.com")
    reset_settings()
    runtime.reset()
    yield Settings(redis_url=redis_server.url, taqnyat_sender="HUDHUD", taifa_from="noreply@example.com")
    runtime.reset()
    reset_settings()


@pytest.fixture()
def hudhud(settings: Settings) -> Hudhud:
    return Hudhud(settings, app=create_app(settings))


@pytest.fixture()
def ledger(settings: Settings, redis_client: redis.Redis) -> Ledger:
    return make_ledger(settings, redis_client)


def claims_over(ledger: Ledger, lane: Lane, start: float, seconds: float, tries: int) -> int:
    """Claims of fresh messages of `lane` tried evenly over `seconds` (a simulated clock)."""
    won = 0
    for n in range(tries):
        mid = f"{lane}-{start}-{n}"
        ledger.create(message(mid, lane), now=start)
        at = start + seconds * n / tries
        got = ledger.claim(mid, "taqnyat", now=at, rate=RATE, burst=BURST, share=SHARE)
        won += got.outcome is ClaimOutcome.CLAIMED
    return won


def test_bulk_claims_never_exceed_the_rate_left_to_them(ledger: Ledger) -> None:
    seconds = 10.0
    won = claims_over(ledger, Lane.BULK, 1000.0, seconds, tries=400)
    assert won <= RATE * (1 - SHARE) * seconds + BURST + 1
    assert won >= RATE * (1 - SHARE) * seconds * 0.8, "the bulk lane still gets its share"


def test_transactional_claims_get_through_while_bulk_saturates(ledger: Ledger) -> None:
    # bulk tries twice the provider's rate; a transactional one tries just after each bulk
    # try: without the bulk limiter, bulk would take every slot and leave it none
    start, seconds, step = 5000.0, 10.0, 0.5 / RATE
    won_bulk = won_tx = 0
    tx = "t-0"
    ledger.create(message(tx, Lane.TRANSACTIONAL), now=start)
    for n in range(int(seconds / step)):
        at = start + n * step
        ledger.create(message(f"b-{n}", Lane.BULK), now=at)
        got = ledger.claim(f"b-{n}", "taqnyat", now=at, rate=RATE, burst=BURST, share=SHARE)
        won_bulk += got.outcome is ClaimOutcome.CLAIMED
        got = ledger.claim(tx, "taqnyat", now=at + step / 10, rate=RATE, burst=BURST, share=SHARE)
        if got.outcome is ClaimOutcome.CLAIMED:
            won_tx += 1
            tx = f"t-{won_tx}"
            ledger.create(message(tx, Lane.TRANSACTIONAL), now=at)
    assert won_bulk <= RATE * (1 - SHARE) * seconds + BURST + 1
    assert won_tx >= RATE * SHARE * seconds * 0.8, f"only {won_tx} transactional claims in {seconds:.0f} s"


def test_campaign_and_bulk_sends_wait_in_the_bulk_queue(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    campaign = hudhud.send_campaign("sms", {"to": [number(i) for i in range(5)], "body": "sale"})
    bulk = hudhud.send_sms(to=[number(1)], body="news", lane="bulk")
    otp = hudhud.send_sms(to=[number(2)], body="code 1234")
    mail = hudhud.send_email(to=["a@example.com"], subject="s", text="t", lane="bulk")
    bulk_ids = {t["args"][0] for t in queued_tasks(redis_client, "sms.bulk")}  # type: ignore[index]
    assert bulk.id in bulk_ids and any(i.startswith(campaign.id) for i in bulk_ids)
    assert [t["args"][0] for t in queued_tasks(redis_client, "sms")] == [otp.id]  # type: ignore[index]
    assert [t["args"][0] for t in queued_tasks(redis_client, "email.bulk")] == [mail.id]  # type: ignore[index]
    assert hudhud.status(bulk.id)["lane"] == Lane.BULK and hudhud.status(otp.id)["lane"] == Lane.TRANSACTIONAL


def test_a_foreign_bulk_send_is_recorded_then_waits_in_the_bulk_queue(
    settings: Settings, redis_client: redis.Redis, ledger: Ledger
) -> None:
    task_id = str(uuid.uuid4())
    fields = {"to": [number(3)], "body": "weekly news", "lane": "bulk"}
    assert intake.intake(create_app(settings), task_id, "sms", (), fields) == Status.QUEUED
    assert [t["args"][0] for t in queued_tasks(redis_client, "sms.bulk")] == [task_id]  # type: ignore[index]
    assert queued_tasks(redis_client, "sms") == []
    assert ledger.get(task_id)["lane"] == Lane.BULK  # type: ignore[index]


def test_a_bulk_message_requeued_by_recovery_goes_back_to_the_bulk_queue(
    hudhud: Hudhud, redis_client: redis.Redis, settings: Settings
) -> None:
    sent = hudhud.send_sms(to=[number(4)], body="news", lane="bulk")
    redis_client.delete("sms.bulk")  # the task was lost
    redis_client.zadd("hudhud:queued", {sent.id: time.time() - 10 * settings.requeue_after})
    from hudhud.worker.jobs.context import Context

    assert recovery.requeue_stale(Context(hudhud.ledger, settings, hudhud.app, runtime.provider_client)) == 1
    assert [t["args"][0] for t in queued_tasks(redis_client, "sms.bulk")] == [sent.id]  # type: ignore[index]
