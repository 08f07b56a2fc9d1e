"""The change stream's consumer and `hudhud changes`, on a real redis-server.

Entries are written with XADD in the ledger's format, so that the consumer is proved apart
from the scripts that write them; the end-to-end cases read what a running stack recorded.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from hudhud.worker.ledger import keys
from hudhud.worker.ledger.changes import Change, ChangeConsumer, Round, dead_letters, follow, last
from hudhud.worker.ledger.status import Status
from tests.helpers import RedisServer, run_cli

OWN_PREFIXES = ("HUDHUD_", "TAQNYAT_", "TAIFA_", "FLOWER_")


def record(
    client: redis.Redis,
    message_id: str,
    status: str,
    previous: str = "",
    *,
    attempt: int = 0,
    error: str = "",
    **extra: str,
) -> str:
    """One change, as a ledger script writes it."""
    fields = {
        "id": message_id,
        "status": status,
        "previous": previous,
        "channel": "sms",
        "provider": "taqnyat",
        "lane": "transactional",
        "reference": "",
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "attempt": str(attempt),
        "error": error,
        **extra,
    }
    return entry_id(client.xadd(keys.CHANGES, fields))


def entry_id(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def lives(client: redis.Redis, count: int) -> list[str]:
    """`count` messages' queued -> sending -> sent, interleaved as many workers would write them."""
    entries = []
    for step, (status, previous) in enumerate(
        [(Status.QUEUED, ""), (Status.SENDING, Status.QUEUED), (Status.SENT, Status.SENDING)]
    ):
        for n in range(count):
            entries.append(record(client, f"m{n}", status, previous, attempt=1 if step else 0))
    return entries


def pending(client: redis.Redis, group: str) -> int:
    return int(client.xpending(keys.CHANGES, group)["pending"])


