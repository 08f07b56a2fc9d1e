"""Single sends of the HTTP API recorded together (`worker.web.gather`): each caller gets the
answer `Hudhud.send` would give, against a real redis-server; end to end, a real worker
delivers what was recorded this way exactly like a message from `Hudhud.send`."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.errors import InvalidInput, RedisFull
from hudhud.worker.ledger import keys
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict, Receipt
from hudhud.worker.web import gather
from tests.helpers import RedisServer, free_port
from tests.stack import Stack, running_stack

Outcome = Receipt | BaseException


@pytest.fixture()
def hudhud(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Hudhud]:
    settings = Settings(redis_url=redis_server.url, taqnyat_sender="HUDHUD", taifa_from="noreply@example.com")
    runtime.reset()
    yield Hudhud(settings, app=create_app(settings))
    runtime.reset()


def number(i: int) -> str:
    return f"9665{i:08d}"


def records(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.msg_key("*"), count=1000))


async def submit_all(hudhud: Hudhud, sends: list[tuple[str, Mapping[str, Any]]]) -> list[Outcome]:
    """Every send submitted at once, as concurrent requests of the API are."""
    calls = [gather.submit_one(hudhud, channel, fields) for channel, fields in sends]
    return list(await asyncio.gather(*calls, return_exceptions=True))


def test_concurrent_sends_are_recorded_in_few_flushes_each_with_its_own_receipt(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    flushes: list[int] = []
    prepare = hudhud.prepare

    def counted(requests: Any, now: float) -> Any:
        flushes.append(len(requests))
        return prepare(requests, now)

    hudhud.prepare = counted  # type: ignore[method-assign]
    sends = [("sms", {"to": [number(i)], "body": f"code {i}"}) for i in range(450)]
    outcomes = asyncio.run(submit_all(hudhud, sends))
    assert all(isinstance(o, Receipt) and o.status == "queued" and not o.duplicate for o in outcomes)
    assert len({o.id for o in outcomes if isinstance(o, Receipt)}) == 450
    assert sum(flushes) == 450 and max(flushes) <= gather.FLUSH_LIMIT and len(flushes) < 450
    assert records(redis_client) == 450 and redis_client.llen("sms") == 450
    first = outcomes[0]
    assert isinstance(first, Receipt)
    like = hudhud.send_sms([number(0)], "code 0")
    assert hudhud.ledger.get(first.id)["payload"] == hudhud.ledger.get(like.id)["payload"]  # type: ignore[index]


def test_bad_field_fails_its_request_alone_and_records_nothing_of_it(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    sends: list[tuple[str, Mapping[str, Any]]] = [
        ("sms", {"to": [number(1)], "body": "fine"}),
        ("sms", {"to": ["not-a-number"], "body": "bad"}),
        ("sms", {"to": [number(3)]}),
        ("fax", {"to": [number(4)], "body": "no such channel"}),
        ("sms", {"to": [number(5)], "body": "fine", "sender": None}),
    ]
    outcomes = asyncio.run(submit_all(hudhud, sends))
    assert isinstance(outcomes[0], Receipt) and isinstance(outcomes[4], Receipt)
    fields = [o.field for o in outcomes[1:4] if isinstance(o, InvalidInput)]
    assert fields == ["to[0]", "body", "channel"]
    assert not any(isinstance(o, IdempotencyConflict) for o in outcomes)
    assert records(redis_client) == 2 and redis_client.llen("sms") == 2


def test_keys_answer_as_send_does_duplicates_and_a_conflict(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    earlier = hudhud.send_sms([number(9)], "code 9", key="k-earlier")
    sends: list[tuple[str, Mapping[str, Any]]] = [
        ("sms", {"to": [number(1)], "body": "code 1", "key": "k-1"}),
        ("sms", {"to": [number(1)], "body": "code 1", "key": "k-1"}),
        ("sms", {"to": [number(2)], "body": "code 2", "key": "k-2"}),
        ("sms", {"to": [number(2)], "body": "another body", "key": "k-2"}),
        ("sms", {"to": [number(9)], "body": "code 9", "key": "k-earlier"}),
        ("sms", {"to": [number(9)], "body": "code 10", "key": "k-earlier"}),
    ]
    outcomes = asyncio.run(submit_all(hudhud, sends))
    first, again, second, other, replay, conflict = outcomes
    assert isinstance(first, Receipt) and not first.duplicate
    assert again == Receipt(first.id, "queued", duplicate=True)
    assert isinstance(second, Receipt) and not second.duplicate
    assert isinstance(other, IdempotencyConflict) and other.existing_id == second.id and other.field == "key"
    assert replay == Receipt(earlier.id, "queued", duplicate=True)
    assert isinstance(conflict, IdempotencyConflict) and conflict.existing_id == earlier.id
    assert records(redis_client) == 3 and redis_client.llen("sms") == 3


def test_scheduled_sends_wait_as_send_leaves_them(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()  # within the ETA window
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    sends: list[tuple[str, Mapping[str, Any]]] = [
        ("sms", {"to": [number(1)], "body": "soon", "at": soon}),
        ("sms", {"to": [number(2)], "body": "later", "at": later}),
    ]
    near, far = asyncio.run(submit_all(hudhud, sends))
    assert isinstance(near, Receipt) and isinstance(far, Receipt)
    assert near.status == far.status == "scheduled"
    assert redis_client.llen("sms") == 1  # an ETA task for the near one; the far one is parked
    assert redis_client.zscore(keys.SCHEDULED, far.id) is not None
    assert redis_client.zscore(keys.SCHEDULED, near.id) is None
    compare = hudhud.send_sms([number(3)], "later", at=later)
    assert {k for k in hudhud.status(far.id)} == {k for k in hudhud.status(compare.id)}


def test_email_with_attachment_is_recorded_alone(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    content = base64.b64encode(b"hello").decode()
    attachment = {"filename": "a.txt", "content_base64": content, "content_type": "text/plain"}
    fields = {
        "to": ["person@example.com"],
        "subject": "hi",
        "text": "see attached",
        "attachments": [attachment],
    }
    receipt = asyncio.run(gather.submit_one(hudhud, "email", fields))
    assert receipt.status == "queued" and records(redis_client) == 1
    assert hudhud.status(receipt.id)["channel"] == "email"


def test_a_caller_that_goes_away_leaves_its_send_recorded(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    async def leave_then_send() -> Receipt:
        gone = asyncio.create_task(gather.submit_one(hudhud, "sms", {"to": [number(1)], "body": "x"}))
        await asyncio.sleep(0)  # it is waiting for its flush
        gone.cancel()
        return await gather.submit_one(hudhud, "sms", {"to": [number(2)], "body": "y"})

    receipt = asyncio.run(leave_then_send())
    assert receipt.status == "queued"
    assert records(redis_client) == 2 and redis_client.llen("sms") == 2


def test_redis_error_fails_that_flush_with_the_exception_send_raises(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    sends = [("sms", {"to": [number(i)], "body": f"code {i}"}) for i in range(30)]
    redis_client.config_set("maxmemory", "1")
    try:
        with pytest.raises(RedisFull):
            hudhud.send_sms([number(99)], "code 99")
        refused = asyncio.run(submit_all(hudhud, sends))
    finally:
        redis_client.config_set("maxmemory", "0")
    assert all(isinstance(o, RedisFull) for o in refused)
    assert records(redis_client) == 0
    accepted = asyncio.run(submit_all(hudhud, sends))
    assert all(isinstance(o, Receipt) for o in accepted) and records(redis_client) == 30


def test_unreachable_redis_raises_what_send_raises(tmp_path: Path) -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", taqnyat_sender="HUDHUD", redis_pool_timeout=1
    )
    runtime.reset()
    try:
        hudhud = Hudhud(settings, app=create_app(settings))
        with pytest.raises(redis.ConnectionError):
            hudhud.send_sms([number(1)], "code 1")
        outcomes = asyncio.run(
            submit_all(hudhud, [("sms", {"to": [number(i)], "body": "x"}) for i in range(5)])
        )
    finally:
        runtime.reset()
    assert all(isinstance(o, redis.ConnectionError) for o in outcomes)


# --- end to end: a real worker delivers what was gathered --------------------------------
@pytest.mark.e2e
def test_gathered_sends_are_delivered_once_each_like_sends(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs={"progress_seconds": 0.2}) as stack:
        run = uuid.uuid4().hex[:8]
        due = datetime.now(UTC) + timedelta(seconds=5)
        sends: list[tuple[str, Mapping[str, Any]]] = [
            ("sms", {"to": [number(i)], "body": f"code {i}"}) for i in range(280)
        ]
        for i in range(8):  # each key sent twice: one message
            fields = {"to": [number(500 + i)], "body": f"keyed {i}", "key": f"{run}-{i}"}
            sends += [("sms", fields), ("sms", dict(fields))]
        sends += [
            ("sms", {"to": [number(600)], "body": "first", "key": f"{run}-c"}),
            ("sms", {"to": [number(600)], "body": "other", "key": f"{run}-c"}),
            ("sms", {"to": [number(700)], "body": "later", "at": due.isoformat()}),
            ("voice", {"to": [number(800)], "audio_url": "https://example.com/a.mp3"}),
        ]
        assert len(sends) == 300
        outcomes = asyncio.run(submit_all(stack.hudhud, sends))
        sent = delivered_ids(stack, outcomes)
        assert len(sent) == 280 + 8 + 1 + 1 + 1
        stack.wait_status(sent, {"sent"}, timeout=90)
        time.sleep(1)
        accepted = stack.sandbox.sends()
        by_id = Counter(s["sms_id"] for s in accepted if s["channel"] == "sms")
        assert all(by_id[i] == 1 for i in sent[:-1]), [i for i in sent[:-1] if by_id[i] != 1]
        by_number = Counter(n for s in accepted for n in s["recipients"])  # type: ignore[attr-defined]
        numbers = [*range(280), *range(500, 508), 600, 700, 800]
        assert all(by_number[number(i)] == 1 for i in numbers) and len(accepted) == len(numbers)
        scheduled = stack.hudhud.status(outcome_id(outcomes[-2]))
        sent_at = next(e["at"] for e in scheduled["events"] if e["type"] == "sent")
        assert datetime.fromisoformat(sent_at.replace("Z", "+00:00")) >= due
        like = stack.hudhud.send_sms([number(900)], "code 900")
        stack.wait_status([like.id], {"sent"})
        assert same_shape(stack.hudhud.status(like.id), stack.hudhud.status(sent[0]))


def outcome_id(outcome: Outcome) -> str:
    assert isinstance(outcome, Receipt)
    return outcome.id


def delivered_ids(stack: Stack, outcomes: list[Outcome]) -> list[str]:
    """The ids of the messages made, checking the answers to the keyed sends on the way."""
    plain, keyed, (first, other, later, voice) = outcomes[:280], outcomes[280:296], outcomes[296:]
    ids = [outcome_id(o) for o in plain]
    for one, two in zip(keyed[::2], keyed[1::2], strict=True):
        assert isinstance(one, Receipt) and isinstance(two, Receipt)
        assert {one.duplicate, two.duplicate} == {False, True} and one.id == two.id
        ids.append(one.id)
    assert isinstance(first, Receipt) and isinstance(other, IdempotencyConflict)
    assert other.existing_id == first.id
    assert isinstance(later, Receipt) and later.status == "scheduled"
    return [*ids, first.id, later.id, outcome_id(voice)]


def same_shape(one: dict[str, Any], two: dict[str, Any]) -> bool:
    """The same fields, the same events and attempts."""
    return (
        set(one) == set(two)
        and [e["type"] for e in one["events"]] == [e["type"] for e in two["events"]]
        and one["attempts"] == two["attempts"] == 1
    )
