"""`POST /webhooks/<provider>`: a provider's reports in (no API key: the provider module
checks the call's signature or pass phrase). Answered only once what it reports is recorded."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from hudhud.worker import runtime
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Inbound, InboundAnswer

router = APIRouter(tags=["provider webhooks"])
MAX_WEBHOOK_BODY = 1024 * 1024


def _unknown() -> JSONResponse:
    return JSONResponse(
        {"error": {"field": "provider", "message": "is not a provider that calls webhooks"}}, status_code=404
    )


async def _body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it grows past `limit` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(answer: InboundAnswer) -> Response:
    if isinstance(answer.body, str):
        return PlainTextResponse(answer.body, status_code=answer.status)
    return JSONResponse(answer.body, status_code=answer.status)


@router.post("/webhooks/{provider}", operation_id="provider_webhook")
@router.get("/webhooks/{provider}", operation_id="provider_webhook_by_query")
async def webhook(provider: str, request: Request) -> Response:
    """A provider's report: a POST, or a GET carrying it in the query (the provider module
    reads either)."""
    if not registry.known(provider) or not registry.get(provider).takes_webhooks:
        return _unknown()
    body = await _body(request, MAX_WEBHOOK_BODY)
    if body is None:
        return JSONResponse({"error": {"field": "body", "message": "is too large"}}, status_code=413)
    inbound = Inbound(
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=body,
    )
    settings = request.app.state.settings
    tracker = Tracker(runtime.ledger(settings), provider)
    answer = await run_in_threadpool(registry.get(provider).receive, inbound, tracker, settings, time.time())
    return _answer(answer)
