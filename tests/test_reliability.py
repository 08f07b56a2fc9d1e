"""Reliability under faults, end to end: scheduled sends beyond the broker's visibility timeout
survive worker kills and go out once and on time; SIGTERM lets a worker finish its calls and
hand back what it holds.

Each test runs its own redis-server, sandbox, `hudhud worker` processes (and `hudhud beat`),
and judges the outcome from the sandbox's record of accepted sends: one entry per provider
call, counted per recipient."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from hudhud.worker.ledger import Ledger, NewMessage
from hudhud.worker.runtime import park_after
from tests.stack import Stack, idle_stack, wait_until

pytestmark = pytest.mark.e2e

VISIBILITY_TIMEOUT = 10
REQUEUE_AFTER = 5
RECOVER_INTERVAL = 1.0
# Lateness bounds, in seconds after the due time. Beat releases a parked message `park_after`
# seconds early as an ETA task, so the release interval adds nothing: the ETA fires on time and
# only one claim and one provider call follow. An ETA task held by a worker that is killed
# comes back through `requeue_stale` once it is HUDHUD_REQUEUE_AFTER overdue (at the next
# recover interval); the broker's own redelivery waits for the visibility timeout and kombu's
# sweep (every few seconds), so HUDHUD_REQUEUE_AFTER is what governs that lateness.
ON_TIME = 2.0
RECOVERED = REQUEUE_AFTER + RECOVER_INTERVAL + 3.0
SOFT_SHUTDOWN_WINDOW = 30.0  # worker_soft_shutdown_timeout


@dataclass
class Planned:
    id: str
    recipient: str
    due: float


def make_stack(workdir: Path, env: dict[str, str], knobs: Mapping[str, object]) -> Iterator[Stack]:
    with idle_stack(workdir, extra_env=env, knobs=knobs) as stack:
        yield stack


@pytest.fixture()
def eta_stack(tmp_path: Path) -> Iterator[Stack]:
    env = {
        "HUDHUD_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "HUDHUD_ETA_WINDOW": "60",  # asks for more than half the visibility timeout
        "HUDHUD_REQUEUE_AFTER": str(REQUEUE_AFTER),
        "HUDHUD_RECOVER_INTERVAL": str(RECOVER_INTERVAL),
    }
    # Taifa emails stay `sent` for the whole test (no delivered event yet).
    yield from make_stack(tmp_path, env, {"progress_seconds": 600})


@pytest.fixture()
def shutdown_stack(tmp_path: Path) -> Iterator[Stack]:
    env = {"HUDHUD_ETA_WINDOW": "30", "HUDHUD_HTTP_READ_TIMEOUT": "10"}
    knobs = {"progress_seconds": 600, "latency_ms": 1000, "latency_jitter_ms": 1000}
    yield from make_stack(tmp_path, env, knobs)


# --- sending and reading --------------------------------------------------------------
def moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 3), UTC)


def epoch_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def send(stack: Stack, index: int, due: float | None) -> Planned:
    """Message number `index`: SMS, Taqnyat email or Taifa email, to a recipient of its own."""
    at = moment(due) if due is not None else None
    kind = index % 4
    if kind in (0, 1):
        to = f"9665{index:08d}"
        receipt = stack.hudhud.send_sms([to], f"reliability {index}", at=at)
    else:
        to = f"reliability{index}@example.com"
        provider = "taqnyat" if kind == 2 else "taifa"
        receipt = stack.hudhud.send_email(
            [to], f"reliability {index}", text="hello", provider=provider, at=at
        )
    return Planned(receipt.id, to, at.timestamp() if at else 0.0)


def sends_by_recipient(stack: Stack) -> tuple[Counter[str], dict[str, float]]:
    """How many accepted provider calls each recipient got, and when the first was accepted."""
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    for entry in stack.sandbox.sends():
        for recipient in entry.get("recipients") or []:  # type: ignore[attr-defined]
            counts[str(recipient)] += 1
            first.setdefault(str(recipient), epoch_of(str(entry["accepted_at"])))
    return counts, first


def records(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {i: stack.ledger.get(i) or {} for i in ids}


def held_eta_tasks(stack: Stack, names: list[str]) -> dict[str, list[tuple[str, float]]]:
    """The deliver tasks each named worker holds in memory for later: (message id, eta)."""
    replies = stack.app.control.inspect(timeout=3.0, limit=len(names)).scheduled() or {}
    held: dict[str, list[tuple[str, float]]] = {name: [] for name in names}
    for node, entries in replies.items():
        name = node.split("@", 1)[0]
        for entry in entries or []:
            request = entry["request"]
            if request.get("name") == "hudhud.deliver" and name in held:
                held[name].append((str(request["args"][0]), epoch_of(entry["eta"])))
    return held


def broker_tasks(stack: Stack) -> Counter[str]:
    """Message ids of the deliver tasks waiting in the broker's channel queues."""
    found: Counter[str] = Counter()
    for key in stack.redis.scan_iter(match="*"):
        name = key.decode(errors="replace")
        if name.split("\x06\x16", 1)[0] not in ("sms", "email", "voice"):
            continue
        if stack.redis.type(key) != b"list":
            continue
        for raw in stack.redis.lrange(key, 0, -1):
            message = json.loads(raw)
            if message["headers"].get("task") != "hudhud.deliver":
                continue
            body = base64.b64decode(message["body"])
            args = json.loads(body)[0]
            found[str(args[0])] += 1
    return found


