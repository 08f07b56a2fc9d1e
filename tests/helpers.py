"""Real servers for tests: a private redis-server and the provider sandbox, each on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

SANDBOX_TAQNYAT_TOKEN = "test-taqnyat-token-7d1f"
SANDBOX_TAIFA_KEY = "tfm_k_test_51c2e9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class RedisServer:
    """A redis-server on a private port with its own data folder (AOF optional)."""

    def __init__(self, workdir: Path, *, aof: bool = False, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on the PATH (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        self.aof = aof
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Sandbox:
    """`python -m worker.sandbox` on a private port, with the test tokens."""

    def __init__(
        self, port: int | None = None, extra_args: list[str] | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def taifa_url(self) -> str:
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        return {
            "TAQNYAT_BASE_URL": self.url,
            "TAIFA_BASE_URL": self.taifa_url,
            "TAQNYAT_TOKEN": SANDBOX_TAQNYAT_TOKEN,
            "TAIFA_API_KEY": SANDBOX_TAIFA_KEY,
        }

    def start(self) -> Sandbox:
        env = {**os.environ, **self.env()}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.sandbox", "--port", str(self.port), *self.extra_args],
            env=env,
            stdout=out,
            stderr=out,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    # admin helpers
    def knobs(self, **values: object) -> dict[str, object]:
        reply = requests.post(f"{self.url}/_sandbox/knobs", json=values, timeout=10)
        reply.raise_for_status()
        return dict(reply.json())

    def reset(self) -> None:
        requests.post(f"{self.url}/_sandbox/reset", timeout=10).raise_for_status()

    def sends(self) -> list[dict[str, object]]:
        reply = requests.get(f"{self.url}/_sandbox/sends", timeout=30)
        reply.raise_for_status()
        return list(reply.json()["sends"])


@contextlib.contextmanager
def running(server: RedisServer | Sandbox) -> Iterator[RedisServer | Sandbox]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
