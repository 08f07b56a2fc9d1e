"""`/healthz` (the process answers), `/readyz` (and its Redis does) and `/metrics` (Prometheus:
the ledger's figures and this process's own, `hudhud.worker.ops.metrics`). None needs a key."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.ledger import inspect
from hudhud.worker.ops import metrics

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(inspect.ping, runtime.ledger(request.app.state.settings))
    except (redis.RedisError, OSError) as exc:
        return JSONResponse({"status": "unready", "redis": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics_page() -> Response:
    return Response(await run_in_threadpool(metrics.exposition), media_type=metrics.CONTENT_TYPE)


def install_metrics(settings: Settings) -> None:
    """The ledger's collector, once per process, with these settings."""
    metrics.register("ledger", metrics.LedgerCollector(lambda: runtime.ledger(settings), settings))
