"""The metrics: the ledger's figures as Prometheus reads them, against a real redis-server.

Status changes are counted by the script that appends them to the change stream, so the
counts equal the stream; the send histogram measures creation (or due time) to hand-over;
queue ages come from hudhud's header or, for a foreign task, from when first seen; the Redis
being away answers `hudhud_ledger_up 0` instead of failing the scrape; no label carries a
number, an address or an id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hudhud.config import Settings
from hudhud.worker.ledger import CHANGES, Ledger, NewMessage, overview
from hudhud.worker.ledger.keys import CALLBACKS_STATS, FAILOVER_STATS, held_key, pause_key
from hudhud.worker.ops import metrics
from hudhud.worker.providers.http import _fault_outcome, _status_outcome, call_name

NUMBER = "966500000777"
ADDRESS = "someone@example.com"


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def scrape(ledger: Ledger, settings: Settings | None = None) -> str:
    into = CollectorRegistry()
    into.register(metrics.LedgerCollector(lambda: ledger, settings or Settings()))
    return metrics.exposition(into).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def sms(mid: str, due: float | None = None) -> NewMessage:
    return NewMessage(
        id=mid,
        channel="sms",
        provider="taqnyat",
        payload={"to": [NUMBER], "body": "code 1234"},
        request_hash=mid,
        due=due,
    )


def send(ledger: Ledger, mid: str, *, at: float) -> None:
    claim = ledger.claim(mid, "taqnyat", now=at)
    assert claim.outcome == "claimed"
    assert ledger.transition(mid, to="sent", expect="sending", now=at, token=claim.attempts)[0] == "ok"


def test_status_changes_are_counted_as_the_stream_has_them(ledger: Ledger) -> None:
    for i in range(3):
        ledger.create(sms(f"m{i}"), now=1000.0)
    send(ledger, "m0", at=1000.4)
    send(ledger, "m1", at=1003.0)
    ledger.cancel("m2", now=1001.0)
    text = scrape(ledger)
    labels = {"channel": "sms", "provider": "taqnyat"}
    assert value(text, "hudhud_messages_total", **labels, status="queued") == 3
    assert value(text, "hudhud_messages_total", **labels, status="sending") == 2
    assert value(text, "hudhud_messages_total", **labels, status="sent") == 2
    assert value(text, "hudhud_messages_total", **labels, status="cancelled") == 1
    raw_stream: Any = ledger.redis.xrange(CHANGES)
    stream = [{k.decode(): v.decode() for k, v in raw.items()} for _, raw in raw_stream]
    assert sum(value(text, "hudhud_messages_total", **labels, status=e["status"]) is not None for e in stream)
    assert len(stream) == 3 + 2 + 2 + 1
    # the hand-overs took 0.4 s and 3 s from creation
    assert value(text, "hudhud_send_duration_seconds_count", **labels) == 2
    assert value(text, "hudhud_send_duration_seconds_sum", **labels) == pytest.approx(3.4, abs=0.01)
    assert value(text, "hudhud_send_duration_seconds_bucket", **labels, le="0.5") == 1
    assert value(text, "hudhud_send_duration_seconds_bucket", **labels, le="2.5") == 1
    assert value(text, "hudhud_send_duration_seconds_bucket", **labels, le="5.0") == 2
    assert value(text, "hudhud_send_duration_seconds_bucket", **labels, le="+Inf") == 2


def test_the_send_buckets_are_the_scripts_own() -> None:
    import re
    from importlib import resources

    lua = resources.files("hudhud.worker.ledger").joinpath("lua", "change.lua").read_text()
    listed = re.search(r"SEND_BUCKETS = \{([^}]*)\}", lua)
    assert listed is not None
    assert tuple(float(b) for b in listed.group(1).split(",")) == overview.SEND_BUCKETS


def test_a_scheduled_send_is_timed_from_its_due_time(ledger: Ledger) -> None:
    ledger.create(sms("s1", due=5000.0), now=1000.0)
    ledger.transition("s1", to="queued", expect="scheduled", now=5000.0)
    send(ledger, "s1", at=5001.0)
    text = scrape(ledger)
    labels = {"channel": "sms", "provider": "taqnyat"}
    assert value(text, "hudhud_send_duration_seconds_sum", **labels) == pytest.approx(1.0, abs=0.01)
    assert value(text, "hudhud_messages_total", **labels, status="scheduled") == 1


def test_a_retried_transition_counts_once(ledger: Ledger) -> None:
    ledger.create(sms("r1"), now=1000.0)
    ledger.claim("r1", "taqnyat", now=1000.0, op="claim-op")
    for _ in range(2):
        ledger.transition("r1", to="sent", expect="sending", now=1001.0, token=1, op="sent-op")
    text = scrape(ledger)
    assert value(text, "hudhud_messages_total", channel="sms", provider="taqnyat", status="sent") == 1
    assert value(text, "hudhud_send_duration_seconds_count", channel="sms", provider="taqnyat") == 1


def task_message(queued_at: float | None, tag: str) -> str:
    headers: dict[str, object] = {"task": "hudhud.deliver", "id": tag}
    if queued_at is not None:
        headers["hudhud_queued"] = f"{queued_at:.3f}"
    return json.dumps({"headers": headers, "properties": {"delivery_tag": tag}, "body": ""})


def test_queue_depth_and_the_age_of_the_oldest_task(ledger: Ledger) -> None:
    client = ledger.redis
    client.lpush("sms.bulk", task_message(900.0, "a"), task_message(950.0, "b"))  # a is the oldest
    client.lpush("sms", task_message(990.0, "c"))
    states = {q.name: q for q in overview.queues(ledger, now=1000.0)}
    assert (states["sms.bulk"].depth, states["sms.bulk"].lane, states["sms.bulk"].oldest_age) == (
        2,
        "bulk",
        100.0,
    )
    assert (states["sms"].depth, states["sms"].lane, states["sms"].oldest_age) == (1, "transactional", 10.0)
    assert (states["email"].depth, states["email"].oldest_age) == (0, 0.0)
    # a foreign producer's task carries no time: aged from when it was first seen at the tail
    client.lpush("voice", task_message(None, "f"))
    assert {q.name: q for q in overview.queues(ledger, now=2000.0)}["voice"].oldest_age == 0.0
    assert {q.name: q for q in overview.queues(ledger, now=2030.0)}["voice"].oldest_age == 30.0
    text = scrape(ledger)
    assert value(text, "hudhud_queue_depth", queue="sms.bulk", lane="bulk") == 2
    assert (value(text, "hudhud_queue_oldest_age_seconds", queue="sms.bulk", lane="bulk") or 0) > 100


def test_providers_callbacks_doubt_and_failover_figures(ledger: Ledger) -> None:
    client = ledger.redis
    client.set(pause_key("taqnyat"), json.dumps({"kind": "balance", "since": 1.0}))
    client.zadd(held_key("taqnyat"), {"h1": 1.0, "h2": 2.0})
    overview.remember_balance(ledger, "taqnyat", "12.500", "SAR", now=1.0)
    client.hset(CALLBACKS_STATS, mapping={"pending": 4, "attempt:200": 7, "attempt:500": 2, "delivered": 7})
    client.hset(FAILOVER_STATS, "taifa>taqnyat:outage", 3)
    overview.note_in_doubt(ledger)
    text = scrape(ledger, Settings(HUDHUD_LOW_BALANCE=50))
    assert value(text, "hudhud_provider_paused", provider="taqnyat") == 1
    assert value(text, "hudhud_provider_paused", provider="taifa") == 0
    assert value(text, "hudhud_held_messages", provider="taqnyat") == 2
    assert value(text, "hudhud_provider_balance", provider="taqnyat", currency="SAR") == 12.5
    assert value(text, "hudhud_provider_balance_low_level", provider="taqnyat") == 50
    assert value(text, "hudhud_callbacks_pending") == 4
    assert value(text, "hudhud_callback_attempts_total", outcome="200") == 7
    assert value(text, "hudhud_callback_attempts_total", outcome="500") == 2
    assert (
        value(text, "hudhud_failover_moves_total", **{"from": "taifa", "to": "taqnyat", "reason": "outage"})
        == 3
    )
    assert value(text, "hudhud_in_doubt_total") == 1
    assert value(text, "hudhud_ledger_up") == 1


def test_no_label_carries_a_number_an_address_or_an_id(ledger: Ledger) -> None:
    ledger.create(sms("secret-id-1"), now=1000.0)
    email = NewMessage(
        id="secret-id-2",
        channel="email",
        provider="taifa",
        payload={"to": [ADDRESS], "subject": "s", "text": "t"},
        request_hash="x",
    )
    ledger.create(email, now=1000.0)
    send(ledger, "secret-id-1", at=1001.0)
    text = scrape(ledger)
    for secret in (NUMBER, ADDRESS, "secret-id", "code 1234"):
        assert secret not in text


@pytest.fixture()
def unreachable() -> Iterator[Ledger]:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    yield Ledger(client, retention_seconds=60, idempotency_ttl=60, lease_seconds=30, park_after=60)
    client.close()


def test_a_redis_that_does_not_answer_is_a_gauge_not_a_failed_scrape(unreachable: Ledger) -> None:
    text = scrape(unreachable)
    assert value(text, "hudhud_ledger_up") == 0
    assert "hudhud_messages_total" not in text


@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("/v1/messages", "/v1/messages"),
        ("/v1/emails/0e3b6c1a-9d7f-4c1e-8a53-6f0d1f2b7c11/retry", "/v1/emails/{id}/retry"),
        ("/v1/messages/12345?x=1", "/v1/messages/{id}"),
        ("/mailSend.php", "/mailSend.php"),
        ("/account/balance", "/account/balance"),
    ],
)
def test_a_provider_call_is_named_without_its_ids(path: str, call: str) -> None:
    assert call_name(path) == call


def test_provider_call_outcomes() -> None:
    import requests

    assert [_status_outcome(s) for s in (200, 201, 400, 401, 429, 500, 503)] == [
        "ok",
        "ok",
        "4xx",
        "4xx",
        "429",
        "5xx",
        "5xx",
    ]
    assert _fault_outcome(requests.ReadTimeout()) == "timeout"
    assert _fault_outcome(requests.ConnectionError()) == "connection"
