"""The sandbox application: Taqnyat at the root, Taifa Mail under /v1/emails, admin under /_sandbox."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from hudhud.worker.sandbox import admin, taifa, taifa_webhooks, taqnyat, taqnyat_forms
from hudhud.worker.sandbox.faults import counted_answers, provider_faults
from hudhud.worker.sandbox.state import DEFAULT_TAIFA_KEY, DEFAULT_TAQNYAT_TOKEN, STATE, State

MAX_BODY_BYTES = 128 * 1024 * 1024


def build_app(
    knobs: dict[str, Any] | None = None, taqnyat_token: str | None = None, taifa_api_key: str | None = None
) -> web.Application:
    """A ready application; tokens default to TAQNYAT_TOKEN / TAIFA_API_KEY, then the defaults.

    Raises `hudhud.worker.sandbox.knobs.KnobError` (a ValueError) for an unknown knob or a bad value.
    """
    state = State.create(
        knobs,
        taqnyat_token or os.environ.get("TAQNYAT_TOKEN") or DEFAULT_TAQNYAT_TOKEN,
        taifa_api_key or os.environ.get("TAIFA_API_KEY") or DEFAULT_TAIFA_KEY,
        extra_sender=os.environ.get("TAQNYAT_SENDER") or None,
    )
    app = web.Application(middlewares=[counted_answers, provider_faults], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    admin.add_routes(app)
    taifa.add_routes(app)
    taifa_webhooks.add_routes(app)
    taqnyat.add_routes(app)
    taqnyat_forms.add_routes(app)
    return app


def run(
    host: str = "127.0.0.1",
    port: int = 8025,
    knobs: dict[str, Any] | None = None,
    *,
    access_log: bool = False,
) -> None:
    """Serve until interrupted (blocking)."""
    app = build_app(knobs)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=web.access_logger if access_log else None,
        print=lambda *_: print(f"hudhud sandbox on http://{host}:{port}", flush=True),
        shutdown_timeout=1.0,
        handler_cancellation=True,
        backlog=1024,
    )
