"""The ledger against a real redis-server: records, idempotency, claims, transitions, beat moves."""

from __future__ import annotations

import time

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.jobs import Jobs
from hudhud.worker.ledger import QUEUED, SCHEDULED, Ledger, NewMessage, held_key, msg_key
from hudhud.worker.ledger.keys import follow_lock_key
from hudhud.worker.producer import campaign
from hudhud.worker.providers.taifa import TaifaClient
from tests.helpers import Sandbox
from tests.stack import wait_until


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def new(
    mid: str = "m1",
    *,
    key: str | None = None,
    hash_: str = "h1",
    due: float | None = None,
    provider: str = "taqnyat",
) -> NewMessage:
    return NewMessage(
        id=mid,
        channel="sms",
        provider=provider,
        payload={"to": ["966500000000"]},
        request_hash=hash_,
        key=key,
        due=due,
    )


def test_create_records_a_queued_message_with_its_history(ledger: Ledger) -> None:
    created = ledger.create(new(), now=time.time())
    assert (created.outcome, created.status) == ("created", "queued")
    record = ledger.get("m1")
    assert record is not None
    assert record["status"] == "queued" and record["attempts"] == "0"
    assert [e["type"] for e in record["events"]] == ["queued"]
    assert ledger.redis.zscore(QUEUED, "m1") is not None


def test_same_key_and_request_returns_the_first_id(ledger: Ledger) -> None:
    now = time.time()
    first = ledger.create(new("a", key="k"), now=now)
    again = ledger.create(new("b", key="k"), now=now)
    assert first.outcome == "created"
    assert (again.outcome, again.id) == ("duplicate", "a")
    assert ledger.get("b") is None


def test_same_key_with_another_request_is_a_conflict(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("a", key="k"), now=now)
    other = ledger.create(new("b", key="k", hash_="different"), now=now)
    assert (other.outcome, other.id) == ("conflict", "a")
    assert ledger.get("b") is None


def test_idempotency_key_is_kept_a_day(ledger: Ledger) -> None:
    ledger.create(new("a", key="k"), now=time.time())
    assert ledger.redis.ttl("hudhud:idem:k") > 86000


def test_far_schedule_is_parked_and_near_schedule_waits_as_eta(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("far", due=now + 3600), now=now)
    ledger.create(new("near", due=now + 10), now=now)
    assert ledger.redis.zscore(SCHEDULED, "far") == pytest.approx(now + 3600)
    assert ledger.redis.zscore(QUEUED, "near") == pytest.approx(now + 10)
    assert ledger.get("far")["status"] == "scheduled"  # type: ignore[index]


def test_only_one_claim_wins(ledger: Ledger) -> None:
    ledger.create(new(), now=time.time())
    first = ledger.claim("m1", "taqnyat", now=time.time())
    second = ledger.claim("m1", "taqnyat", now=time.time())
    assert first.outcome == "claimed" and first.attempts == 1
    assert first.payload == {"to": ["966500000000"]}
    assert (second.outcome, second.status) == ("skip", "sending")


def test_claim_while_provider_paused_holds_the_message(ledger: Ledger) -> None:
    ledger.create(new(), now=time.time())
    ledger.pause("taqnyat", {"kind": "balance"})
    claim = ledger.claim("m1", "taqnyat", now=time.time())
    assert claim.outcome == "held"
    assert ledger.held_count("taqnyat") == 1
    assert ledger.get("m1")["status"] == "queued"  # type: ignore[index]
    ledger.resume("taqnyat")
    released = ledger.release_held(held_key("taqnyat"), now=time.time()).items
    assert [r[0] for r in released] == ["m1"]
    assert ledger.claim("m1", "taqnyat", now=time.time()).outcome == "claimed"


def test_rate_limit_makes_the_next_claim_wait(ledger: Ledger) -> None:
    now = time.time()
    for mid in ("a", "b"):
        ledger.create(new(mid), now=now)
    assert ledger.claim("a", "taqnyat", now=now, rate=1.0, burst=1.0).outcome == "claimed"
    waiting = ledger.claim("b", "taqnyat", now=now, rate=1.0, burst=1.0)
    assert waiting.outcome == "wait" and 0.9 < waiting.wait < 1.01
    assert ledger.claim("b", "taqnyat", now=now + 1.01, rate=1.0, burst=1.0).outcome == "claimed"


