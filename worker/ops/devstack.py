"""`hudhud dev`: a private Redis, the sandbox, a worker, beat, Flower, the HTTP API and the
callback dispatcher on one machine.

Without HUDHUD_REDIS_URL it starts `redis-server` (AOF on) with its data in `--data-dir`.
The sandbox and the worker share one environment, so their tokens match. Without
HUDHUD_API_KEYS it makes a key of its own for the API (`dev:<random>`) and prints it; without
HUDHUD_CALLBACK_SECRET, a secret of its own for the callbacks it signs. While it runs,
`<data-dir>/dev.env` holds the settings other commands need (the default data dir `.hudhud`
makes commands run from the same folder read it by themselves). Ctrl-C (or SIGTERM, SIGHUP)
stops all and exits 0; a second one while stopping kills what is left.

Its own output may go to a pipe that is gone by the time it stops (`hudhud dev | tee log`
and Ctrl-C, which ends `tee` too): nothing it prints may keep it from stopping the stack.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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
DEV_KEY_NAME = "dev"
ENV_FILE_DIR = Path(".hudhud")  # the folder Settings reads `dev.env` from, relative to the cwd


def say(text: str, *, err: bool = False) -> None:
    """Print, unless the terminal or pipe is gone: then send the rest of the output to
    /dev/null, so neither this nor the interpreter's last flush fails."""
    stream = sys.stderr if err else sys.stdout
    try:
        click.echo(text, file=stream)
        stream.flush()
    except (BrokenPipeError, ValueError, OSError):
        _silence()


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def port_free(port: int) -> bool:
    """Whether a server can listen on 127.0.0.1:`port`. Probed as redis-server, the sandbox and
    Flower bind, with SO_REUSEADDR: a port only held by connections in TIME_WAIT (the last run's)
    is free for them."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
        return True


@dataclass
class DevPorts:
    redis: int
    sandbox: int
    flower: int
    api: int
    metrics: int = 9031  # the worker's /metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_port(port: int, what: str) -> int:
    """`port`, or another free one when something else listens there, said out loud."""
    if port_free(port):
        return port
    other = _free_port()
    say(f"hudhud dev: port {port} is in use by another program: {what} listens on {other} instead", err=True)
    return other


class _Stopped(Exception):
    """A stop signal came while the stack was starting."""


def _hudhud(*args: str) -> list[str]:
    return [sys.executable, "-m", "hudhud.worker.ops.cli", *args]


class Stack:
    """The child processes, each in its own session so a terminal's Ctrl-C reaches only
    `hudhud dev`, which then stops them in order. A second signal while stopping kills them."""

    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stopping = False
        self.hurry = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            self.hurry = True
        self.stopping = True

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self.stopping:
            raise _Stopped
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def wait_port(self, port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stopping:
                raise _Stopped
            if proc.poll() is not None:
                raise click.ClickException(f"{what} exited with status {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
                return
            time.sleep(0.1)
        raise click.ClickException(f"{what} did not listen on port {port} within {timeout:.0f}s")

    def stop(self) -> None:
        """Redis last, so it outlives the worker's and beat's shutdown; the others together."""
        self._terminate([proc for name, proc in self.procs if name != "redis"])
        self._terminate([proc for name, proc in self.procs if name == "redis"])

    def _terminate(self, procs: list[subprocess.Popen[bytes]], grace: float = 40) -> None:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and not self.hurry and time.monotonic() < deadline:
            time.sleep(0.1)
        for proc in procs:
            if proc.poll() is None:
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
    port = pick_port(port, "Redis")
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
    stack.wait_port(port, proc, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def run_dev(data_dir: Path, *, ports: DevPorts, concurrency: int) -> int:
    """Start everything, wait for SIGINT (Ctrl-C), SIGTERM or SIGHUP, stop everything.

    0 after a stop signal; 1 when a part exits by itself (the others are stopped too).
    """
    env = dict(os.environ)
    for name, value in DEV_DEFAULTS.items():
        env.setdefault(name, value)
    own_key = None
    if not env.get("HUDHUD_API_KEYS"):
        own_key = f"hh_dev_{secrets.token_urlsafe(18)}"
        env["HUDHUD_API_KEYS"] = f"{DEV_KEY_NAME}:{own_key}"
    if not env.get("HUDHUD_CALLBACK_SECRET"):
        env["HUDHUD_CALLBACK_SECRET"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    stack = Stack()
    env_file: Path | None = None
    previous = {signum: signal.signal(signum, stack.on_signal) for signum in Stack.STOP_SIGNALS}
    code = 0
    try:
        if "HUDHUD_REDIS_URL" not in env:
            env["HUDHUD_REDIS_URL"] = _start_redis(stack, data_dir, ports.redis, env)
        _start_parts(stack, env, ports, data_dir, concurrency)
        env_file = _write_env_file(env, data_dir, own_key)
        say(banner(env, ports, env_file, concurrency, own_key))
        code = _watch(stack)
    except _Stopped:
        pass
    finally:
        stack.stopping = True
        stack.stop()
        if env_file is not None:
            env_file.unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say("hudhud dev: stopped", err=True)
    return code


def _start_parts(
    stack: Stack, env: dict[str, str], ports: DevPorts, data_dir: Path, concurrency: int
) -> None:
    """The sandbox, worker, beat, Flower, the API and the callback dispatcher; `ports` ends
    up holding the ports they listen on."""
    ports.sandbox = pick_port(ports.sandbox, "the sandbox")
    env["TAQNYAT_BASE_URL"] = f"http://127.0.0.1:{ports.sandbox}"
    env["TAIFA_BASE_URL"] = f"http://127.0.0.1:{ports.sandbox}/v1"
    sandbox = stack.start("sandbox", _hudhud("sandbox", "--port", str(ports.sandbox)), env)
    stack.wait_port(ports.sandbox, sandbox, "the sandbox")
    env["HUDHUD_CONCURRENCY"] = str(concurrency)
    ports.metrics = pick_port(ports.metrics, "the worker's metrics")
    env["HUDHUD_METRICS_PORT"] = str(ports.metrics)
    stack.start("worker", _hudhud("worker", "-c", str(concurrency), "-n", "dev@%h"), env)
    env["HUDHUD_BEAT_SCHEDULE"] = str((data_dir / "beat-schedule").resolve())
    stack.start("beat", _hudhud("beat"), env)
    ports.flower = pick_port(ports.flower, "Flower")
    flower = stack.start("flower", _hudhud("flower", f"--port={ports.flower}", "--address=127.0.0.1"), env)
    ports.api = pick_port(ports.api, "the API")
    api = stack.start("api", _hudhud("api", "--host", "127.0.0.1", "--port", str(ports.api)), env)
    stack.start("callbacks", _hudhud("callbacks", "run"), env)
    stack.wait_port(ports.flower, flower, "Flower")
    stack.wait_port(ports.api, api, "the API")


def _watch(stack: Stack) -> int:
    """Until a stop signal (0), or until a part exits by itself (1)."""
    while not stack.stopping:
        for name, proc in stack.procs:
            if proc.poll() is not None:
                say(f"hudhud dev: {name} exited with status {proc.returncode}; stopping the rest", err=True)
                return 1
        time.sleep(0.2)
    say("hudhud dev: stopping…", err=True)
    return 0


def _env_file_values(env: dict[str, str], own_key: str | None) -> dict[str, str]:
    """What a command run from the same folder needs to reach this stack. The tokens are
    written only when they are the sandbox's own defaults, never a token of the caller's,
    and the API's key only when dev made it."""
    names = [
        "HUDHUD_REDIS_URL",
        "TAQNYAT_BASE_URL",
        "TAIFA_BASE_URL",
        "TAQNYAT_SENDER",
        "TAQNYAT_CALLER_ID",
        "TAIFA_FROM",
        "TAQNYAT_EMAIL_FROM",
    ]
    names += [k for k in ("TAQNYAT_TOKEN", "TAIFA_API_KEY") if env.get(k) == DEV_DEFAULTS[k]]
    names += ["HUDHUD_API_KEYS"] if own_key else []
    return {k: env[k] for k in names}


