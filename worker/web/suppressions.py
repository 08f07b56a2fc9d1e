"""The HTTP API's suppression list: add, remove, check and list, by number or address.

No number or address is ever in a path (paths reach access logs): values travel in bodies,
and the list answers with keyed fingerprints and positions.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from hudhud.worker import runtime
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.suppression import PAGE, Source, Suppressions
from hudhud.worker.web import auth, schemas
from hudhud.worker.web.sends import _fields, _known

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require_key)], tags=["suppressions"])


class SuppressionValues(BaseModel):
    to: list[str] = Field(
        description="numbers (international format) or addresses", examples=[["966500000000"]]
    )
    reason: str | None = Field(None, max_length=200, description="why (no personal data)")


class SuppressionChange(BaseModel):
    changed: int = Field(description="values added (or removed)")
    unchanged: int = Field(description="values already listed (or not listed)")
    values: list[dict[str, Any]]


class SuppressionPage(BaseModel):
    count: int
    cursor: int = Field(description="the next page's cursor (0: no more)")
    entries: list[dict[str, Any]]


_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SuppressionValues.model_json_schema()}},
    }
}


def _post(path: str, operation_id: str, summary: str, answer: type[BaseModel] | None) -> Any:
    """A route that takes `SuppressionValues` in its body."""
    return router.post(
        path,
        operation_id=operation_id,
        summary=summary,
        openapi_extra=_BODY,
        responses=schemas.answers(answer, 200, 415),
    )


def _list(request: Request) -> Suppressions:
    return Suppressions(runtime.ledger(request.app.state.settings))


async def _values(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    body = await _fields(request)
    _known(body, allowed)
    return body


def _change(flags: list[bool], key: str) -> dict[str, Any]:
    rows = [{"index": i, key: flag} for i, flag in enumerate(flags)]
    return {"changed": sum(flags), "unchanged": len(flags) - sum(flags), "values": rows}


@_post(
    "/suppressions", "add_suppressions", "Put numbers or addresses on the suppression list", SuppressionChange
)
async def add(request: Request) -> dict[str, Any]:
    body = await _values(request, ("to", "reason"))
    suppressions = _list(request)
    added = await run_in_threadpool(
        lambda: suppressions.add(
            body.get("to"), reason=body.get("reason"), source=Source.API, now=time.time()
        )
    )
    return _change(added, "added")


@_post(
    "/suppressions/remove",
    "remove_suppressions",
    "Take numbers or addresses off the suppression list",
    SuppressionChange,
)
async def remove(request: Request) -> dict[str, Any]:
    body = await _values(request, ("to",))
    removed = await run_in_threadpool(_list(request).remove, body.get("to"))
    return _change(removed, "removed")


@_post(
    "/suppressions/check",
    "check_suppressions",
    "Whether each number or address is on the suppression list",
    None,
)
async def check(request: Request) -> dict[str, Any]:
    body = await _values(request, ("to",))
    found = await run_in_threadpool(_list(request).contains, body.get("to"))
    rows = [{"index": i, "listed": e is not None, **(e.as_dict() if e else {})} for i, e in enumerate(found)]
    return {"listed": sum(e is not None for e in found), "values": rows}


@router.get(
    "/suppressions",
    operation_id="list_suppressions",
    summary="A page of the suppression list (fingerprints, never numbers or addresses)",
    responses=schemas.answers(SuppressionPage, 200),
)
async def listing(request: Request, cursor: str = "0") -> dict[str, Any]:
    if not cursor.isdigit():
        raise InvalidInput("cursor", "must be a cursor this call gave (digits)")
    suppressions = _list(request)
    following, entries = await run_in_threadpool(suppressions.page, int(cursor), PAGE)
    total = await run_in_threadpool(suppressions.count)
    return {"count": total, "cursor": following, "entries": [e.as_dict() for e in entries]}