class Recorder:
    """A handler that keeps what it was given (and fails for the ids it is told to)."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.changes: list[Change] = []
        self.failing = failing
        self.calls = 0

    def __call__(self, change: Change) -> None:
        self.calls += 1
        if change.id in self.failing:
            raise RuntimeError("the receiving end is down")
        self.changes.append(change)

    @property
    def entries(self) -> list[str]:
        return [c.entry for c in self.changes]


def consumer(
    client: redis.Redis, handler: Any, name: str = "c1", group: str = "g", **kw: Any
) -> ChangeConsumer:
    return ChangeConsumer(client, group, name, handler, **{"start": "0", "block": 0, **kw})


# --- the change itself -----------------------------------------------------------------


def test_a_change_is_read_from_its_entry() -> None:
    fields = {
        b"id": b"m1",
        b"status": b"sending",
        b"previous": b"queued",
        b"channel": b"sms",
        b"provider": b"taqnyat",
        b"lane": b"transactional",
        b"reference": b"",
        b"at": b"2026-12-02T03:00:00.000Z",
        b"attempt": b"2",
        b"error": b"",
    }
    change = Change.from_entry(b"1-0", fields)
    assert change.status is Status.SENDING and change.previous is Status.QUEUED
    assert (change.entry, change.id, change.attempt, change.error, change.reference) == (
        "1-0",
        "m1",
        2,
        None,
        None,
    )
    assert change.as_dict()["previous"] == "queued" and "recipient" not in change.as_dict()
    assert "queued → sending" in change.line() and "attempt 2" in change.line()

    created = Change.from_entry("2-0", {**fields, b"status": b"queued", b"previous": b"", b"recipient": b"3"})
    assert created.previous is None and created.recipient == "3"
    assert created.as_dict()["recipient"] == "3" and "- → queued" in created.line()
    with pytest.raises(ValueError):
        Change.from_entry("3-0", {**fields, b"status": b"posted"})
    with pytest.raises(ValueError):
        Change.from_entry("4-0", {b"status": b"sent"})


def test_the_consumer_takes_its_limits_from_the_settings(redis_client: redis.Redis) -> None:
    from hudhud.config import Settings

    settings = Settings(
        HUDHUD_CHANGES_CLAIM_AFTER="0.5", HUDHUD_CHANGES_MAX_DELIVERIES="2", HUDHUD_CHANGES_MAXLEN="70"
    )
    made = ChangeConsumer.from_settings(redis_client, settings, "g", "c1", Recorder(), start="0")
    assert (made.claim_after, made.max_deliveries, made.dead_maxlen, made.start) == (0.5, 2, 70, "0")
    assert (Settings().changes_claim_after, Settings().changes_max_deliveries) == (60, 5)
    for name, value in (("HUDHUD_CHANGES_MAXLEN", "0"), ("HUDHUD_CHANGES_MAX_DELIVERIES", "0")):
        with pytest.raises(ValidationError):
            Settings(**{name: value})


# --- one consumer ------------------------------------------------------------------------


def test_a_consumer_reads_acks_and_gets_nothing_again(redis_client: redis.Redis) -> None:
    entries = lives(redis_client, 4)
    seen = Recorder()
    first = consumer(redis_client, seen, batch=100)

    done = first.run_once()
    assert (done.handled, done.failed, done.dead) == (12, 0, 0)
    assert seen.entries == entries  # in stream order
    assert pending(redis_client, "g") == 0

    assert first.run_once().handled == 0
    again = consumer(redis_client, seen, name="c2")  # another consumer of the same group
    assert again.run_once().handled == 0
    assert len(seen.changes) == 12


def test_a_consumer_reads_in_batches(redis_client: redis.Redis) -> None:
    entries = lives(redis_client, 5)
    seen = Recorder()
    reader = consumer(redis_client, seen, batch=4)
    sizes = [reader.run_once().handled for _ in range(5)]
    assert sizes == [4, 4, 4, 3, 0]
    assert seen.entries == entries


def test_a_group_started_at_dollar_sees_only_later_changes(redis_client: redis.Redis) -> None:
    record(redis_client, "old", Status.QUEUED)
    seen = Recorder()
    fresh = consumer(redis_client, seen, start="$")
    fresh.create_group()
    new = record(redis_client, "new", Status.QUEUED)
    assert fresh.run_once().handled == 1
    assert seen.entries == [new]


def test_a_group_is_made_again_when_the_stream_was_deleted(redis_client: redis.Redis) -> None:
    seen = Recorder()
    reader = consumer(redis_client, seen)
    record(redis_client, "m1", Status.QUEUED)
    assert reader.run_once().handled == 1
    redis_client.delete(keys.CHANGES)
    again = record(redis_client, "m2", Status.QUEUED)
    assert reader.run_once().handled == 1
    assert seen.entries[-1] == again


# --- many consumers, many groups -----------------------------------------------------


def test_two_consumers_of_one_group_share_the_changes_without_overlap(redis_client: redis.Redis) -> None:
    entries = lives(redis_client, 10)
    left, right = Recorder(), Recorder()
    a = consumer(redis_client, left, name="a", batch=4)
    b = consumer(redis_client, right, name="b", batch=4)
    while a.run_once().handled + b.run_once().handled:
        pass
    assert left.changes and right.changes
    assert not set(left.entries) & set(right.entries)
    assert sorted(left.entries + right.entries) == sorted(entries)
    assert pending(redis_client, "g") == 0


def test_two_groups_each_see_every_change(redis_client: redis.Redis) -> None:
    entries = lives(redis_client, 3)
    callbacks, metrics = Recorder(), Recorder()
    assert consumer(redis_client, callbacks, group="callbacks").run_once().handled == 9
    assert consumer(redis_client, metrics, group="metrics").run_once().handled == 9
    assert callbacks.entries == entries == metrics.entries


def test_a_running_consumer_stops_when_asked(redis_client: redis.Redis) -> None:
    seen = Recorder()
    reader = consumer(redis_client, seen, block=0.2)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    entry = record(redis_client, "m1", Status.QUEUED)
    deadline = time.monotonic() + 10
    while not seen.changes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.entries == [entry]
    reader.stop()
    thread.join(5)
    assert not thread.is_alive()


# --- failure: a dead consumer, a failing handler, an entry that is not a change -------------


def test_a_killed_consumers_batch_is_taken_over_after_claim_after(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    entries = lives(redis_client, 4)
    doomed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.change_consumer_proc",
            redis_server.url,
            "g",
            "doomed",
            "test:seen",
            "5",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        deadline = time.monotonic() + 60
        while redis_client.llen("test:seen") < 5 and time.monotonic() < deadline:
            assert doomed.poll() is None
            time.sleep(0.05)
        assert redis_client.llen("test:seen") == 5  # four handled, the fifth hangs: nothing acked yet
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    assert pending(redis_client, "g") == 12

    seen = Recorder()
    heir = consumer(redis_client, seen, name="heir", claim_after=5)
    assert heir.run_once().handled == 0  # its batch is not idle long enough yet
    deadline = time.monotonic() + 30
    while not seen.changes and time.monotonic() < deadline:
        time.sleep(0.5)
        heir.run_once()
    assert seen.entries == entries  # all twelve, in order, the unfinished batch included
    assert pending(redis_client, "g") == 0


def test_a_change_whose_handler_always_fails_is_dead_lettered(redis_client: redis.Redis) -> None:
    record(redis_client, "ok1", Status.QUEUED)
    poison = record(redis_client, "bad", Status.SENT, Status.SENDING, attempt=1, error="")
    record(redis_client, "ok2", Status.QUEUED)
    seen = Recorder(failing=frozenset({"bad"}))
    reader = consumer(redis_client, seen, claim_after=0.2, max_deliveries=3)

    first = reader.run_once()
    assert (first.handled, first.failed) == (2, 1)
    deadline = time.monotonic() + 30
    while not redis_client.xlen(keys.CHANGES_DEAD) and time.monotonic() < deadline:
        time.sleep(0.25)
        reader.run_once()
    assert seen.calls - 2 == 3  # tried max_deliveries times, not once more
    assert [c.id for c in seen.changes] == ["ok1", "ok2"]
    [letter] = dead_letters(redis_client)
    assert (letter["entry"], letter["id"], letter["group"], letter["status"]) == (poison, "bad", "g", "sent")
    assert letter["deliveries"] == "3" and letter["failure"] == "RuntimeError" and letter["reason"]
    assert pending(redis_client, "g") == 0

    time.sleep(0.3)
    calls = seen.calls
    assert reader.run_once() == Round()
    assert seen.calls == calls and redis_client.xlen(keys.CHANGES_DEAD) == 1


def test_an_entry_that_is_not_a_change_is_dead_lettered_at_once(redis_client: redis.Redis) -> None:
    odd = entry_id(redis_client.xadd(keys.CHANGES, {"id": "m1", "status": "posted", "to": "966500000001"}))
    good = record(redis_client, "m2", Status.QUEUED)
    seen = Recorder()
    done = consumer(redis_client, seen).run_once()
    assert (done.handled, done.dead) == (1, 1)
    assert seen.entries == [good]
    [letter] = dead_letters(redis_client)
    assert letter["entry"] == odd and letter["reason"] == "not a status change"
    assert "to" not in letter  # only the fields of a change are copied
    assert pending(redis_client, "g") == 0


def test_a_pending_change_trimmed_away_is_dropped(redis_client: redis.Redis) -> None:
    record(redis_client, "m1", Status.QUEUED)
    seen = Recorder(failing=frozenset({"m1"}))
    reader = consumer(redis_client, seen, claim_after=0.1)
    assert reader.run_once().failed == 1
    redis_client.xtrim(keys.CHANGES, maxlen=0)
    time.sleep(0.2)
    assert reader.run_once() == Round()
    assert pending(redis_client, "g") == 0 and redis_client.xlen(keys.CHANGES_DEAD) == 0


# --- plain reads and `hudhud changes` -----------------------------------------------------


def test_last_and_follow_read_without_a_group(redis_client: redis.Redis) -> None:
    entries = lives(redis_client, 2)
    assert [c.entry for c in last(redis_client, 4)] == entries[-4:]
    stop = threading.Event()
    later = record(redis_client, "m9", Status.QUEUED)
    feed = follow(redis_client, since=entries[-1], stop=stop, block=0.2)
    assert next(feed).entry == later
    stop.set()
    assert list(feed) == []
    assert not redis_client.xinfo_groups(keys.CHANGES)


def cli_env(redis_server: RedisServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    return {**env, "HUDHUD_REDIS_URL": redis_server.url, "PYTHONUNBUFFERED": "1"}


def hudhud(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, cwd=cwd, timeout=120)


def test_changes_prints_the_last_ones_and_those_since_an_id(
    redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = cli_env(redis_server)
    entries = lives(redis_client, 2)
    record(redis_client, "m0", Status.FAILED, Status.SENT, attempt=3, error="provider_rejected")

    run = hudhud("changes", "--json", "--last", "3", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["id"], r["previous"], r["status"]) for r in rows] == [
        ("m0", "sending", "sent"),
        ("m1", "sending", "sent"),
        ("m0", "sent", "failed"),
    ]
    assert rows[-1]["attempt"] == 3 and rows[-1]["error"] == "provider_rejected"

    run = hudhud("changes", "--since", entries[3], env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 3
    assert "m0" in lines[-1] and "sent → failed" in lines[-1] and "attempt 3 provider_rejected" in lines[-1]

    plain = hudhud("changes", env=env, cwd=tmp_path)
    assert len(plain.stdout.splitlines()) == 7

    bad = hudhud("changes", "--json", "--since", "yesterday", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and json.loads(bad.stdout)["field"] == "since"


def test_changes_says_when_redis_cannot_be_reached(tmp_path: Path, redis_server: RedisServer) -> None:
    env = {**cli_env(redis_server), "HUDHUD_REDIS_URL": "redis://127.0.0.1:1/0"}
    run = hudhud("changes", "--last", "5", env=env, cwd=tmp_path)
    assert run.returncode == 1
    assert "cannot reach Redis" in run.stderr and "Traceback" not in run.stderr


class Lines:
    """The lines a pipe gives, as they come (read by a thread of its own)."""

    def __init__(self, stream: Any) -> None:
        self.found: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.found.put(line)

    def next(self, timeout: float) -> str:
        return self.found.get(timeout=timeout)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.next(max(0.1, deadline - time.monotonic())):
            pass

    def rest(self) -> list[str]:
        """What is left once the pipe closed."""
        self.thread.join(10)
        return list(self.found.queue)


@pytest.fixture()
def following(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    record(redis_client, "before", Status.QUEUED)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.ops.cli", "changes", "--follow", "--json"],
        env=cli_env(redis_server),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_changes_follow_prints_the_live_feed_and_stops_cleanly(
    following: subprocess.Popen[str], redis_client: redis.Redis, sig: int
) -> None:
    errors, out = Lines(following.stderr), Lines(following.stdout)
    errors.wait_for("following", timeout=60)
    entry = record(redis_client, "after", Status.SENDING, Status.QUEUED, attempt=1)
    row = json.loads(out.next(timeout=30))
    assert (row["entry"], row["id"], row["status"]) == (entry, "after", "sending")  # not `before`
    following.send_signal(sig)
    assert following.wait(10) == 0
    assert out.rest() == [] and errors.rest() == []  # no traceback, nothing else printed


# --- written by the ledger ------------------------------------------------------------------


def test_a_consumer_behind_the_maxlen_reads_what_the_ledger_kept(redis_client: redis.Redis) -> None:
    from hudhud.config import Settings
    from hudhud.worker.ledger import NewMessage
    from hudhud.worker.runtime import make_ledger

    ledger = make_ledger(Settings(HUDHUD_CHANGES_MAXLEN=50), redis_client)
    seen = Recorder()
    reader = consumer(ledger, seen, batch=1000)
    reader.create_group()
    for n in range(400):
        payload = {"to": ["966500000001"], "body": "hello"}
        ledger.create(NewMessage(f"x{n}", "sms", "taqnyat", payload, request_hash="h"), now=time.time())
    kept = redis_client.xlen(keys.CHANGES)
    assert 50 <= kept <= 150  # MAXLEN ~ trims whole nodes of 100 entries
    assert reader.run_once().handled == kept
    assert seen.changes[-1].id == "x399" and {c.status for c in seen.changes} == {Status.QUEUED}
    assert pending(redis_client, "g") == 0


@pytest.mark.e2e
def test_changes_shows_a_sent_sms_whole(tmp_path: Path) -> None:
    from tests.stack import running_stack

    with running_stack(tmp_path) as stack:
        sms = stack.hudhud.send_sms(["966500000901"], "code 901")
        stack.wait_status([sms.id], {"sent"}, timeout=60)
        run = stack.cli("changes", "--json", "--last", "50")
        assert run.returncode == 0, run.stderr
        rows = [row for row in map(json.loads, run.stdout.splitlines()) if row["id"] == sms.id]
        assert [(r["previous"], r["status"]) for r in rows] == [
            (None, "queued"),
            ("queued", "sending"),
            ("sending", "sent"),
        ]
        assert {(r["channel"], r["provider"]) for r in rows} == {("sms", "taqnyat")}
        assert "966500000901" not in run.stdout and "code 901" not in run.stdout

        seen = Recorder()
        assert consumer(stack.ledger, seen, group="e2e").run_once().handled >= 3
        assert [c.status for c in seen.changes if c.id == sms.id] == [
            Status.QUEUED,
            Status.SENDING,
            Status.SENT,
        ]
