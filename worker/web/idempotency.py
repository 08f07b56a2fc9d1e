"""`Idempotency-Key` (or the body's `key`): one request recorded per key.

The same key with the same request answers the first answer again (`Idempotency-Replay:
true`); the same key with another request is refused (422 naming `key`); while the first
request with the key is still being recorded, others wait (409 with `Retry-After`). Only a
successful answer is kept: a request refused or failed frees its key for the next try.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.replies import Found, Replies
from hudhud.worker.producer import validation as v

HEADER = "idempotency-key"
REPLAY = "Idempotency-Replay"
RETRY_AFTER = "1"
MAX_KEY = 200


@dataclass(frozen=True)
class Answer:
    """What a route answers: a status, a JSON body, and whether it repeats an earlier one."""

    status: int
    body: Mapping[str, Any]
    replayed: bool = False

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


def _response(status: int, body: bytes, replayed: bool) -> Response:
    headers = {REPLAY: "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error(field: str, message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def key_of(request: Request, body_key: Any) -> str | None:
    """The request's idempotency key: the header's or the body's (both given: the same)."""
    header = request.headers.get(HEADER)
    given = [value for value in (header, body_key) if value not in (None, "")]
    if not given:
        return None
    if len(given) == 2 and given[0] != given[1]:
        raise InvalidInput("key", "differs from the Idempotency-Key header: give one, or the same")
    return v.text(given[0], "key", max_len=MAX_KEY, single_line=True)


def digest(route: str, body: Mapping[str, Any]) -> str:
    """What makes two requests the same: the route and the body (whichever way it names its
    key, and in whatever order its fields come)."""
    canonical = json.dumps(
        {"route": route, "body": {k: val for k, val in body.items() if k != "key"}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


async def once(
    replies: Replies,
    key: str | None,
    request_digest: str,
    action: Callable[[], Awaitable[Answer]],
    *,
    hold: int,
) -> Response:
    """Run `action` unless `key` was seen: then the first answer, or why not."""
    if key is None:
        answer = await action()
        return _response(answer.status, answer.encoded(), answer.replayed)
    claim = await run_in_threadpool(replies.claim, key, request_digest, hold=hold)
    if claim.found is Found.OTHER_REQUEST:
        return error("key", "was already used for a different request", 422)
    if claim.found is Found.IN_FLIGHT:
        return error(
            "key", "is in use by a request still being recorded: try again", 409, {"Retry-After": RETRY_AFTER}
        )
    if claim.found is Found.ANSWERED:
        return _response(claim.status, claim.body, True)
    try:
        answer = await action()
    except BaseException:
        with contextlib.suppress(Exception):  # the request's own error is the one to answer
            await run_in_threadpool(replies.free, claim)
        raise
    body = answer.encoded()
    if 200 <= answer.status < 300:
        await run_in_threadpool(replies.keep, claim, answer.status, body)
    else:
        await run_in_threadpool(replies.free, claim)
    return _response(answer.status, body, answer.replayed)
