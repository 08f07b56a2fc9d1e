"""Email failover: the window of call outcomes, the move script, and the choice before a claim."""

from __future__ import annotations

import json

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.delivery import failover
from hudhud.worker.ledger import Ledger, NewMessage, Status, msg_key
from hudhud.worker.ledger.calls import failover_stats, move_or_refusal, recent_calls, record_call
from hudhud.worker.ledger.keys import events_key

BOTH = {
    "TAIFA_API_KEY": "k",
    "TAIFA_FROM": "taifa@example.com",
    "TAQNYAT_TOKEN": "t",
    "TAQNYAT_EMAIL_FROM": "taqnyat@example.com",
}


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def settings(**extra: object) -> Settings:
    return Settings(**{**BOTH, "HUDHUD_FAILOVER_MIN_CALLS": 4, **extra})  # type: ignore[arg-type]


def email(ledger: Ledger, mid: str, *, pinned: bool = False, sender: str = "taifa@example.com") -> str:
    payload = {"to": ["a@example.com"], "subject": "s", "text": "t", "from": sender}
    msg = NewMessage(
        id=mid, channel="email", provider="taifa", payload=payload, request_hash=mid, pinned=pinned
    )
    ledger.create(msg, now=1000.0)
    return mid


def events(ledger: Ledger, mid: str) -> list[dict[str, object]]:
    return [json.loads(e) for e in ledger.redis.lrange(events_key(mid), 0, -1) if e.startswith(b"{")]


def test_window_counts_recent_calls_only(ledger: Ledger) -> None:
    for _ in range(3):
        record_call(ledger, "taifa", ok=False, window=60, now=1000.0)
    record_call(ledger, "taifa", ok=True, window=60, now=1000.0)
    record_call(ledger, "taifa", ok=False, window=60, now=800.0)  # before the window
    calls = recent_calls(ledger, "taifa", window=60, now=1005.0)
    assert (calls.ok, calls.failed) == (1, 3)
    assert calls.failing(0.5, 4) and not calls.failing(0.5, 5) and not calls.failing(0.75, 4)
    assert recent_calls(ledger, "taqnyat", window=60, now=1005.0).total == 0


def test_move_script_moves_once_and_refuses(ledger: Ledger) -> None:
    mid = email(ledger, "f1")
    assert move_or_refusal(ledger, mid, "taqnyat", reason="paused", now=1001.0) == (True, "taifa")
    assert ledger.field(mid, "provider") == "taqnyat"
    assert events(ledger, mid)[-1] | {"at": ""} == {
        "type": "failover",
        "at": "",
        "from": "taifa",
        "to": "taqnyat",
        "reason": "paused",
    }
    assert failover_stats(ledger) == {"taifa>taqnyat:paused": 1}
    assert move_or_refusal(ledger, mid, "taifa", reason="paused", now=1002.0) == (False, "moved")
    pinned = email(ledger, "f2", pinned=True)
    assert move_or_refusal(ledger, pinned, "taqnyat", reason="paused", now=1.0) == (False, "pinned")
    doubt = email(ledger, "f3")
    ledger.flag(doubt, in_doubt="1")
    assert move_or_refusal(ledger, doubt, "taqnyat", reason="paused", now=1.0) == (False, "in_doubt")
    sending = email(ledger, "f4")
    ledger.flag(sending, status=Status.SENDING)
    assert move_or_refusal(ledger, sending, "taqnyat", reason="paused", now=1.0) == (False, "status")
    tried = email(ledger, "f5")
    ledger.flag(tried, attempts="2")
    assert move_or_refusal(ledger, tried, "taqnyat", reason="paused", now=1.0) == (False, "tried")
    assert move_or_refusal(ledger, tried, "taqnyat", reason="retries spent", now=1.0, afresh=True) == (
        True,
        "taifa",
    )
    assert ledger.field(tried, "attempts") == "0"
    assert ledger.field(pinned, "provider") == ledger.field(doubt, "provider") == "taifa"


def test_new_email_avoids_a_paused_provider(ledger: Ledger) -> None:
    mid = email(ledger, "p1")
    other = email(ledger, "p2", sender="me@example.com")
    pinned = email(ledger, "p3", pinned=True)
    assert failover.before_claim(ledger, mid, "taifa", settings()) == "taifa"  # not paused yet
    ledger.pause("taifa", {"kind": "outage", "error": "maintenance"})
    assert failover.before_claim(ledger, mid, "taifa", settings()) == "taqnyat"
    assert json.loads(ledger.field(mid, "payload") or "{}")["from"] == "taqnyat@example.com"
    assert events(ledger, mid)[-1]["reason"] == "outage"
    assert failover.before_claim(ledger, other, "taifa", settings()) == "taqnyat"
    assert json.loads(ledger.field(other, "payload") or "{}")["from"] == "me@example.com"  # given: kept
    assert failover.before_claim(ledger, pinned, "taifa", settings()) == "taifa"
    assert (
        failover.before_claim(ledger, email(ledger, "p4"), "taifa", settings(HUDHUD_EMAIL_FAILOVER=False))
        == "taifa"
    )
    lone = Settings(TAIFA_API_KEY="k", TAIFA_FROM="taifa@example.com")  # type: ignore[call-arg]
    assert failover.before_claim(ledger, email(ledger, "p5"), "taifa", lone) == "taifa"


def test_new_email_avoids_a_failing_provider(ledger: Ledger) -> None:
    mid = email(ledger, "q1")
    for ok in (True, False, False, False):
        record_call(ledger, "taifa", ok=ok, window=300)
    assert failover.before_claim(ledger, mid, "taifa", settings()) == "taqnyat"
    assert events(ledger, mid)[-1]["reason"] == "failures"
    assert ledger.redis.hget(msg_key(mid), "moved_from") == b"taifa"
