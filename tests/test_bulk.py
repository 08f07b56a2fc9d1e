"""The bulk producer API and campaigns, against a real redis-server (and, end to end, a real
worker delivering to the sandbox)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import keys
from hudhud.worker.producer import campaign
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict
from tests.helpers import RedisServer
from tests.stack import Stack, running_stack, wait_until


@pytest.fixture()
def hudhud(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Hudhud]:
    settings = Settings(
        redis_url=redis_server.url,
        taqnyat_sender="HUDHUD",
        taifa_from="noreply@example.com",
        sms_batch_size=1000,
        taifa_batch_size=100,
    )
    runtime.reset()
    yield Hudhud(settings, app=create_app(settings))
    runtime.reset()


def queued_tasks(client: redis.Redis, queue: str) -> list[dict[str, object]]:
    """The broker messages waiting in `queue`, decoded as Celery's protocol 2 carries them."""
    out = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append({"headers": envelope["headers"], "args": args, "kwargs": kwargs, **envelope["properties"]})
    return out


def number(i: int) -> str:
    return f"9665{i:08d}"


def test_send_many_records_and_enqueues_each_message_once(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    receipts = hudhud.send_many("sms", [{"to": [number(i)], "body": f"code {i}"} for i in range(1200)])
    assert len({r.id for r in receipts}) == 1200 and {r.status for r in receipts} == {"queued"}
    tasks = queued_tasks(redis_client, "sms")
    assert sorted(t["args"][0] for t in tasks) == sorted(r.id for r in receipts)  # type: ignore[index]
    first = tasks[0]
    assert first["headers"]["task"] == "hudhud.deliver"  # type: ignore[index]
    assert first["args"] == [first["args"][0], "taqnyat"] and first["kwargs"] == {}  # type: ignore[index]
    assert first["delivery_info"] == {"exchange": "", "routing_key": "sms"}
    assert first["correlation_id"] == first["headers"]["id"]  # type: ignore[index]
    assert len({t["headers"]["id"] for t in tasks}) == 1200  # type: ignore[index]
    assert redis_client.zcard("hudhud:queued") == 1200


def test_send_many_pushes_nothing_for_a_repeated_key_or_a_far_schedule(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    first = hudhud.send_many("sms", [{"to": [number(1)], "body": "a", "key": "k-1"}])[0]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    soon = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    again = hudhud.send_many(
        "sms",
        [
            {"to": [number(1)], "body": "a", "key": "k-1"},
            {"to": [number(2)], "body": "later", "at": later},
            {"to": [number(3)], "body": "soon", "at": soon},
        ],
    )
    assert again[0].id == first.id and again[0].duplicate
    assert again[1].status == "scheduled" and again[2].status == "scheduled"
    tasks = queued_tasks(redis_client, "sms")
    assert [t["args"][0] for t in tasks] == [again[2].id, first.id]  # type: ignore[index]
    assert tasks[0]["headers"]["eta"] is not None  # type: ignore[index]
    assert redis_client.zscore("hudhud:scheduled", again[1].id) is not None


def test_send_many_refuses_a_bad_item_by_index_and_records_nothing(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    items = [{"to": [number(1)], "body": "ok"}, {"to": ["12ab"], "body": "bad"}]
    with pytest.raises(InvalidInput) as caught:
        hudhud.send_many("sms", items)
    assert caught.value.field == "items[1].to[0]"
    assert redis_client.dbsize() == 0


def test_campaign_is_split_into_deduplicated_batches_recorded_whole(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    recipients = [number(i) for i in range(2500)] + [number(7), number(8)]
    receipt = hudhud.send_campaign("sms", {"to": recipients, "body": "sale today"})
    assert (receipt.recipients, receipt.batches, receipt.status) == (2500, 3, "queued")
    batches = [hudhud.ledger.get(campaign.batch_id(receipt.id, n)) for n in range(3)]
    sizes = [len(json.loads(b["payload"])["to"]) for b in batches if b]
    assert sizes == [1000, 1000, 500]
    assert sorted(t["args"][0] for t in queued_tasks(redis_client, "sms.bulk")) == sorted(  # type: ignore[index]
        campaign.batch_id(receipt.id, n) for n in range(3)
    )
    assert queued_tasks(redis_client, "sms") == []
    assert redis_client.hlen(keys.recipients_key(receipt.id)) == 2500
    summary = hudhud.status(receipt.id)
    assert summary["status"] == "queued" and summary["recipient_counts"]["pending"] == 2500
    assert hudhud.recipient_status(receipt.id, number(2400))["batch"] == campaign.batch_id(receipt.id, 2)


def test_campaign_with_a_bad_recipient_names_it_and_records_nothing(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    recipients = [number(i) for i in range(50)]
    recipients[37] = "+96650000x"
    with pytest.raises(InvalidInput) as caught:
        hudhud.send_campaign("sms", {"to": recipients, "body": "hi"})
    assert caught.value.field == "to[37]"
    with pytest.raises(InvalidInput) as empty:
        hudhud.send_campaign("sms", {"to": [], "body": "hi"})
    assert empty.value.field == "to"
    with pytest.raises(InvalidInput) as body:
        hudhud.send_campaign("sms", {"to": recipients[:2], "body": ""})
    assert body.value.field == "body"
    assert redis_client.dbsize() == 0


def test_campaign_key_returns_the_first_campaign_and_refuses_another_request(hudhud: Hudhud) -> None:
    fields = {"to": [number(i) for i in range(30)], "body": "once", "key": "campaign-1"}
    first = hudhud.send_campaign("sms", fields)
    again = hudhud.send_campaign("sms", fields)
    assert again.id == first.id and again.duplicate
    with pytest.raises(IdempotencyConflict):
        hudhud.send_campaign("sms", {**fields, "body": "twice"})


def test_scheduled_campaign_is_parked_and_can_be_cancelled(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    receipt = hudhud.send_campaign("sms", {"to": [number(i) for i in range(1500)], "body": "x", "at": at})
    assert receipt.status == "scheduled" and redis_client.llen("sms") == 0
    assert redis_client.zcard("hudhud:scheduled") == 2
    assert hudhud.status(receipt.id)["status"] == "scheduled"
    assert hudhud.cancel(receipt.id).status == "cancelled"
    summary = hudhud.status(receipt.id)
    assert summary["status"] == "cancelled" and summary["recipient_counts"]["cancelled"] == 1500


def test_taifa_campaign_batches_each_recipient_as_its_own_email(hudhud: Hudhud) -> None:
    receipt = hudhud.send_campaign(
        "email", {"to": [f"user{i}@example.com" for i in range(250)], "subject": "news", "text": "hello"}
    )
    assert receipt.batches == 3
    batch = hudhud.ledger.get(campaign.batch_id(receipt.id, 2))
    assert batch is not None and batch["provider"] == "taifa"
    payload = json.loads(batch["payload"])
    assert payload["each"] is True and len(payload["to"]) == 50


# --- end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"HUDHUD_SMS_BATCH_SIZE": "1000", "HUDHUD_TAIFA_BATCH_SIZE": "40"}
    with running_stack(
        tmp_path_factory.mktemp("bulk"), extra_env=env, knobs={"progress_seconds": 0.2}
    ) as made:
        yield made


@pytest.mark.e2e
def test_sms_campaign_reaches_every_recipient_once_with_per_recipient_status(stack: Stack) -> None:
    tag = uuid.uuid4().int % 10_000
    good = [f"9665{tag:04d}{i:04d}" for i in range(2300)]
    unassigned = [f"9990{tag:04d}{i:04d}" for i in range(5)]  # the sandbox refuses these
    receipt = stack.hudhud.send_campaign("sms", {"to": good + unassigned, "body": "campaign body"})
    ids = [campaign.batch_id(receipt.id, n) for n in range(receipt.batches)]
    stack.wait_status(ids, {"sent"}, timeout=90)
    counts: Counter[str] = Counter()
    for send in stack.sandbox.sends():
        if send["channel"] == "sms" and send["body"] == "campaign body":
            counts.update(str(r) for r in send["recipients"])  # type: ignore[attr-defined]
    assert set(counts) == set(good) and set(counts.values()) == {1}
    summary = stack.hudhud.status(receipt.id)
    assert summary["status"] == "sent"
    assert summary["recipient_counts"] == {
        "sent": 2300,
        "delivered": 0,
        "bounced": 0,
        "rejected": 5,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "suppressed": 0,
        "pending": 0,
    }
    assert float(summary["cost"]) == pytest.approx(2300 * 0.026)
    assert stack.hudhud.recipient_status(receipt.id, good[1500])["status"] == "sent"
    assert stack.hudhud.recipient_status(receipt.id, unassigned[0])["status"] == "rejected"


@pytest.mark.e2e
def test_taifa_campaign_uses_the_batch_endpoint_and_keeps_each_email_id(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:8]
    addresses = [f"c{tag}-{i}@example.com" for i in range(95)] + [f"reject-{tag}@example.com"]
    receipt = stack.hudhud.send_campaign("email", {"to": addresses, "subject": f"news {tag}", "text": "hi"})
    assert receipt.batches == 3
    ids = [campaign.batch_id(receipt.id, n) for n in range(3)]
    stack.wait_status(ids, {"sent"}, timeout=60)
    sent = [s for s in stack.sandbox.sends() if s.get("subject") == f"news {tag}"]
    assert sorted(str(s["recipients"][0]) for s in sent) == sorted(addresses[:95])  # type: ignore[index]
    summary = stack.hudhud.status(receipt.id)
    handed_over = sum(summary["recipient_counts"][k] for k in ("sent", "delivered", "bounced"))
    assert handed_over == 95 and summary["recipient_counts"]["rejected"] == 1
    one = stack.hudhud.recipient_status(receipt.id, addresses[10])
    assert one["status"] in ("sent", "delivered")
    assert one["provider_message_id"] in {s["provider_message_id"] for s in sent}
    assert stack.hudhud.recipient_status(receipt.id, addresses[-1])["status"] == "rejected"


@pytest.mark.e2e
def test_taifa_campaign_emails_are_followed_to_delivered_or_bounced(stack: Stack) -> None:
    """Beat reads Taifa's feed of status changes and records each campaign email's fate once."""
    tag = uuid.uuid4().hex[:8]
    bouncing = [f"bounce-{tag}-{i}@example.com" for i in range(3)]
    addresses = [f"d{tag}-{i}@example.com" for i in range(60)] + bouncing
    receipt = stack.hudhud.send_campaign("email", {"to": addresses, "subject": f"fate {tag}", "text": "hi"})
    ids = [campaign.batch_id(receipt.id, n) for n in range(receipt.batches)]
    stack.wait_status(ids, {"sent"}, timeout=60)

    def counts() -> dict[str, int]:
        return dict(stack.hudhud.status(receipt.id)["recipient_counts"])

    wait_until(lambda: counts()["delivered"] == 60 and counts()["bounced"] == 3, timeout=60)
    assert counts() == {
        "sent": 0,
        "delivered": 60,
        "bounced": 3,
        "rejected": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "suppressed": 0,
        "pending": 0,
    }
    bounced = stack.hudhud.recipient_status(receipt.id, bouncing[1])
    assert bounced["status"] == "bounced" and bounced["error"].startswith("taifa: bounced: 550 5.1.1")
    assert stack.hudhud.recipient_status(receipt.id, addresses[7])["status"] == "delivered"
    # Each fate is recorded once: later runs of the poll change nothing.
    before = stack.redis.hgetall(f"hudhud:m:{receipt.id}")
    time.sleep(4)
    assert stack.redis.hgetall(f"hudhud:m:{receipt.id}") == before
    assert not stack.redis.keys("hudhud:taifa:id:*"), "no email left to follow"
