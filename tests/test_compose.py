"""docker-compose.yml and the Dockerfile, checked statically against the contract
(no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from worker.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_VARIABLES = {
    "HUDHUD_REDIS_URL",
    "TAQNYAT_BASE_URL",
    "TAQNYAT_TOKEN",
    "TAQNYAT_SENDER",
    "TAQNYAT_CALLER_ID",
    "TAIFA_BASE_URL",
    "TAIFA_API_KEY",
    "HUDHUD_EMAIL_PROVIDER",
    "HUDHUD_VISIBILITY_TIMEOUT",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _command_is_a_hudhud_command(command: list[str]) -> None:
    ctx = click.Context(main)
    assert main.get_command(ctx, command[0]) is not None, f"hudhud has no command {command[0]!r}"


def test_redis_persists_with_aof_and_has_a_health_check(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    _command_is_a_hudhud_command(worker["command"])
    assert worker["command"][0] == "worker"
    assert int(worker["stop_grace_period"].rstrip("s")) >= 30, "time for the soft shutdown"


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    beats = [name for name, svc in compose["services"].items() if svc.get("command", [""])[0] == "beat"]
    assert beats == ["beat"]
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_flower_requires_basic_auth(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    _command_is_a_hudhud_command(flower["command"])
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?.+\}", auth), "compose must refuse to start without it"


def test_sandbox_only_under_its_profile(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    _command_is_a_hudhud_command(sandbox["command"])
    for name, service in compose["services"].items():
        if name != "sandbox":
            assert "profiles" not in service


def test_services_get_every_contract_variable(compose: dict[str, Any]) -> None:
    for name in ("worker", "beat", "flower"):
        env = compose["services"][name]["environment"]
        assert CONTRACT_VARIABLES <= set(env), f"{name} misses {CONTRACT_VARIABLES - set(env)}"
        assert env["HUDHUD_REDIS_URL"].endswith("redis://redis:6379/0}")


def test_dockerfile_runs_hudhud_as_an_unprivileged_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hudhud"]' in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    for package in ("config", "tasks", "worker"):
        assert f"COPY {package} ./{package}" in text
