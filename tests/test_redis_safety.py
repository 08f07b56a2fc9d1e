"""A Redis that would drop data without a sign: one that evicts keys when full, one that persists
nothing, one that is (nearly) out of memory. Workers and beat refuse an evicting Redis unless
HUDHUD_ALLOW_EVICTION=1, warn at start about the rest, and `hudhud check` reports all of it;
a producer facing a full Redis is told so, not that Redis cannot be reached.

Each test runs redis-server processes started with those settings, and real `hudhud worker`
and `hudhud beat` processes where a start is judged."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from hudhud.worker.errors import RedisFull
from tests.helpers import RedisServer, Sandbox
from tests.stack import Stack

pytestmark = pytest.mark.e2e

EVICTING = ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
NO_CONFIG = ["--rename-command", "CONFIG", ""]  # as managed Redis services do
NO_PERSISTENCE = (
    'redis: Redis persists nothing (appendonly no, save ""): a restart loses every queued and '
    "scheduled message; turn on appendonly yes"
)
OUT_OF_MEMORY = "redis: out of memory: it refuses writes (OOM), so every send fails"

MakeStack = Callable[..., Stack]


@pytest.fixture()
def make_stack(tmp_path: Path, sandbox: Sandbox) -> Iterator[MakeStack]:
    """Stacks on redis-servers started with the given options; all stopped at the end."""
    made: list[tuple[Stack, RedisServer]] = []

    def make(*, extra_args: list[str] | None = None, aof: bool = False, **env: str) -> Stack:
        folder = tmp_path / f"stack{len(made)}"
        server = RedisServer(folder / "redis", aof=aof, extra_args=extra_args).start()
        stack = Stack(folder, redis_server=server, sandbox=sandbox, extra_env=env)
        made.append((stack, server))
        return stack

    yield make
    for stack, server in made:
        stack.stop()
        server.stop()


def check(stack: Stack) -> tuple[int, dict[str, Any]]:
    run = stack.cli("check", "--json")
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, json.loads(run.stdout)


def ended(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    return proc.wait(timeout)


def log_of(stack: Stack, name: str) -> str:
    return stack.log(name).read_text(errors="replace")


def fill(client: redis.Redis, *, up_to: float | None = None) -> None:
    """Write until used_memory reaches `up_to` of maxmemory, or (None) until Redis refuses."""
    maxmemory = int(client.info("memory")["maxmemory"])
    index = 0
    while up_to is None or int(client.info("memory")["used_memory"]) < up_to * maxmemory:
        try:
            client.set(f"filler:{index}", b"x" * 16_384)
        except redis.exceptions.OutOfMemoryError:
            assert up_to is None, "Redis filled up before the target"
            return
        index += 1


# --- eviction -----------------------------------------------------------------------------
def test_worker_and_beat_refuse_a_redis_that_evicts(make_stack: MakeStack) -> None:
    stack = make_stack(extra_args=EVICTING)
    worker = stack._spawn("w1", ["worker", "-P", "solo", "-n", "w1@%h"])
    beat = stack.start_beat()
    assert ended(worker) != 0 and ended(beat) != 0
    for name in ("w1", "beat"):
        text = log_of(stack, name)
        assert "will not start" in text and "maxmemory-policy is allkeys-lru" in text, text[-3000:]
        assert "HUDHUD_ALLOW_EVICTION=1" in text and "noeviction" in text
    assert " ready." not in log_of(stack, "w1")
    assert "Sending due task" not in log_of(stack, "beat")
    plain = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hudhud.worker.broker.celery_app",
            "worker",
            "-P",
            "solo",
            "-n",
            "w2@%h",
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode != 0 and "maxmemory-policy is allkeys-lru" in plain.stderr, "Celery's own CLI too"

    code, report = check(stack)
    assert code == 1
    assert [p for p in report["problems"] if p.startswith("redis: maxmemory-policy is allkeys-lru")]
    assert report["redis_server"]["maxmemory_policy"] == "allkeys-lru"


def test_with_the_override_they_start_and_warn(make_stack: MakeStack) -> None:
    stack = make_stack(extra_args=EVICTING, HUDHUD_ALLOW_EVICTION="1")
    stack.start_worker("w1", pool="solo")
    stack.start_beat()
    stack.wait_log("beat", "HUDHUD_ALLOW_EVICTION=1 accepts it", timeout=30)
    for name in ("w1", "beat"):
        text = log_of(stack, name)
        assert "WARNING" in text and "maxmemory-policy is allkeys-lru" in text
        assert "will not start" not in text
    receipt = stack.hudhud.send_sms(["966500000801"], "despite eviction")
    stack.wait_status([receipt.id], {"sent"}, timeout=30)

    code, report = check(stack)
    assert code == 0, report["problems"]
    assert not [p for p in report["problems"] if "maxmemory-policy" in p], report["problems"]
    assert [w for w in report["warnings"] if "allkeys-lru" in w and "HUDHUD_ALLOW_EVICTION=1" in w]


def test_without_config_the_policy_is_read_from_info(make_stack: MakeStack) -> None:
    stack = make_stack(extra_args=[*EVICTING, *NO_CONFIG])
    with pytest.raises(redis.ResponseError):
        stack.redis.config_get("maxmemory-policy")
    worker = stack._spawn("w1", ["worker", "-P", "solo", "-n", "w1@%h"])
    assert ended(worker) != 0
    assert "maxmemory-policy is allkeys-lru" in log_of(stack, "w1")

    code, report = check(stack)
    assert code == 1
    assert report["redis_server"]["maxmemory_policy"] == "allkeys-lru"
    assert report["redis_server"]["aof"] == "off" and report["redis_server"]["rdb"] == "unknown"
    assert [w for w in report["warnings"] if "RDB snapshots could not be verified" in w]


# --- persistence --------------------------------------------------------------------------
def test_a_redis_that_persists_nothing_is_warned_about(make_stack: MakeStack) -> None:
    bare = make_stack()
    bare.start_worker("w1", pool="solo")
    assert NO_PERSISTENCE in log_of(bare, "w1")
    code, report = check(bare)
    assert code == 0 and NO_PERSISTENCE in report["warnings"], report
    assert report["redis_server"]["aof"] == "off" and report["redis_server"]["rdb"] == "off"

    persisted = make_stack(aof=True)
    persisted.start_worker("w1", pool="solo")
    assert "persists nothing" not in log_of(persisted, "w1")
    code, report = check(persisted)
    assert code == 0 and not [w for w in report["warnings"] if w.startswith("redis:")], report
    assert report["redis_server"]["aof"] == "on"


# --- memory -------------------------------------------------------------------------------
def test_check_reports_memory_pressure_then_a_full_redis(make_stack: MakeStack) -> None:
    # 8 MiB: the check's own connections (tens of KiB each in Redis) stay a small share of it
    stack = make_stack(extra_args=["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"])
    fill(stack.redis, up_to=0.84)
    code, report = check(stack)
    assert code == 0, report["problems"]
    pressure = re.compile(r"^redis: memory is (8\d|9[0-4])% used")
    assert [w for w in report["warnings"] if pressure.match(w)], report["warnings"]

    fill(stack.redis)
    code, report = check(stack)
    assert code == 1
    assert OUT_OF_MEMORY in report["problems"]
    assert not [p for p in report["problems"] if p.startswith("redis: memory is")], "told once"
    assert report["redis_server"]["maxmemory"] == "8.0 MiB"


def test_a_producer_is_told_that_redis_is_out_of_memory(make_stack: MakeStack) -> None:
    stack = make_stack(extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    parked = stack.hudhud.send_sms(["966500000811"], "parked before Redis filled up", at=later)
    fill(stack.redis)
    before = sorted(stack.redis.keys("hudhud:*"))

    with pytest.raises(RedisFull, match="Redis is out of memory") as raised:
        stack.hudhud.send_sms(["966500000812"], "refused")
    assert isinstance(raised.value, redis.RedisError)
    with pytest.raises(RedisFull):
        stack.hudhud.cancel(parked.id)
    assert sorted(stack.redis.keys("hudhud:*")) == before, "nothing half-recorded"
    assert stack.redis.llen("sms") == 0

    sent = stack.cli("send", "sms", "--to", "966500000813", "--body", "refused")
    assert sent.returncode == 1
    assert "Redis is out of memory" in sent.stderr and "cannot reach" not in sent.stderr, sent.stderr
    assert len(sent.stderr.strip().splitlines()) == 1, sent.stderr
    as_json = stack.cli("send", "sms", "--to", "966500000813", "--body", "refused", "--json")
    assert as_json.returncode == 1 and "Redis is out of memory" in json.loads(as_json.stdout)["error"]
    cancelled = stack.cli("cancel", parked.id)
    assert cancelled.returncode == 1 and "Redis is out of memory" in cancelled.stderr, cancelled.stderr
    assert stack.ledger.status_of([parked.id]) == ["scheduled"]
    assert sorted(stack.redis.keys("hudhud:*")) == before
