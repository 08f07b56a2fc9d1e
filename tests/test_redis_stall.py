"""A Redis that stalls for longer than the client's socket timeout (SIGSTOP, then SIGCONT).

redis-py times out, sends the same script again on a new connection, and Redis runs both
copies once it resumes. Each ledger script recognizes its own earlier run, so the repeated
call answers as the first one did: a fresh send is not taken for a duplicate, a claim is not
refused to its own caller, an outcome is not taken for a late one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from hudhud.worker.ledger import Ledger, NewMessage
from tests.helpers import RedisServer

STALL = 1.5  # seconds Redis is stopped
TIMEOUT = 0.5  # the client's socket timeout: shorter than the stall


@pytest.fixture()
def stalling(tmp_path: Path) -> Iterator[tuple[RedisServer, Ledger]]:
    server = RedisServer(tmp_path / "redis").start()
    client = redis.Redis.from_url(
        server.url,
        socket_timeout=TIMEOUT,
        retry_on_timeout=True,
        retry=Retry(ConstantBackoff(0.05), 3),
    )
    ledger = Ledger(client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30)
    ledger.create(new("warm-up"), now=time.time())  # scripts loaded before the stall
    yield server, ledger
    client.close()
    server.stop()


def new(mid: str, key: str | None = None) -> NewMessage:
    return NewMessage(
        id=mid, channel="sms", provider="taqnyat", payload={"to": ["966500000000"]}, request_hash="h", key=key
    )


def stall(server: RedisServer) -> threading.Thread:
    """Stop redis-server now and let it go on after STALL seconds."""
    assert server.proc is not None
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)

    def resume() -> None:
        time.sleep(STALL)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=resume)
    thread.start()
    return thread


def test_a_create_sent_twice_by_the_client_is_still_created(stalling: tuple[RedisServer, Ledger]) -> None:
    server, ledger = stalling
    thread = stall(server)
    created = ledger.create(new("fresh", key="k-fresh"), now=time.time())
    thread.join()
    assert created.outcome == "created", "the repeated call found its own first run"
    assert ledger.create(new("other", key="k-fresh"), now=time.time()).outcome == "duplicate"


def test_a_claim_sent_twice_is_still_the_callers(stalling: tuple[RedisServer, Ledger]) -> None:
    server, ledger = stalling
    ledger.create(new("c1"), now=time.time())
    thread = stall(server)
    claim = ledger.claim("c1", "taqnyat", now=time.time())
    thread.join()
    assert claim.outcome == "claimed" and claim.attempts == 1
    assert ledger.get("c1")["attempts"] == "1"  # type: ignore[index]


def test_an_outcome_sent_twice_is_recorded_once(stalling: tuple[RedisServer, Ledger]) -> None:
    server, ledger = stalling
    ledger.create(new("t1"), now=time.time())
    claim = ledger.claim("t1", "taqnyat", now=time.time())
    thread = stall(server)
    outcome, _previous = ledger.transition(
        "t1", to="sent", expect="sending", now=time.time(), token=claim.attempts, provider="taqnyat"
    )
    thread.join()
    assert outcome == "ok", "not taken for a late result of another claim"
    record = ledger.get("t1")
    assert record is not None and record["status"] == "sent"
    assert [e["type"] for e in record["events"]].count("sent") == 1


# The same, deterministically: the very same call (same op token) run twice, as Redis does
# when redis-py sent it again.


@pytest.fixture()
def replaying(stalling: tuple[RedisServer, Ledger], monkeypatch: pytest.MonkeyPatch) -> Ledger:
    import hudhud.worker.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "op_token", lambda: "one-call")
    return stalling[1]


def test_create_run_twice_answers_created_both_times(replaying: Ledger) -> None:
    now = time.time()
    first = replaying.create(new("r1", key="k-r1"), now=now)
    again = replaying.create(new("r1", key="k-r1"), now=now)
    assert (first.outcome, again.outcome) == ("created", "created")
    assert [e["type"] for e in replaying.get("r1")["events"]] == ["queued"]  # type: ignore[index]


def test_claim_run_twice_answers_claimed_both_times(replaying: Ledger) -> None:
    replaying.create(new("r2"), now=time.time())
    first = replaying.claim("r2", "taqnyat", now=time.time())
    again = replaying.claim("r2", "taqnyat", now=time.time())
    assert (first.outcome, again.outcome) == ("claimed", "claimed")
    assert again.attempts == first.attempts == 1


def test_transition_run_twice_answers_ok_both_times(replaying: Ledger) -> None:
    replaying.create(new("r3"), now=time.time())
    claim = replaying.claim("r3", "taqnyat", now=time.time())
    replies = [
        replaying.transition("r3", to="sent", expect="sending", now=time.time(), token=claim.attempts)
        for _ in range(2)
    ]
    assert [r[0] for r in replies] == ["ok", "ok"]
    record = replaying.get("r3")
    assert record is not None and record.get("in_doubt") != "1"


def test_create_many_run_twice_pushes_each_task_once(replaying: Ledger) -> None:
    messages = [new(f"b{i}") for i in range(3)]
    tasks = [("sms-test", f"task-{i}") for i in range(3)]
    for _ in range(2):
        created = replaying.create_many(messages, now=time.time(), tasks=tasks)
        assert [c.outcome for c in created] == ["created"] * 3
    assert replaying.redis.llen("sms-test") == 3