def test_transition_needs_the_current_claim_token(ledger: Ledger) -> None:
    ledger.create(new(), now=time.time())
    claim = ledger.claim("m1", "taqnyat", now=time.time())
    stale, _ = ledger.transition("m1", to="sent", expect="sending", now=time.time(), token=claim.attempts + 1)
    assert stale == "stale"
    ok, previous = ledger.transition(
        "m1",
        to="sent",
        expect="sending",
        now=time.time(),
        token=claim.attempts,
        fields={"provider_message_id": "99"},
    )
    assert (ok, previous) == ("ok", "sending")
    record = ledger.get("m1")
    assert record is not None and record["provider_message_id"] == "99"
    assert ledger.redis.ttl(msg_key("m1")) > 0, "a final record expires after the retention period"


def test_cancel_works_while_scheduled_or_queued_but_not_after(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("s", due=now + 3600), now=now)
    ledger.create(new("q"), now=now)
    ledger.create(new("x"), now=now)
    ledger.claim("x", "taqnyat", now=now)
    assert ledger.cancel("s", now=now)[0] == "ok"
    assert ledger.cancel("q", now=now)[0] == "ok"
    assert ledger.cancel("x", now=now) == ("stale", "sending")
    assert ledger.redis.zscore(SCHEDULED, "s") is None
    assert ledger.claim("q", "taqnyat", now=now).outcome == "skip"


def test_release_due_moves_only_due_messages(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("soon", due=now + 100), now=now)
    ledger.create(new("later", due=now + 5000), now=now)
    released = ledger.release_due(until=now + 200, now=now).items
    assert [(r[0], r[1], r[2]) for r in released] == [("soon", "sms", "taqnyat")]
    assert ledger.get("soon")["status"] == "queued"  # type: ignore[index]
    assert ledger.release_due(until=now + 200, now=now).items == []


def test_expired_lease_is_recovered_once(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new(), now=now)
    ledger.claim("m1", "taqnyat", now=now)
    assert ledger.expired_leases(now=now + 5).items == []
    assert ledger.expired_leases(now=now + 31).items == [("m1", "taqnyat", "1", "sms", "transactional")]
    assert ledger.expired_leases(now=now + 32).items == [], "the lease was extended for the recoverer"


def test_stale_queued_messages_are_requeued(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new(), now=now - 1000)
    assert ledger.requeue_stale(older_than=now - 300, now=now).items == [
        ("m1", "sms", "taqnyat", "transactional")
    ]
    assert ledger.requeue_stale(older_than=now - 300, now=now).items == []


def test_a_message_behind_a_backlog_is_not_enqueued_twice_until_long_overdue(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new(), now=now - 1000)
    ledger.redis.lpush("sms", "a task still waiting in the broker queue")
    assert ledger.requeue_stale(older_than=now - 300, now=now, hard_limit=now - 3000).items == []
    assert ledger.requeue_stale(older_than=now - 300, now=now, hard_limit=now - 900).items == [
        ("m1", "sms", "taqnyat", "transactional")
    ], "overdue past the hard limit: enqueued again even behind a backlog"
    ledger.redis.delete("sms")
    later = now + 400
    assert ledger.requeue_stale(older_than=later - 300, now=later, hard_limit=later - 3000).items == [
        ("m1", "sms", "taqnyat", "transactional")
    ], "the queue drained: enqueued again"


def test_record_failure_keeps_no_payload(ledger: Ledger) -> None:
    ledger.record_failure("bad", "sms", "to[0]: must be 8 to 15 digits", now=time.time())
    record = ledger.get("bad")
    assert record is not None
    assert record["status"] == "failed" and record["payload"] == "{}"
    assert record["error"].startswith("to[0]")


