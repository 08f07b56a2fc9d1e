"""`hudhud api`: the ASGI application on uvicorn (httptools and uvloop where installed)."""

from __future__ import annotations

import gc
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8030
# Requests make short-lived objects by the thousand: collecting the youngest generation
# every 700 allocations (CPython's default) costs CPU and, now and then, a pause of a full
# collection through every module and object the application holds.
YOUNG_THRESHOLD = 5000


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    config = uvicorn.Config(
        "hudhud.worker.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,  # a request line can carry an id or a key: nothing is logged per request
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    config.load()
    _settle()
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        sys.exit(STARTUP_FAILURE)


def _settle() -> None:
    """Keep what lives as long as the process (the application, the broker's app every send
    uses, their modules) out of every later collection, and collect the young less often."""
    import hudhud.worker.broker.celery_app  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