# --- the ledger's part ----------------------------------------------------------------
def near_term(ledger: Ledger, now: float) -> str:
    """A message due in 3 s: recorded `scheduled`, waiting as an ETA task (zset `queued`)."""
    message = NewMessage(
        id="near",
        channel="sms",
        provider="taqnyat",
        payload={"to": ["966500000000"], "body": "x", "sender": "HUDHUD"},
        request_hash="h",
        due=now + 3,
    )
    ledger.create(message, now=now)
    return message.id


def small_ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(redis_client, retention_seconds=3600, idempotency_ttl=3600, lease_seconds=30, park_after=5)


def test_a_lost_eta_task_of_a_message_due_soon_is_enqueued_again_once_overdue(
    redis_client: redis.Redis,
) -> None:
    ledger = small_ledger(redis_client)
    now = time.time()
    message_id = near_term(ledger, now)
    assert ledger.status_of([message_id]) == ["scheduled"]
    assert ledger.requeue_stale(older_than=now - 5, now=now).items == [], "not due yet"
    later = now + 3 + 6
    found = ledger.requeue_stale(older_than=later - 5, now=later).items
    assert found == [(message_id, "sms", "taqnyat", "transactional")]
    assert ledger.requeue_stale(older_than=later - 5, now=later).items == [], "again only after another wait"
    assert ledger.claim(message_id, "taqnyat", now=later).outcome == "claimed"


def test_a_message_is_never_claimed_before_its_due_time(redis_client: redis.Redis) -> None:
    ledger = small_ledger(redis_client)
    now = time.time()
    message_id = near_term(ledger, now)
    early = ledger.claim(message_id, "taqnyat", now=now + 2.996)
    assert early.outcome == "wait" and early.wait == pytest.approx(0.004, abs=1e-3)
    assert ledger.status_of([message_id]) == ["scheduled"]
    assert ledger.claim(message_id, "taqnyat", now=now + 3).outcome == "claimed"


# --- the ETA trap ---------------------------------------------------------------------
KILLS = (14.0, 24.0)  # seconds after the first send
QUIET = (-1.0, 2.5)  # no message is due this close to a kill, so no provider call is in flight
BURST = (2.6, 2.9, 3.2, 3.5, 3.8, 3.9)  # sent a second before a kill: straight to ETA tasks


def parked_offsets() -> list[float]:
    offsets = [9.0 + 0.5 * i for i in range(47)]  # 9 s .. 32 s: beyond the visibility timeout
    return [o for o in offsets if not any(k + QUIET[0] <= o <= k + QUIET[1] for k in KILLS)]


@dataclass
class Kill:
    victim: str
    at: float
    held: list[tuple[str, float]]
    restart_seconds: float


def kill_the_fuller_worker(stack: Stack, workers: list[str], at: float, park: float, number: int) -> Kill:
    """SIGKILL the worker that holds more ETA tasks at `at` (epoch), then start a replacement."""
    held = held_eta_tasks(stack, workers)
    now = time.time()
    for name, tasks in held.items():
        latest = max((eta for _, eta in tasks), default=now)
        assert latest - now <= park + 1.0 < VISIBILITY_TIMEOUT, (
            f"{name} holds an ETA task due in {latest - now:.1f}s, beyond half the visibility timeout"
        )
    victim = max(workers, key=lambda name: len(held[name]))
    wait_until(lambda: stack.ledger.counts()["sending"] == 0, timeout=5, interval=0.05)
    if at > time.time():
        time.sleep(at - time.time())
    stack.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    replacement = f"{victim.split('r', 1)[0]}r{number}"
    workers[workers.index(victim)] = replacement
    stack.start_worker(replacement, concurrency=20)
    return Kill(victim, killed_at, held[victim], time.time() - killed_at)


