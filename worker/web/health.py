"""`/healthz` (the process answers) and `/readyz` (and its Redis does)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hudhud.worker import runtime
from hudhud.worker.ledger import inspect

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
