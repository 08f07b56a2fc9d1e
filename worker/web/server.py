"""`hudhud api`: the ASGI application on uvicorn (httptools and uvloop where installed)."""

from __future__ import annotations

import uvicorn

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8030


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    uvicorn.run(
        "hudhud.worker.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,  # a request line can carry an id or a key: nothing is logged per request
        server_header=False,
        timeout_graceful_shutdown=10,
    )