def _write_env_file(env: dict[str, str], data_dir: Path, own_key: str | None) -> Path:
    """`dev.env` (readable by its owner only: it may hold the API's key), removed again when
    the stack stops."""
    env_file = data_dir / "dev.env"
    data_dir.mkdir(parents=True, exist_ok=True)
    env_file.touch(mode=0o600)
    env_file.chmod(0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _env_file_values(env, own_key).items()))
    return env_file


def cli_command() -> str:
    """How to call `hudhud` from a shell in the current folder: the console script beside this
    Python (relative when it lies below the folder, e.g. `.venv/bin/hudhud`), which need not
    be on the PATH."""
    script = Path(os.path.abspath(sys.executable)).parent / "hudhud"
    if script.is_file():
        try:
            return shlex.quote(str(script.relative_to(Path.cwd())))
        except ValueError:
            return shlex.quote(str(script))
    if shutil.which("hudhud"):
        return "hudhud"
    return f"{shlex.quote(sys.executable)} -m hudhud.worker.ops.cli"


def banner(
    env: dict[str, str], ports: DevPorts, env_file: Path, concurrency: int, own_key: str | None
) -> str:
    """Where everything listens, and commands for a second terminal that work as printed."""
    hudhud = cli_command()
    auth = "  (basic auth from FLOWER_BASIC_AUTH)" if env.get("FLOWER_BASIC_AUTH") else ""
    here = Path.cwd()
    source = f"set -a; . {shlex.quote(str(env_file.resolve()))}; set +a"
    if env_file.resolve() == (here / ENV_FILE_DIR / "dev.env").resolve():
        where = (
            f"Commands run from this folder ({here}) read {ENV_FILE_DIR / 'dev.env'} by themselves\n"
            f"(it is read from the current folder only). From another folder, first: {source}\n"
        )
    else:
        where = f"Commands read {env_file} only when told to; first: {source}\n"
    api = f"http://127.0.0.1:{ports.api}"
    key = shlex.quote(own_key) if own_key else '"$KEY"  # a key of your HUDHUD_API_KEYS'
    return (
        "\nhudhud dev is running (Ctrl-C stops everything)\n"
        f"  redis      {env['HUDHUD_REDIS_URL']}\n"
        f"  sandbox    http://127.0.0.1:{ports.sandbox}  (Taqnyat at /, Taifa at /v1/emails)\n"
        f"  flower     http://127.0.0.1:{ports.flower}{auth}\n"
        f"  api        {api}  (OpenAPI at /openapi.json, docs at /docs)\n"
        f"  worker     {concurrency} greenlets on sms, email, voice, hudhud, celery + bulk lanes\n"
        f"  ops page   {api}/ops  (any user name, an API key as the password)\n"
        f"  metrics    {api}/metrics and http://127.0.0.1:{ports.metrics}/metrics (the worker's)\n"
        "  beat       the periodic jobs\n"
        "  callbacks  status callbacks to HUDHUD_CALLBACK_URL and per-message URLs\n"
        f"\n{where}"
        "In another terminal:\n"
        f"  id=$({hudhud} send sms --to 966500000000 --body 'hello from hudhud')\n"
        f'  {hudhud} status "$id"\n'
        f"  {hudhud} check\n"
        "Over HTTP:\n"
        f"  curl -s {api}/v1/messages/sms -H 'Authorization: Bearer '{key} \\\n"
        "       -H 'Content-Type: application/json' \\\n"
        '       -d \'{"to": ["966500000000"], "body": "hello over HTTP"}\'\n'
    )
