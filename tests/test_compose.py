"""docker-compose.yml, .env.example and the Dockerfile, checked without a Docker engine.

Debian's `docker-compose` (installed by `make compose`, part of `make test`) parses and
interpolates the file as Docker would, from a copy of the project with `.env` made from
`.env.example`. What the containers would run is then run here as plain processes: the
sandbox trial with the settings compose resolves (its tokens and URLs must fit with no edits),
and the worker's and beat's health checks against a real worker and a real beat.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import yaml
from celery.beat import Scheduler

from hudhud.config import Settings
from hudhud.worker.ops.cli import main
from hudhud.worker.ops.processes import flower_refusal
from tests.helpers import RedisServer, free_port, wait_for_port
from tests.stack import Stack, idle_stack

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SERVICES = ("worker", "beat", "api", "callbacks", "flower", "sandbox")
PUBLISHED = {
    "flower": "FLOWER_PUBLISH",
    "sandbox": "SANDBOX_PUBLISH",
    "api": "API_PUBLISH",
    "prometheus": "PROMETHEUS_PUBLISH",
}
ON_DEMAND = {"sandbox": ["sandbox"], "flower": ["flower"], "prometheus": ["monitoring"]}
PROMETHEUS = ROOT / "deploy" / "prometheus"
# read from the environment, not Settings
ENV_ONLY = {"HUDHUD_CONCURRENCY", "HUDHUD_BEAT_SCHEDULE", "HUDHUD_BEAT_EVENTS"}
OWN_PREFIXES = ("HUDHUD_", "TAQNYAT_", "TAIFA_", "FLOWER_", "SANDBOX_", "COMPOSE_")


def setting_names() -> set[str]:
    """Every variable hudhud reads: the Settings' aliases and the few read from the environment."""
    aliases = {str(f.validation_alias.choices[0]) for f in Settings.model_fields.values()}  # type: ignore[union-attr]
    return aliases | ENV_ONLY


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _command_is_a_hudhud_command(command: list[str]) -> None:
    ctx = click.Context(main)
    assert main.get_command(ctx, command[0]) is not None, f"hudhud has no command {command[0]!r}"


