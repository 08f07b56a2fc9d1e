"""A whole hudhud deployment of real processes for end-to-end tests: redis-server, the
sandbox, `hudhud worker` processes and `hudhud beat`, each logging to a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from hudhud.config import Settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.ledger import Ledger
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.runtime import make_ledger
from tests.helpers import RedisServer, Sandbox, free_port, wait_for_port

FAST_BEAT = {
    "HUDHUD_RELEASE_INTERVAL": "0.5",
    "HUDHUD_STATUS_INTERVAL": "1",
    "HUDHUD_BALANCE_INTERVAL": "2",
    "HUDHUD_EVENTS_INTERVAL": "0.5",
    "HUDHUD_RECOVER_INTERVAL": "1",
    "HUDHUD_PROBE_INTERVAL": "1",
    "HUDHUD_BACKOFF_BASE": "0.2",
    "HUDHUD_BACKOFF_CAP": "2",
    "HUDHUD_MAX_ATTEMPTS": "30",
    "HUDHUD_HTTP_CONNECT_TIMEOUT": "1",
    "HUDHUD_HTTP_READ_TIMEOUT": "2",
    "HUDHUD_HTTP_RETRIES": "1",
    "HUDHUD_LEASE_SECONDS": "5",
    "HUDHUD_REQUEUE_AFTER": "15",
    "HUDHUD_ETA_WINDOW": "3",
    "HUDHUD_METRICS_PORT": "0",  # a test that reads a worker's metrics gives it a free port
    "TAQNYAT_SENDER": "HUDHUD",
    "TAQNYAT_CALLER_ID": "966500000001",
    "TAIFA_FROM": "noreply@example.com",
    "TAQNYAT_EMAIL_FROM": "noreply@example.com",
}


class Stack:
    def __init__(
        self,
        workdir: Path,
        *,
        redis_server: RedisServer,
        sandbox: Sandbox,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.redis_server = redis_server
        self.sandbox = sandbox
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))},
            **FAST_BEAT,
            **sandbox.env(),
            "HUDHUD_REDIS_URL": redis_server.url,
            "HUDHUD_BEAT_SCHEDULE": str(workdir / "beat-schedule"),
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.settings = Settings(
            **{k: v for k, v in self.env.items() if k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))}
        )
        self.app: Celery = create_app(self.settings)
        self.redis = redis.Redis.from_url(redis_server.url)
        self.ledger: Ledger = make_ledger(self.settings, self.redis)
        self.hudhud = Hudhud(self.settings, app=self.app)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.log(name), "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hudhud.worker.ops.cli", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_worker(
        self,
        name: str = "w1",
        *,
        pool: str = "gevent",
        concurrency: int = 20,
        queues: str = "sms,email,voice,hudhud,celery,sms.bulk,email.bulk,voice.bulk",
    ) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            name, ["worker", "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h", "-Q", queues]
        )
        self.wait_log(name, "ready", timeout=60)
        return proc

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self._spawn("beat", ["beat", "-l", "INFO"])

    def start_callbacks(self, name: str = "callbacks") -> subprocess.Popen[bytes]:
        """`hudhud callbacks run`, once it reads the change stream."""
        proc = self._spawn(name, ["callbacks", "run"])
        self.wait_log(name, "ready", timeout=60)
        return proc

    def start_flower(self, basic_auth: str = "ops:flower-pass") -> int:
        port = free_port()
        self.env["FLOWER_BASIC_AUTH"] = basic_auth
        proc = self._spawn("flower", ["flower", f"--port={port}", "--address=127.0.0.1"])
        del self.env["FLOWER_BASIC_AUTH"]
        wait_for_port(port, 60, proc)
        return port

    def start_api(self, name: str = "api", extra_env: dict[str, str] | None = None) -> str:
        """`hudhud api` on a free port; its base URL once it answers /healthz."""
        port = free_port()
        saved = dict(self.env)
        self.env.update(extra_env or {})
        try:
            proc = self._spawn(name, ["api", "--host", "127.0.0.1", "--port", str(port)])
        finally:
            self.env = saved
        wait_for_port(port, 60, proc)
        return f"http://127.0.0.1:{port}"

    def wait_log(self, name: str, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log(name).exists() and text in self.log(name).read_text(errors="replace"):
                return
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log(name).read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(
            f"{name} did not log {text!r}: {self.log(name).read_text(errors='replace')[-3000:]}"
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(60)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        self.redis.close()

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hudhud.worker.ops.cli", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def wait_status(self, ids: list[str], accept: set[str], timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = dict(zip(ids, self.ledger.status_of(ids), strict=True))
            if all(s in accept for s in statuses.values()):
                return {k: str(v) for k, v in statuses.items()}
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all in {accept}: {statuses}")
            time.sleep(0.2)


def wait_until(check: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(interval)


@contextlib.contextmanager
def idle_stack(
    workdir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    knobs: Mapping[str, object] | None = None,
    redis_args: list[str] | None = None,
) -> Iterator[Stack]:
    """redis-server (with `redis_args`) and the sandbox (with `knobs`), no worker yet; all
    stopped on the way out."""
    redis_server = RedisServer(workdir / "redis", extra_args=redis_args).start()
    sandbox = Sandbox(log=workdir / "sandbox.log").start()
    stack = Stack(workdir, redis_server=redis_server, sandbox=sandbox, extra_env=extra_env)
    try:
        if knobs:
            sandbox.knobs(**knobs)
        yield stack
    finally:
        stack.stop()
        sandbox.stop()
        redis_server.stop()


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    concurrency: int = 20,
    beat: bool = True,
    extra_env: dict[str, str] | None = None,
    knobs: dict[str, object] | None = None,
) -> Iterator[Stack]:
    """redis-server, the sandbox (with `knobs`), worker `w1` and (unless not wanted) beat,
    all stopped on the way out."""
    with idle_stack(workdir, extra_env=extra_env, knobs=knobs) as stack:
        stack.start_worker("w1", concurrency=concurrency)
        if beat:
            stack.start_beat()
        yield stack