def sweep_unacked(stack: Stack) -> int:
    """What a worker's periodic sweep does (every 5 s in hudhud): hand the tasks
    left unacknowledged longer than the visibility timeout back to their queues. Returns how
    many deliver tasks it handed back."""
    cutoff = time.time() - VISIBILITY_TIMEOUT
    tags: Any = stack.redis.zrangebyscore("unacked_index", "-inf", cutoff)
    stale = 0
    for raw in stack.redis.hmget("unacked", tags) if tags else []:
        if raw is not None and json.loads(raw)[0]["headers"].get("task") == "hudhud.deliver":
            stale += 1
    with stack.app.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=10000, interval=1)
    return stale


def skipped(stack: Stack, workers: list[str]) -> int:
    """Deliver tasks that found their message already claimed or done."""
    return sum(stack.log(name).read_text(errors="replace").count(": 'skip: message ") for name in workers)


def test_scheduled_messages_beyond_the_visibility_timeout_go_out_once_on_time_despite_worker_kills(
    eta_stack: Stack,
) -> None:
    """Two workers and beat with a 10 s visibility timeout. Messages due 1.5 s to 32 s ahead
    (most beyond the visibility timeout, so parked in Redis; some near-term ones straight to
    ETA tasks); twice a worker holding ETA tasks is SIGKILLed and replaced; finally the broker
    hands the killed workers' unacknowledged tasks out again. Each message reaches the
    provider once, never early, within ON_TIME of its due time, or within RECOVERED when it
    was due right after a kill."""
    stack = eta_stack
    park = park_after(stack.settings)
    assert park == VISIBILITY_TIMEOUT // 2, "the ETA window is capped at half the visibility timeout"
    workers = ["w1", "w2"]
    for name in workers:
        stack.start_worker(name, concurrency=20)
    stack.start_beat()
    stack.wait_log("beat", "beat: Starting", timeout=60)

    t0 = time.time()
    offsets = [1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, *parked_offsets()]
    planned = [send(stack, index, t0 + offset) for index, offset in enumerate(offsets)]
    assert Counter(stack.ledger.status_of([p.id for p in planned])) == {"scheduled": len(planned)}
    assert stack.ledger.counts()["scheduled"] == len(planned) - 7, "due beyond the ETA window: parked"

    kills: list[Kill] = []
    for number, offset in enumerate(KILLS, start=1):
        at = t0 + offset
        if at - 1.0 > time.time():
            time.sleep(at - 1.0 - time.time())
        first = len(planned)
        planned += [send(stack, first + j, at + b) for j, b in enumerate(BURST)]
        time.sleep(0.3)
        kills.append(kill_the_fuller_worker(stack, workers, at, park, number))

    ids = [p.id for p in planned]
    stack.wait_status(ids, {"sent"}, timeout=90)
    every_worker = ["w1", "w2", *(f"{k.victim.split('r', 1)[0]}r{n}" for n, k in enumerate(kills, 1))]
    if kills[-1].at + VISIBILITY_TIMEOUT + 0.5 > time.time():
        time.sleep(kills[-1].at + VISIBILITY_TIMEOUT + 0.5 - time.time())
    redelivered = sweep_unacked(stack)
    # a surviving worker's own sweep (every 5 s) may have handed the killed workers' tasks back
    # before this one: either way they came back, and found their messages sent
    wait_until(lambda: skipped(stack, every_worker) >= max(1, redelivered), timeout=30)
    time.sleep(2)  # room for a late duplicate to show up

    counts, first_accepted = sends_by_recipient(stack)
    assert set(counts) == {p.recipient for p in planned}
    duplicated = {r: n for r, n in counts.items() if n != 1}
    assert not duplicated, f"sent more than once: {duplicated}"
    final = records(stack, ids)
    assert {r["status"] for r in final.values()} == {"sent"}
    assert [int(r["attempts"]) for r in final.values()] == [1] * len(ids), "one claim per message"
    assert not [i for i, r in final.items() if r.get("in_doubt")]
    for kill in kills:
        assert kill.held, f"{kill.victim} held no ETA task when it was killed"

    lateness = {p.id: first_accepted[p.recipient] - p.due for p in planned}
    early = {i: round(v, 3) for i, v in lateness.items() if v < 0}
    assert not early, f"handed to the provider before its due time: {early}"

    def near_a_kill(p: Planned) -> bool:
        return any(k.at < p.due <= k.at + park + 1.0 for k in kills)

    on_time = [lateness[p.id] for p in planned if not near_a_kill(p)]
    exposed = [lateness[p.id] for p in planned if near_a_kill(p)]
    held_ids = {mid for k in kills for mid, _ in k.held}
    report = (
        f"{len(planned)} messages; kills (victim, s after start, ETA tasks held, restart s) "
        f"{[(k.victim, round(k.at - t0, 1), len(k.held), round(k.restart_seconds, 1)) for k in kills]}; "
        f"lateness: on time {min(on_time):.3f}..{max(on_time):.3f}s, near a kill max {max(exposed):.2f}s, "
        f"held by a killed worker {sorted(round(lateness[i], 2) for i in held_ids)}; "
        f"redelivered by the sweep {redelivered}, stopped by the claim {skipped(stack, every_worker)}"
    )
    print(report)
    assert max(on_time) <= ON_TIME, report
    assert max(exposed) <= RECOVERED, report
    for name in [*every_worker, "beat"]:
        assert "Traceback" not in stack.log(name).read_text(errors="replace"), name


