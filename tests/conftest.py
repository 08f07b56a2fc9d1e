"""Shared fixtures: a real redis-server and the real sandbox, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import RedisServer, Sandbox

# Proofs whose figures are times (on time, within two minutes, calls per second) or that kill
# processes at random: `make test` runs them alone, after the others have run in parallel.
SERIAL = frozenset(
    {
        "test_atomic_take.py",
        "test_balance_shortfall.py",
        "test_chaos_quick.py",
        "test_full_redis.py",
        "test_quickstart.py",
        "test_rate_limit_storm.py",
        "test_redis_stall.py",
        "test_reliability.py",
        "test_stranded_tasks.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL:
            item.add_marker(pytest.mark.serial)
        if item.get_closest_marker("proof") is not None:
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    log: Path = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    server = Sandbox(log=log).start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    """The session's sandbox with its knobs, balance and record reset."""
    sandbox.reset()
    return sandbox