def test_taifa_events_poll_runs_one_at_a_time(ledger: Ledger, fresh_sandbox: Sandbox) -> None:
    settings = Settings(**fresh_sandbox.env())
    jobs = Jobs(ledger, settings, create_app(settings), lambda name: TaifaClient.from_settings(settings))
    ledger.create(new("t1"), now=time.time())
    ledger.redis.zadd("hudhud:tracking", {"t1": time.time()})
    events_lock = follow_lock_key("taifa")
    ledger.redis.set(events_lock, "another poller")
    assert jobs.follow_deliveries() == 0 and ledger.redis.zcard("hudhud:tracking") == 1, "left to the other"
    ledger.redis.delete(events_lock)
    assert jobs.follow_deliveries() == 0
    assert ledger.redis.zcard("hudhud:tracking") == 0, "not a sent email: no longer tracked"
    assert not ledger.redis.exists(events_lock), "the lock is released"


def test_taifa_updates_feed_finishes_single_emails_outside_the_poll_by_id(
    ledger: Ledger, fresh_sandbox: Sandbox
) -> None:
    """However many emails wait, Taifa's feed of changes finds those whose fate is known: these
    two are not in the poll-by-id window at all, and still end delivered and bounced."""
    fresh_sandbox.knobs(progress_seconds=0.1)
    settings = Settings(**fresh_sandbox.env())
    client = TaifaClient.from_settings(settings)
    jobs = Jobs(ledger, settings, create_app(settings), lambda name: client)
    now = time.time()
    for mid, to in (("e-ok", "fine@example.com"), ("e-bounce", "bounce-7@example.com")):
        email_id = client.send("hudhud@example.com", to, "feed", text="x").provider_message_id
        assert email_id
        ledger.create(NewMessage(mid, "email", "taifa", {}, "h"), now=now)
        claim = ledger.claim(mid, "taifa", now=now, rate=0.0, burst=1.0)
        fields = {"provider_message_id": email_id}
        ledger.transition(mid, to="sent", expect="sending", now=now, token=claim.attempts, fields=fields)
        campaign.follow_recipients(ledger, mid, {"": email_id}, provider="taifa", now=now, keep_seconds=3600)
    assert ledger.redis.zcard("hudhud:tracking") == 0

    def finished() -> bool:
        jobs.follow_deliveries()
        return ledger.status_of(["e-ok", "e-bounce"]) == ["delivered", "bounced"]

    wait_until(finished, timeout=20, interval=0.3)
    bounced = ledger.get("e-bounce")
    assert bounced is not None and bounced["error"].startswith("taifa: bounced: 550 5.1.1")
    assert [e["type"] for e in bounced["events"] if e.get("via") == "taifa events"] == ["bounced"]
    assert ledger.redis.get("hudhud:taifa:updates-since") is not None
    assert not ledger.redis.keys("hudhud:taifa:id:*"), "nothing left to follow"


def test_beat_reports_queue_entries_whose_record_is_gone(
    ledger: Ledger, fresh_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An evicting or unpersisted Redis can drop a record and keep its index entry: beat says
    so (log and `hudhud check`) instead of skipping it in silence."""
    settings = Settings(**fresh_sandbox.env(), HUDHUD_REDIS_URL=redis_url(ledger))
    jobs = Jobs(ledger, settings, create_app(settings), lambda name: None)
    now = time.time()
    ledger.create(new("due-soon", due=now + 1), now=now - 100)
    ledger.create(new("waiting"), now=now - 1000)
    ledger.redis.zadd(SCHEDULED, {"due-soon": now - 1})
    ledger.redis.delete(msg_key("due-soon"), msg_key("waiting"))
    with caplog.at_level("ERROR", logger="hudhud.jobs"):
        assert jobs.release_due() == 0
        assert jobs.requeue_stale() == 0
    assert "have no record any more" in caplog.text and "due-soon" in caplog.text
    assert set(ledger.gone()) == {"due-soon", "waiting"}
    assert ledger.redis.ttl("hudhud:gone") > 0

    from hudhud.worker import runtime
    from hudhud.worker.ops.check import run_checks

    runtime.reset()
    report = run_checks(settings)
    assert any("lost their record" in p for p in report["problems"]), report["problems"]


def redis_url(ledger: Ledger) -> str:
    kwargs = ledger.redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"