# --- shutdown -------------------------------------------------------------------------
def test_sigterm_lets_a_worker_finish_its_calls_and_hand_back_the_rest(shutdown_stack: Stack) -> None:
    """SIGTERM is Celery's warm shutdown: the worker stops fetching, finishes the provider calls
    it has started (1-2 s each here) and hands its prefetched and ETA tasks back to Redis when
    it closes the channel. No beat runs, so nothing but that hand-back can bring them to the
    next worker."""
    stack = shutdown_stack
    stack.start_worker("w1", concurrency=10)

    now = time.time()
    scheduled = [send(stack, 80 + i, now + 10.0 + 0.5 * i) for i in range(10)]
    planned = [send(stack, i, None) for i in range(80)] + scheduled
    ids = [p.id for p in planned]

    wait_until(lambda: len(stack.sandbox.sends()) >= 15, timeout=60)
    held = held_eta_tasks(stack, ["w1"])["w1"]
    in_flight = [i for i, s in zip(ids, stack.ledger.status_of(ids), strict=True) if s == "sending"]
    assert held, "the worker holds ETA tasks"
    assert in_flight, "provider calls are in flight"

    began = time.monotonic()
    stack.kill("w1", signal.SIGTERM)
    took = time.monotonic() - began
    assert stack.procs["w1"].returncode == 0, stack.log("w1").read_text(errors="replace")[-3000:]
    assert took < SOFT_SHUTDOWN_WINDOW, f"shutdown took {took:.1f}s"

    after = dict(zip(ids, stack.ledger.status_of(ids), strict=True))
    assert all(after[i] == "sent" for i in in_flight), "calls in flight were finished and recorded"
    assert "sending" not in after.values(), "no claim left behind"
    sent_before = {i for i, s in after.items() if s == "sent"}
    assert len(stack.sandbox.sends()) == len(sent_before), "every accepted call is recorded as sent"
    assert stack.redis.hlen("unacked") == 0, "nothing left for the visibility timeout to find"
    waiting = broker_tasks(stack)
    missing = [i for i in ids if i not in sent_before and waiting[i] == 0]
    assert not missing, f"{len(missing)} unsent messages have no task in the broker"
    assert {p.id for p in scheduled} - sent_before <= set(waiting), "ETA tasks were handed back"

    log = stack.log("w1").read_text(errors="replace")
    assert "Warm shutdown" in log, log[-3000:]
    assert "Restoring" in log and "unacknowledged message(s)" in log, log[-3000:]
    assert "Traceback" not in log and "Couldn't ack" not in log, log[-3000:]
    print(
        f"SIGTERM with {len(in_flight)} calls in flight and {len(held)} ETA tasks held: exit in "
        f"{took:.1f}s, {len(sent_before)} sent, {sum(waiting.values())} tasks handed back"
    )

    stack.start_worker("w2", concurrency=10)
    stack.wait_status(ids, {"sent"}, timeout=90)
    time.sleep(2)
    counts, first_accepted = sends_by_recipient(stack)
    assert {p.recipient: counts[p.recipient] for p in planned} == {p.recipient: 1 for p in planned}
    assert sum(counts.values()) == len(planned)
    final = records(stack, ids)
    assert [int(r["attempts"]) for r in final.values()] == [1] * len(ids)
    assert not [i for i, r in final.items() if r.get("in_doubt")]
    assert all(first_accepted[p.recipient] >= p.due for p in scheduled), "no ETA went out early"
    assert stack.ledger.counts()["queued"] == 0 and stack.ledger.counts()["sending"] == 0
    assert "Traceback" not in stack.log("w2").read_text(errors="replace")
