"""`hudhud dev`: a private Redis, the sandbox, a worker, beat and Flower on one machine.

Without HUDHUD_REDIS_URL it starts `redis-server` (AOF on) with its data in `--data-dir`.
The sandbox and the worker share one environment, so their tokens match. Ctrl-C stops all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

DEV_DEFAULTS = {
    "TAQNYAT_TOKEN": "sandbox-taqnyat-token",
    "TAIFA_API_KEY": "tfm_k_sandbox",
    "TAQNYAT_SENDER": "HUDHUD",
    "TAQNYAT_CALLER_ID": "966500000001",
    "TAIFA_FROM": "noreply@example.com",
    "TAQNYAT_EMAIL_FROM": "noreply@example.com",
}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"{what} exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return
        time.sleep(0.1)
    raise click.ClickException(f"{what} did not listen on port {port} within {timeout:.0f}s")


def _hudhud(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", *args]


class Stack:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        """Stop in reverse order of start, so Redis outlives the workers' shutdown."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _start_redis(stack: Stack, data_dir: Path, port: int, env: dict[str, str]) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(
            "redis-server is not on the PATH: install it (Debian: apt-get install redis-server) "
            "or set HUDHUD_REDIS_URL"
        )
    if not _port_free(port):
        port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = stack.start(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir.resolve()),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            "redis.log",
        ],
        env,
    )
    _wait_port(port, proc, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def run_dev(data_dir: Path, *, redis_port: int, sandbox_port: int, flower_port: int, concurrency: int) -> int:
    env = dict(os.environ)
    for name, value in DEV_DEFAULTS.items():
        env.setdefault(name, value)
    stack = Stack()
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        if "HUDHUD_REDIS_URL" not in env:
            env["HUDHUD_REDIS_URL"] = _start_redis(stack, data_dir, redis_port, env)
        if not _port_free(sandbox_port):
            sandbox_port = _free_port()
        env["TAQNYAT_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}"
        env["TAIFA_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}/v1"
        sandbox = stack.start("sandbox", _hudhud("sandbox", "--port", str(sandbox_port)), env)
        _wait_port(sandbox_port, sandbox, "the sandbox")
        env["HUDHUD_CONCURRENCY"] = str(concurrency)
        stack.start("worker", _hudhud("worker", "-c", str(concurrency), "-n", "dev@%h"), env)
        env["HUDHUD_BEAT_SCHEDULE"] = str((data_dir / "beat-schedule").resolve())
        stack.start("beat", _hudhud("beat"), env)
        if not _port_free(flower_port):
            flower_port = _free_port()
        flower = stack.start("flower", _hudhud("flower", f"--port={flower_port}", "--address=127.0.0.1"), env)
        _wait_port(flower_port, flower, "Flower")
        _announce(env, sandbox_port, flower_port, data_dir)
        while not stopping:
            for name, proc in stack.procs:
                if proc.poll() is not None:
                    click.echo(f"hudhud dev: {name} exited with status {proc.returncode}", err=True)
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        click.echo("hudhud dev: stopping…", err=True)
        stack.stop()


def _announce(env: dict[str, str], sandbox_port: int, flower_port: int, data_dir: Path) -> None:
    env_file = data_dir / "dev.env"
    data_dir.mkdir(parents=True, exist_ok=True)
    shared = {
        k: env[k]
        for k in (
            "HUDHUD_REDIS_URL",
            "TAQNYAT_SENDER",
            "TAQNYAT_CALLER_ID",
            "TAIFA_FROM",
            "TAQNYAT_EMAIL_FROM",
        )
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in shared.items()))
    click.echo(
        "\nhudhud dev is running (Ctrl-C stops everything)\n"
        f"  redis    {env['HUDHUD_REDIS_URL']}\n"
        f"  sandbox  http://127.0.0.1:{sandbox_port}  (Taqnyat at /, Taifa at /v1/emails)\n"
        f"  flower   http://127.0.0.1:{flower_port}\n"
        "  worker   queues sms, email, voice, hudhud;  beat: the periodic jobs\n"
        f"\nIn another terminal (settings in {env_file}):\n"
        f"  set -a; . {env_file}; set +a\n"
        "  hudhud send sms --to 966500000000 --body 'hello from hudhud'\n"
        "  hudhud status <the id it prints>\n"
    )
