"""Start Celery's worker, beat and Flower on hudhud's app, each in its own program.

The worker runs `python -m celery` (so the gevent pool is patched before anything else is
imported); hudhud's defaults come first and the user's arguments override them. Beat logs at
WARNING unless told otherwise: at INFO it writes a line for every job it sends, about 90 a
minute. Flower refuses to listen beyond this machine without a password.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

APP = "hudhud.worker.broker.celery_app"
FLOWER_APP = "hudhud.worker.ops.flower"  # the same app, with Flower taught hudhud's broker URL
DEFAULT_QUEUES = (
    "sms,email,voice,hudhud,celery,sms.bulk,email.bulk,voice.bulk"  # celery: a producer that names no queue
)
DEFAULT_POOL = "gevent"
DEFAULT_CONCURRENCY = 50
FORKING_POOLS = ("prefork", "processes")
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode
BEAT_LOG_LEVEL = "WARNING"
EX_CONFIG = 78  # sysexits.h: a configuration error, as for a Redis that evicts keys
LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def _has(args: list[str], *names: str) -> bool:
    return any(
        a == n or a.startswith(n + "=") or (len(n) == 2 and a.startswith(n) and a != n[:2])
        for a in args
        for n in names
    )


def _value(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
            if len(name) == 2 and arg.startswith(name) and len(arg) > 2:
                return arg[2:]
    return None


def worker_argv(args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", APP, "worker"]
    if not _has(args, "-Q", "--queues"):
        argv += ["-Q", DEFAULT_QUEUES]
    if not _has(args, "-P", "--pool"):
        argv += ["-P", DEFAULT_POOL]
    if not _has(args, "-c", "--concurrency"):
        argv += ["-c", str(default_concurrency())]
    if not _has(args, "-l", "--loglevel"):
        argv += ["-l", "INFO"]
    argv += ["--without-gossip", "--without-mingle"]
    if _task_events() and not _has(args, "-E", "--task-events"):
        argv.append("-E")  # the command line's default would override the setting
    return argv + args


def _task_events() -> bool:
    from hudhud.config import get_settings

    try:
        return bool(get_settings().task_events)
    except Exception:
        return False


def default_concurrency() -> int:
    """The greenlets of a worker started without `-c`: HUDHUD_CONCURRENCY when set, else 50."""
    raw = os.environ.get("HUDHUD_CONCURRENCY", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_CONCURRENCY


def concurrency_of(argv: list[str]) -> str:
    return _value(argv, "-c", "--concurrency") or str(default_concurrency())


def _settings_readable() -> None:
    """Read the settings before Celery does: a bad one is then told in one line (by the CLI),
    not as a traceback from inside Celery's start."""
    from hudhud.config import get_settings

    get_settings()


def run_worker(args: list[str]) -> None:
    _settings_readable()
    argv = worker_argv(args)
    os.environ.setdefault("HUDHUD_CONCURRENCY", concurrency_of(argv))
    if (_value(argv, "-P", "--pool") or DEFAULT_POOL) in FORKING_POOLS:
        # the pool's processes keep their metrics in files the worker's /metrics reads
        os.environ.setdefault(MULTIPROCESS_DIR, tempfile.mkdtemp(prefix="hudhud-metrics-"))
    os.execv(sys.executable, argv)


def beat_argv(args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", APP, "beat"]
    if not _has(args, "-l", "--loglevel"):
        argv += ["-l", BEAT_LOG_LEVEL]
    if not _has(args, "-s", "--schedule"):
        default = str(Path(tempfile.gettempdir()) / "hudhud-beat-schedule")
        argv += ["-s", os.environ.get("HUDHUD_BEAT_SCHEDULE", default)]
    return argv + args


def run_beat(args: list[str]) -> None:
    _settings_readable()
    os.execv(sys.executable, beat_argv(args))


def flower_argv(args: list[str]) -> list[str]:
    """Flower reads FLOWER_BASIC_AUTH (user:password) from the environment itself, which keeps
    the password out of the process list."""
    return [sys.executable, "-m", "celery", "-A", FLOWER_APP, "flower", *args]


def flower_refusal(args: list[str], env: dict[str, str]) -> str | None:
    """Why Flower must not start: it would listen beyond this machine (Flower's default address
    is every interface) with no password, and Flower can revoke tasks and stop workers."""
    if env.get("FLOWER_BASIC_AUTH") or env.get("FLOWER_AUTH") or _has(args, "--basic-auth", "--auth"):
        return None
    address = _value(args, "--address") or env.get("FLOWER_ADDRESS") or ""
    if address.startswith(LOOPBACK):
        return None
    return (
        f"hudhud flower: FLOWER_BASIC_AUTH (user:password) is not set, and Flower would listen on "
        f"{address or 'every address'} without a password: set it, or listen on this machine only "
        "(--address=127.0.0.1)"
    )


def run_flower(args: list[str]) -> None:
    _settings_readable()
    refusal = flower_refusal(args, dict(os.environ))
    if refusal is not None:
        print(refusal, file=sys.stderr)
        sys.exit(EX_CONFIG)
    os.execv(sys.executable, flower_argv(args))
