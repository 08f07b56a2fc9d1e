"""A batch's idempotency keys, against a real redis-server: a batch is recorded whole or not
at all (a key used for another request refuses it before anything is written, and names the
message), a key used again for the same request still answers its first message, and single
sends gathered into one call still stand or fail alone. Also a retried email's id, reference
and callback URL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.ledger import CHANGES, Ledger, NewMessage, Status, keys
from hudhud.worker.producer.api import BULK_CHUNK, Hudhud, IdempotencyConflict
from tests.helpers import RedisServer

NUMBER = "966500000321"


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30)


@pytest.fixture()
def hudhud(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Hudhud]:
    settings = Settings(
        redis_url=redis_server.url,
        taqnyat_sender="HUDHUD",
        taifa_from="noreply@example.com",
        callback_hosts="hooks.example.com",
    )
    runtime.reset()
    yield Hudhud(settings, app=create_app(settings))
    runtime.reset()


def new(mid: str, *, key: str | None = None, request: str = "h") -> NewMessage:
    return NewMessage(
        id=mid,
        channel="sms",
        provider="taqnyat",
        payload={"to": [NUMBER], "body": "code"},
        request_hash=request,
        key=key,
    )


def records(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(keys.msg_key("*"), count=1000))


def outcomes(created: list[object]) -> list[tuple[str, str]]:
    return [(c.outcome, c.id) for c in created]  # type: ignore[attr-defined]


# --- the ledger ---------------------------------------------------------------------------


def test_a_batch_with_a_key_used_for_another_request_writes_nothing(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("a", key="k"), now=now)
    batch = [new("b", key="k2"), new("c", key="k", request="other"), new("d")]
    tasks = [("sms", f"task {i}") for i in range(3)]
    created = ledger.create_many(batch, now=now, tasks=tasks, all_or_nothing=True)
    assert outcomes(created) == [("withheld", "b"), ("conflict", "a"), ("withheld", "d")]
    assert [ledger.get(mid) for mid in ("b", "c", "d")] == [None, None, None]
    assert ledger.redis.get(keys.idem_key("k2")) is None, "no key of the batch is taken"
    assert ledger.redis.llen("sms") == 0, "no task is pushed"
    assert ledger.redis.xlen(CHANGES) == 1, "only a's creation is in the change stream"


def test_two_messages_of_one_batch_with_one_key_and_two_requests_are_refused(ledger: Ledger) -> None:
    created = ledger.create_many(
        [new("e", key="k"), new("f", key="k", request="other")], now=time.time(), all_or_nothing=True
    )
    assert outcomes(created) == [("withheld", "e"), ("conflict", "e")]
    assert ledger.get("e") is None and ledger.redis.get(keys.idem_key("k")) is None


def test_a_key_used_again_for_the_same_request_still_answers_its_first_message(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("a", key="k"), now=now)
    created = ledger.create_many(
        [new("b", key="k"), new("c", key="k3"), new("d", key="k3")], now=now, all_or_nothing=True
    )
    assert [(c.outcome, c.id, c.status) for c in created] == [
        ("duplicate", "a", Status.QUEUED),
        ("created", "c", Status.QUEUED),
        ("duplicate", "c", Status.QUEUED),
    ]


def test_single_sends_gathered_into_one_call_still_fail_alone(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("a", key="k"), now=now)
    created = ledger.create_many([new("b"), new("c", key="k", request="other")], now=now)
    assert outcomes(created) == [("created", "b"), ("conflict", "a")]
    assert ledger.get("b") is not None


def test_key_conflicts_only_reads(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("a", key="k"), now=now)
    batch = [
        new("b"),
        new("c", key="k", request="other"),
        new("d", key="k4"),
        new("e", key="k4", request="x"),
    ]
    assert ledger.key_conflicts(batch, now=now) == {1: "a", 3: "d"}
    assert ledger.key_conflicts([new("f", key="k")], now=now) == {}
    assert records(ledger.redis) == 1 and ledger.redis.get(keys.idem_key("k4")) is None


# --- the producer -------------------------------------------------------------------------


def sms(text: str, key: str | None = None) -> dict[str, object]:
    return {"to": [NUMBER], "body": text, **({"key": key} if key else {})}


def test_send_many_with_a_conflicting_key_records_nothing_then_the_fixed_batch_once(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    first = hudhud.send("sms", sms("a", "order-1"))
    batch = [sms("b"), sms("c", "order-1"), sms("d", "order-2")]
    with pytest.raises(IdempotencyConflict) as caught:
        hudhud.send_many("sms", batch)
    assert caught.value.field == "items[1].key" and caught.value.existing_id == first.id
    assert records(redis_client) == 1 and redis_client.llen("sms") == 1, "only the first send"
    fixed = [batch[0], sms("c", "order-3"), batch[2]]
    receipts = hudhud.send_many("sms", fixed)
    assert not any(r.duplicate for r in receipts)
    assert records(redis_client) == 4 and redis_client.llen("sms") == 4


def test_send_many_larger_than_a_round_trip_is_checked_whole_first(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    hudhud.send("sms", sms("a", "order-1"))
    batch = [sms(f"m {n}") for n in range(BULK_CHUNK + 5)] + [sms("late", "order-1")]
    with pytest.raises(IdempotencyConflict) as caught:
        hudhud.send_many("sms", batch)
    assert caught.value.field == f"items[{BULK_CHUNK + 5}].key"
    assert records(redis_client) == 1, "not even the first round trip's messages"


# --- a retried email ----------------------------------------------------------------------


def bounced_email(hudhud: Hudhud) -> str:
    sent = hudhud.send(
        "email",
        {
            "to": ["amina@example.com"],
            "subject": "s",
            "text": "t",
            "reference": "order-77",
            "callback_url": "https://hooks.example.com/hudhud",
        },
    )
    ledger, now = hudhud.ledger, time.time()
    claim = ledger.claim(sent.id, "taifa", now=now)
    outcome, _ = ledger.transition(
        sent.id,
        to=Status.BOUNCED,
        expect=Status.SENDING,
        now=now,
        token=claim.attempts,
        fields={"provider_message_id": "taifa-77"},
    )
    assert outcome == "ok"
    return sent.id


def test_a_retry_carries_the_originals_reference_and_callback_url_and_is_made_once_per_id(
    hudhud: Hudhud,
) -> None:
    original = bounced_email(hudhud)
    retry = hudhud.retry_email(original, new_id="retry-77")
    again = hudhud.retry_email(original, new_id="retry-77")
    assert (retry.id, again.id, again.duplicate) == ("retry-77", "retry-77", True)
    record = hudhud.ledger.get("retry-77")
    assert record is not None and record["retry_of"] == original
    assert record["reference"] == "order-77"
    assert record["callback_url"] == "https://hooks.example.com/hudhud"