class Project:
    """A copy of the files compose reads, with a `.env` of our choosing."""

    def __init__(self, folder: Path, env_file: str | None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("docker-compose.yml", ".env.example", "Dockerfile"):
            shutil.copy(ROOT / name, folder / name)
        if env_file is not None:
            (folder / ".env").write_text(env_file)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
        return subprocess.run(
            ["docker-compose", *args], cwd=self.folder, env=env, capture_output=True, text=True, timeout=120
        )

    def config(self, *profiles: str) -> dict[str, Any]:
        flags = [arg for profile in profiles for arg in ("--profile", profile)]
        result = self.run(*flags, "config")
        assert result.returncode == 0, result.stderr
        return dict(yaml.safe_load(result.stdout))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The project as `cp .env.example .env` leaves it, FLOWER_BASIC_AUTH unset."""
    return Project(tmp_path_factory.mktemp("compose"), (ROOT / ".env.example").read_text())


# --- the file's shape ---------------------------------------------------------------------


def test_redis_persists_with_aof_and_has_a_health_check(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ports" not in redis


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


def test_flower_the_sandbox_and_prometheus_run_on_demand_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service.get("profiles") == ON_DEMAND.get(name), name
        if name in IMAGE_SERVICES:
            _command_is_a_hudhud_command(service["command"])


def test_flower_asks_for_its_password_itself_and_nothing_else_does() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert ":?" not in text, "a required variable fails `docker compose config` for every service"
    flower = yaml.safe_load(text)["services"]["flower"]
    assert flower_refusal(flower["command"][1:], {}) is not None, "no password, no Flower"
    assert flower_refusal(flower["command"][1:], {"FLOWER_BASIC_AUTH": "ops:pw"}) is None


def test_every_container_reads_the_whole_env_file(compose: dict[str, Any]) -> None:
    for name in IMAGE_SERVICES:
        assert compose["services"][name]["env_file"] == [".env"], name


def test_published_ports_stay_on_this_machine_unless_configured(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            variable = PUBLISHED[name]
            assert re.fullmatch(rf"\$\{{{variable}:-127\.0\.0\.1:\d+\}}:\d+", port), (name, port)


def test_dockerfile_runs_hudhud_as_an_unprivileged_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hudhud"]' in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    for package in ("config", "tasks", "worker"):
        assert f"COPY {package} ./{package}" in text
    assert "HUDHUD_BEAT_SCHEDULE=/var/lib/hudhud/beat-schedule" in text, "beat's health check reads it"
    assert ".env" in (ROOT / ".dockerignore").read_text().split(), "no secrets in the build context"


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    missing = setting_names() - listed
    assert not missing, f".env.example does not list {sorted(missing)}"
    assert set(PUBLISHED.values()) <= listed
    assert listed - setting_names() - set(PUBLISHED.values()) == set(), "only real settings"


# --- as docker-compose reads it -----------------------------------------------------------


@pytest.mark.parametrize("profiles", [(), ("sandbox",), ("flower",), ("sandbox", "flower"), ("monitoring",)])
def test_compose_config_needs_no_flower_password(shipped: Project, profiles: tuple[str, ...]) -> None:
    config = shipped.config(*profiles)
    assert {"redis", "worker", "beat"} <= set(config["services"])
    for name in PUBLISHED:
        for port in config["services"][name].get("ports", []):
            published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}"
            assert published.startswith("127.0.0.1:"), (name, port)


def test_without_an_env_file_compose_says_which_file_is_missing(tmp_path: Path) -> None:
    result = Project(tmp_path, None).run("config")
    assert result.returncode != 0 and ".env" in result.stderr


def test_every_setting_in_env_reaches_every_container(tmp_path: Path) -> None:
    values = {name: f"v-{index}" for index, name in enumerate(sorted(setting_names()))}
    project = Project(tmp_path, "".join(f"{k}={v}\n" for k, v in values.items()))
    config = project.config("sandbox", "flower")
    for name in IMAGE_SERVICES:
        environment = config["services"][name]["environment"]
        assert {k: environment.get(k) for k in values} == values, name


def test_published_addresses_can_be_configured(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    project = Project(tmp_path, example + "FLOWER_PUBLISH=0.0.0.0:15555\n")
    ports = project.config("flower")["services"]["flower"]["ports"]
    assert ports in (["0.0.0.0:15555:5555/tcp"], [{"host_ip": "0.0.0.0", "published": 15555}]) or any(
        "0.0.0.0:15555" in str(p) for p in ports
    )


# --- what the containers would run, run here ----------------------------------------------


def _local(value: str, sandbox_port: int, redis_url: str) -> str:
    """A container's setting as it applies here: Redis and the sandbox on this machine."""
    value = value.replace("redis://redis:6379/0", redis_url)
    return value.replace("sandbox:8025", f"127.0.0.1:{sandbox_port}")


def test_the_sandbox_trial_works_with_no_edits(
    shipped: Project, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """(`redis_client` empties the shared Redis first: no pause left by another test.)"""
    services = shipped.config("sandbox")["services"]
    worker, sandbox = services["worker"], services["sandbox"]
    for variable in ("TAQNYAT_TOKEN", "TAIFA_API_KEY"):
        assert worker["environment"][variable] == sandbox["environment"][variable] != ""
    assert worker["environment"]["TAQNYAT_BASE_URL"] == "http://sandbox:8025"
    assert sandbox["command"][-2:] == ["--port", "8025"]

    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    command = [c if c != "8025" else str(port) for c in sandbox["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.ops.cli", *command],
        env={**base, **sandbox["environment"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, proc)
        worker_env = {k: _local(str(v), port, redis_server.url) for k, v in worker["environment"].items()}
        check = subprocess.run(
            [sys.executable, "-m", "hudhud.worker.ops.cli", "check", "--json"],
            cwd=tmp_path,
            env={**base, **worker_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = json.loads(check.stdout)
        assert report["problems"] == [], report
        for provider in ("taqnyat", "taifa"):
            assert report["providers"][provider]["credentials"] == "valid", report
    finally:
        proc.terminate()
        proc.wait(10)


def _health_command(service: dict[str, Any]) -> str:
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return str(command).replace("$$", "$")


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"  # `python` is the image's
    return subprocess.run(
        ["sh", "-c", command], env={**env, "PATH": path}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def plain_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A worker started as the compose file starts it: `hudhud worker`, node celery@<host>."""
    with idle_stack(tmp_path_factory.mktemp("health")) as stack:
        stack._spawn("plain", ["worker", "-c", "2"])
        stack.wait_log("plain", "ready", timeout=60)
        yield stack


def test_worker_health_check_pings_its_own_node(compose: dict[str, Any], plain_worker: Stack) -> None:
    command = _health_command(compose["services"]["worker"])
    assert "inspect ping" in command and "celery@$HOSTNAME" in command
    healthy = _sh(command, {**plain_worker.env, "HOSTNAME": socket.gethostname()})
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "pong" in healthy.stdout
    started = time.monotonic()
    other = _sh(command.replace("--timeout 10", "--timeout 2"), {**plain_worker.env, "HOSTNAME": "elsewhere"})
    assert other.returncode != 0, other.stdout
    assert time.monotonic() - started < 30


def test_beat_health_check_watches_its_schedule_file(
    compose: dict[str, Any], redis_server: RedisServer, tmp_path: Path
) -> None:
    command = _health_command(compose["services"]["beat"])
    schedule = tmp_path / "beat-schedule"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)},
        "HUDHUD_REDIS_URL": redis_server.url,
        "HUDHUD_BEAT_SCHEDULE": str(schedule),
        "HUDHUD_RELEASE_INTERVAL": "0.5",
    }
    assert _sh(command, env).returncode != 0, "no schedule file yet: not healthy"
    beat = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.ops.cli", "beat"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("beat-schedule*")):
            assert beat.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)
        assert _sh(command, env).returncode == 0, "a beat that just wrote its schedule is healthy"
    finally:
        beat.terminate()
        beat.wait(30)
    stale = time.time() - 6 * 60
    for file in tmp_path.glob("beat-schedule*"):
        os.utime(file, (stale, stale))
    assert _sh(command, env).returncode != 0, "a schedule untouched for 6 minutes: beat is stuck"
    assert Scheduler.sync_every <= 180, "beat writes its schedule at least this often"


def test_api_health_check_asks_for_readiness(compose: dict[str, Any], tmp_path: Path) -> None:
    api = compose["services"]["api"]
    assert api["command"][:1] == ["api"] and api["command"][-1] == "8030"
    with idle_stack(tmp_path) as stack:
        port = stack.start_api().rsplit(":", 1)[1]
        command = _health_command(api).replace("8030", port)
        assert "/readyz" in command
        healthy = _sh(command, stack.env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        stack.redis_server.stop()
        assert _sh(command, stack.env).returncode != 0, "Redis gone: the API is not ready"


def test_the_callback_dispatcher_runs_beside_the_workers(compose: dict[str, Any]) -> None:
    callbacks = compose["services"]["callbacks"]
    assert callbacks["command"] == ["callbacks", "run"]
    assert "ports" not in callbacks and "profiles" not in callbacks


# --- the monitoring profile ---------------------------------------------------------------


def test_prometheus_reads_the_shipped_config_and_keeps_its_data(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    image, _, tag = prometheus["image"].partition(":")
    assert image == "prom/prometheus" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), "a pinned release"
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    mounts = {v.split(":")[1]: v for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus"] == "./deploy/prometheus:/etc/prometheus:ro"
    assert flags["config.file"] == "/etc/prometheus/prometheus.yml"
    assert (PROMETHEUS / "prometheus.yml").is_file()
    assert flags["storage.tsdb.path"] in mounts and mounts[flags["storage.tsdb.path"]].startswith(
        "prometheus-data:"
    )
    assert "prometheus-data" in compose["volumes"]
    rules = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert rules and all((PROMETHEUS / name).is_file() for name in rules), "inside the mounted folder"


def test_prometheus_scrapes_the_api_and_every_worker_where_they_listen(shipped: Project) -> None:
    services = shipped.config("monitoring")["services"]
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    api = services["api"]["command"]
    assert api[api.index("--host") + 1] == "0.0.0.0"
    assert jobs["hudhud-api"]["static_configs"] == [{"targets": [f"api:{api[api.index('--port') + 1]}"]}]
    # each worker container answers on the service's name; one job finds them all, however many
    worker_env = services["worker"]["environment"]
    settings = Settings(**{k: v for k, v in worker_env.items() if k.startswith(OWN_PREFIXES)})
    assert settings.metrics_host == "0.0.0.0", "reachable from the Prometheus container"
    assert settings.metrics_port != 0
    found = jobs["hudhud-worker"]["dns_sd_configs"]
    assert found == [
        {"names": ["worker"], "type": "A", "port": settings.metrics_port, "refresh_interval": "30s"}
    ]
    assert "ports" not in services["worker"], "the workers' metrics stay inside the compose network"
