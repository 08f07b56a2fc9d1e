"""Start Celery's worker, beat and Flower on hudhud's app, each in its own program.

The worker runs `python -m celery` (so the gevent pool is patched before anything else is
imported); hudhud's defaults come first and the user's arguments override them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

APP = "worker.celery_app"
DEFAULT_QUEUES = "sms,email,voice,hudhud,celery"  # celery: a producer that names no queue
DEFAULT_POOL = "gevent"
DEFAULT_CONCURRENCY = 50


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
        argv += ["-c", str(DEFAULT_CONCURRENCY)]
    if not _has(args, "-l", "--loglevel"):
        argv += ["-l", "INFO"]
    argv += ["--without-gossip", "--without-mingle"]
    if _task_events() and not _has(args, "-E", "--task-events"):
        argv.append("-E")  # the command line's default would override the setting
    return argv + args


def _task_events() -> bool:
    from config import get_settings

    try:
        return bool(get_settings().task_events)
    except Exception:
        return False


def concurrency_of(argv: list[str]) -> str:
    return _value(argv, "-c", "--concurrency") or str(DEFAULT_CONCURRENCY)


def run_worker(args: list[str]) -> None:
    argv = worker_argv(args)
    os.environ.setdefault("HUDHUD_CONCURRENCY", concurrency_of(argv))
    os.execv(sys.executable, argv)


def beat_argv(args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", APP, "beat"]
    if not _has(args, "-l", "--loglevel"):
        argv += ["-l", "INFO"]
    if not _has(args, "-s", "--schedule"):
        default = str(Path(tempfile.gettempdir()) / "hudhud-beat-schedule")
        argv += ["-s", os.environ.get("HUDHUD_BEAT_SCHEDULE", default)]
    return argv + args


def run_beat(args: list[str]) -> None:
    os.execv(sys.executable, beat_argv(args))


def flower_argv(args: list[str]) -> list[str]:
    """Flower reads FLOWER_BASIC_AUTH (user:password) from the environment itself, which keeps
    the password out of the process list."""
    return [sys.executable, "-m", "celery", "-A", APP, "flower", *args]


def run_flower(args: list[str]) -> None:
    os.execv(sys.executable, flower_argv(args))
