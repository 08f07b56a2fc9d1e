"""Expiry: a message not handed to a provider by its `expires_at` (or `ttl`) ends `expired`.

The checks of the fields (pure), the ledger against a real redis-server (the claim, beat's
sweep of waiting messages, the check before a retry, with the sandbox over HTTP), the doors
producers use (CLI, HTTP API, Python API), campaigns, and one end-to-end run with a real
worker and beat while Taqnyat reports an outage.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.delivery.attempt import EXPIRED_ERROR, Delivery
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import Ledger, NewMessage, Status, iso, keys
from hudhud.worker.ledger.keys import CHANGES, EXPIRIES, SCHEDULED, held_key, short_key
from hudhud.worker.ledger.status import DeliveryOutcome, Lane
from hudhud.worker.producer import campaign, messages
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.runtime import make_ledger
from hudhud.worker.web.app import create_app as create_api
from tests.helpers import RedisServer, Sandbox, run_cli
from tests.stack import FAST_BEAT, running_stack, wait_until

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
CFG = Settings(TAQNYAT_SENDER="HUDHUD", TAQNYAT_CALLER_ID="966500000001", TAIFA_FROM="a@example.com")
SMS = {"to": ["966500000000"], "body": "code 1234"}
API_KEY = "hh_expiry_key"


def build(fields: dict[str, object], cfg: Settings = CFG) -> messages.SendRequest:
    return messages.build("sms", {**SMS, **fields}, cfg, now=NOW)


def refused_field(fields: dict[str, object]) -> str:
    with pytest.raises(InvalidInput) as info:
        build(fields)
    return info.value.field


# --- the fields --------------------------------------------------------------------------------


def test_ttl_counts_from_now_or_from_the_send_time() -> None:
    assert build({"ttl": 30}).expires == NOW + timedelta(seconds=30)
    assert build({"ttl": "2.5"}).expires == NOW + timedelta(seconds=2.5)
    at = NOW + timedelta(hours=2)
    scheduled = build({"at": at.isoformat(), "ttl": 600})
    assert scheduled.due == at and scheduled.expires == at + timedelta(seconds=600)
    assert build({}).expires is None and build({}).lane == Lane.TRANSACTIONAL


def test_expires_at_is_taken_as_given() -> None:
    moment = NOW + timedelta(minutes=10)
    assert build({"expires_at": moment.isoformat()}).expires == moment
    assert build({"expires_at": "2026-12-02T12:10:00+03:00"}).expires == moment


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl": "soon"}, "ttl"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"ttl": [30]}, "ttl"),
        ({"ttl": 10**9}, "ttl"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": (NOW - timedelta(hours=1)).isoformat()}, "expires_at"),
        ({"expires_at": (NOW + timedelta(minutes=5)).isoformat(), "ttl": 60}, "expires_at"),
        (
            {
                "at": (NOW + timedelta(hours=1)).isoformat(),
                "expires_at": (NOW + timedelta(minutes=30)).isoformat(),
            },
            "expires_at",
        ),
        ({"lane": "fast"}, "lane"),
        ({"lane": 1}, "lane"),
    ],
)
def test_bad_expiry_and_lane_values_name_their_field(fields: dict[str, object], field: str) -> None:
    assert refused_field(fields) == field


def test_each_lane_has_its_default_ttl() -> None:
    cfg = Settings(TAQNYAT_SENDER="HUDHUD", HUDHUD_TTL_TRANSACTIONAL="120", HUDHUD_TTL_BULK="86400")
    assert build({}, cfg).expires == NOW + timedelta(seconds=120)
    bulk = build({"lane": "bulk"}, cfg)
    assert bulk.lane == Lane.BULK and bulk.expires == NOW + timedelta(days=1)
    assert build({"ttl": 5}, cfg).expires == NOW + timedelta(seconds=5), "a given ttl wins"
    planned = campaign.plan("sms", {"to": ["966500000001", "966500000002"], "body": "news"}, cfg)
    assert planned.request.lane == Lane.BULK and planned.request.expires is not None
    assert build({"ttl": 5}).request_hash != build({"ttl": 6}).request_hash


# --- the ledger --------------------------------------------------------------------------------


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def sms(mid: str, *, expires: float | None, due: float | None = None) -> NewMessage:
    return NewMessage(
        id=mid,
        channel="sms",
        provider="taqnyat",
        payload={"to": ["966500000000"], "body": "code", "sender": "HUDHUD"},
        request_hash="h",
        due=due,
        expires=expires,
    )


def last_change(ledger: Ledger, mid: str) -> dict[str, str]:
    for _, entry in ledger.redis.xrevrange(CHANGES, count=50):
        fields = {k.decode(): v.decode() for k, v in entry.items()}
        if fields["id"] == mid:
            return fields
    raise AssertionError(f"no change of {mid}")


def assert_expired(ledger: Ledger, mid: str, expires: float, previous: str) -> None:
    record = ledger.get(mid)
    assert record is not None and record["status"] == Status.EXPIRED
    assert record["error"] == EXPIRED_ERROR
    ended = record["events"][-1]
    assert ended["type"] == "expired" and ended["expires_at"] == iso(expires)
    change = last_change(ledger, mid)
    assert (change["status"], change["previous"], change["error"]) == ("expired", previous, EXPIRED_ERROR)
    assert 0 < ledger.redis.ttl(keys.msg_key(mid)) <= ledger.retention_seconds


def test_the_claim_after_the_expiry_ends_the_message(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(sms("m1", expires=now + 5), now=now)
    ledger.create(sms("m2", expires=now + 5), now=now)
    assert ledger.redis.zscore(EXPIRIES, "m1") == pytest.approx(now + 5)
    assert ledger.claim("m1", "taqnyat", now=now + 6).outcome == "expired"
    assert_expired(ledger, "m1", now + 5, "queued")
    assert not ledger.is_in("queued", "m1")
    assert ledger.claim("m2", "taqnyat", now=now + 4).outcome == "claimed", "not yet expired"


def test_a_message_in_doubt_is_never_expired(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(sms("doubt", expires=now + 5), now=now)
    ledger.flag("doubt", in_doubt="1")
    assert ledger.expire_due(now=now + 6, providers=["taqnyat"]) == ([], 0, 1)
    assert ledger.redis.zscore(EXPIRIES, "doubt") is None, "its entry is dropped"
    assert ledger.claim("doubt", "taqnyat", now=now + 6).outcome == "claimed"


def test_beat_ends_every_waiting_message_at_its_expiry_wherever_it_waits(ledger: Ledger) -> None:
    now = time.time()
    expires = now + 60
    for mid in ("sending", "sent", "held", "short"):
        ledger.create(sms(mid, expires=expires), now=now)
    ledger.create(sms("parked", expires=expires, due=now + 3600), now=now)
    ledger.create(sms("later", expires=now + 600), now=now)
    for mid in ("sending", "sent", "short"):
        assert ledger.claim(mid, "taqnyat", now=now).outcome == "claimed"
    ledger.transition("sent", to=Status.SENT, expect=Status.SENDING, now=now, provider="taqnyat")
    ledger.transition(
        "short", to=Status.QUEUED, expect=Status.SENDING, now=now, provider="taqnyat", zset="short", score=now
    )
    ledger.pause("taqnyat", {"kind": "test"})
    assert ledger.claim("held", "taqnyat", now=now).outcome == "held"

    assert ledger.expire_due(now=now + 30, providers=["taqnyat"]) == ([], 0, 0)
    ended, kept, read = ledger.expire_due(now=expires, providers=["taqnyat"])
    assert sorted(ended) == ["held", "parked", "short"] and (kept, read) == (1, 5)
    for mid, previous in (("held", "queued"), ("parked", "scheduled"), ("short", "queued")):
        assert_expired(ledger, mid, expires, previous)
    assert not ledger.redis.zcard(held_key("taqnyat")) and not ledger.redis.zcard(short_key("taqnyat"))
    assert ledger.redis.zscore(SCHEDULED, "parked") is None
    members = {m.decode() for m in ledger.redis.zrange(EXPIRIES, 0, -1)}
    assert members == {"sending", "later"}, "in a provider call it stays; ended ones leave"
    assert ledger.get("sending")["status"] == Status.SENDING  # type: ignore[index]
    assert ledger.expire_due(now=expires + 1, providers=["taqnyat"]) == ([], 1, 1)


def test_the_beat_job_is_scheduled_with_the_release_of_due_messages() -> None:
    settings = Settings(HUDHUD_RELEASE_INTERVAL="0.7")
    entry = create_app(settings).conf.beat_schedule["expire-due"]
    assert entry["task"] == "hudhud.beat.expire_due" and entry["schedule"] == 0.7


@pytest.fixture()
def delivery(redis_client: redis.Redis, fresh_sandbox: Sandbox) -> Iterator[Delivery]:
    url = redis_client.connection_pool.connection_kwargs
    settings = Settings(
        **{**FAST_BEAT, "HUDHUD_BACKOFF_BASE": "8", "HUDHUD_BACKOFF_CAP": "10"},
        **fresh_sandbox.env(),
        HUDHUD_REDIS_URL=f"redis://{url['host']}:{url['port']}/0",
    )
    runtime.reset()
    yield Delivery(
        make_ledger(settings, redis_client), settings, lambda n: runtime.provider_client(n, settings)
    )
    runtime.reset()


def test_a_retry_that_would_come_after_the_expiry_ends_the_message_now(
    delivery: Delivery, fresh_sandbox: Sandbox
) -> None:
    fresh_sandbox.knobs(rate_429=1.0, retry_after=120)
    now = time.time()
    delivery.ledger.create(sms("keeps", expires=now + 600), now=now)
    delivery.ledger.create(sms("ends", expires=now + 60), now=now)
    assert delivery.deliver("keeps", "taqnyat").result is DeliveryOutcome.PARKED
    assert delivery.ledger.get("keeps")["status"] == Status.QUEUED  # type: ignore[index]
    delivery.ledger.speed_up("taqnyat")  # the 429's slow-down would keep the next claim back
    assert delivery.deliver("ends", "taqnyat").result is DeliveryOutcome.EXPIRED
    assert_expired(delivery.ledger, "ends", now + 60, "sending")
    types = [e["type"] for e in delivery.ledger.get("ends")["events"]]  # type: ignore[index]
    assert types == ["queued", "sending", "expired"]
    assert not fresh_sandbox.sends()


def test_a_retry_in_doubt_waits_past_the_expiry(delivery: Delivery, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_after_accept=1.0)  # accepted, then the reply is lost
    now = time.time()
    delivery.ledger.create(sms("unsure", expires=now + 3), now=now)  # the back-off: 4 to 8 s
    delivery.deliver("unsure", "taqnyat")
    record = delivery.ledger.get("unsure")
    assert record is not None and record["in_doubt"] == "1"
    assert record["status"] == Status.QUEUED and float(record["next_attempt_at"]) > now + 3


# --- producers ---------------------------------------------------------------------------------


@pytest.fixture()
def api(redis_server: RedisServer, redis_client: redis.Redis) -> TestClient:
    settings = Settings(
        HUDHUD_REDIS_URL=redis_server.url, HUDHUD_API_KEYS=f"expiry:{API_KEY}", TAQNYAT_SENDER="HUDHUD"
    )
    runtime.reset()
    return TestClient(create_api(settings))


def post(api: TestClient, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    answer = api.post(path, json=body, headers={"Authorization": f"Bearer {API_KEY}"})
    return answer.status_code, answer.json()


def test_the_http_api_takes_ttl_expires_at_and_lane(api: TestClient, redis_client: redis.Redis) -> None:
    code, receipt = post(api, "/v1/messages/sms", {**SMS, "ttl": 30, "lane": "bulk"})
    assert code == 202, receipt
    record = {
        k.decode(): v.decode() for k, v in redis_client.hgetall(keys.msg_key(str(receipt["id"]))).items()
    }
    assert record["lane"] == "bulk" and float(record["expires"]) == pytest.approx(time.time() + 30, abs=5)
    assert redis_client.zscore(EXPIRIES, str(receipt["id"])) == pytest.approx(float(record["expires"]))
    moment = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    code, receipt = post(api, "/v1/messages/sms", {**SMS, "expires_at": moment})
    assert code == 202 and redis_client.zscore(EXPIRIES, str(receipt["id"])) is not None
    for bad, field in (
        ({"ttl": "soon"}, "ttl"),
        ({"ttl": 30, "expires_at": moment}, "expires_at"),
        ({"lane": "express"}, "lane"),
    ):
        code, answer = post(api, "/v1/messages/sms", {**SMS, **bad})
        assert code == 422 and answer["error"]["field"] == field, answer  # type: ignore[index]
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert {"ttl", "expires_at", "lane"} <= set(schema["SmsSend"]["properties"])
    assert {"ttl", "expires_at", "lane"} <= set(schema["EmailCampaign"]["properties"])


def test_a_campaign_that_expires_counts_its_recipients_expired(
    api: TestClient, redis_client: redis.Redis
) -> None:
    recipients = [f"9665000001{i:02d}" for i in range(3)]
    code, receipt = post(
        api, "/v1/campaigns", {"channel": "sms", "to": recipients, "body": "news", "ttl": 60}
    )
    assert code == 202, receipt
    cid = str(receipt["id"])
    batch = campaign.batch_id(cid, 0)
    assert redis_client.hget(keys.msg_key(batch), "lane") == b"bulk"
    ledger = Ledger(redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30)
    ended, _, _ = ledger.expire_due(now=time.time() + 61)
    assert ended == [batch]
    summary = api.get(f"/v1/messages/{cid}", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert summary["status"] == "expired" and summary["recipient_counts"]["expired"] == 3
    assert summary["recipient_counts"]["pending"] == 0
    one = Hudhud(Settings(HUDHUD_REDIS_URL=ledger_url(redis_client))).recipient_status(cid, recipients[1])
    assert one["status"] == "expired" and one["error"] == EXPIRED_ERROR


def ledger_url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


def test_an_unsent_campaign_ends_as_its_batches_did() -> None:
    assert campaign.overall_status({"expired": 2}) == Status.EXPIRED
    assert campaign.overall_status({"suppressed": 1}) == Status.SUPPRESSED
    assert campaign.overall_status({"expired": 2, "failed": 1}) == Status.FAILED
    assert campaign.overall_status({"expired": 2, "sent": 1}) == Status.SENT


def test_the_python_api_takes_ttl_expires_at_and_lane(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = Settings(
        HUDHUD_REDIS_URL=redis_server.url, TAQNYAT_SENDER="HUDHUD", TAQNYAT_CALLER_ID="966500000001"
    )
    runtime.reset()
    hudhud = Hudhud(settings, app=create_app(settings))
    moment = datetime.now(UTC) + timedelta(minutes=3)
    by_ttl = hudhud.send_sms("966500000000", "code", ttl=45, lane="bulk")
    by_time = hudhud.send_voice("966500000000", "https://example.com/a.mp3", expires_at=moment)
    assert hudhud.status(by_ttl.id)["lane"] == "bulk"
    assert hudhud.status(by_time.id)["expires_at"] == iso(moment.timestamp())
    with pytest.raises(InvalidInput) as info:
        hudhud.send_email("a@example.com", "s", text="t", from_="b@example.com", ttl=-1)
    assert info.value.field == "ttl"


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--ttl", "ten", "ttl: must be a number of seconds"),
        ("--expires-at", "later", "expires_at: is not an ISO 8601 time"),
        ("--lane", "express", "lane: must be one of transactional, bulk"),
    ],
)
def test_the_cli_refuses_bad_values_naming_the_field(
    tmp_path: Path, option: str, value: str, words: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))}
    env.update({"TAQNYAT_SENDER": "HUDHUD", "HUDHUD_REDIS_URL": "redis://127.0.0.1:1/0"})
    done = run_cli(
        "send", "sms", "--to", "966500000000", "--body", "x", option, value, "--json", env=env, cwd=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["field"] == words.partition(":")[0] and answer["error"].startswith(words)


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.serial  # its figure is a time: ended within seconds of its expiry
def test_a_send_held_by_an_outage_ends_expired_at_its_expiry(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs={"outage": True}) as stack:
        wait_until(lambda: stack.ledger.pause_reason("taqnyat"), timeout=15)
        sent = stack.cli("send", "sms", "--to", "966500000000", "--body", "code 1", "--ttl", "2", "--json")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        by_cli = json.loads(sent.stdout)["id"]
        by_task = str(uuid.uuid4())
        stack.app.send_task("hudhud.send_sms", kwargs={**SMS, "ttl": 2}, task_id=by_task)
        wait_until(
            lambda: all(stack.ledger.is_in("held", m, "taqnyat") for m in (by_cli, by_task)), timeout=5
        )
        stack.wait_status([by_cli, by_task], {"expired"}, timeout=10)
        for mid in (by_cli, by_task):
            record = stack.ledger.get(mid)
            assert record is not None
            late = datetime.fromisoformat(record["updated_at"]) - datetime.fromisoformat(record["expires_at"])
            assert timedelta(0) <= late < timedelta(seconds=3), (mid, late)
            assert [e["type"] for e in record["events"]] == ["queued", "expired"]
            assert not stack.ledger.is_in("held", mid, "taqnyat")
        shown = stack.cli("status", by_cli, "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["status"] == "expired" and status["error"] == EXPIRED_ERROR and status["expires_at"]
        assert not stack.sandbox.sends()
