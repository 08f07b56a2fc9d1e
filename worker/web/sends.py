"""The HTTP API's calls: sends, batches, campaigns, a message's record, cancel and retry.

Every body is a JSON object of the CLI's fields, checked by the producer (`messages`): a bad
field is a 422 naming it, and nothing is recorded. A single send goes through `gather` (many
at once share a round trip to Redis); a batch or a campaign runs in a thread.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from hudhud.worker import runtime
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.replies import Replies
from hudhud.worker.producer import validation as v
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict, Receipt
from hudhud.worker.producer.messages import CHANNELS
from hudhud.worker.web import auth, gather, schemas
from hudhud.worker.web.idempotency import MAX_KEY, Answer, digest, key_of, once

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require_key)])

MAX_BATCH = 10_000
SEND_HOLD = 60  # seconds a key stays claimed by a send still being recorded
BULK_HOLD = 900  # ... by a batch or a campaign (a million recipients take a while)
KEY_USED = "was already used for a different request"
LARGE_BODY = 256 * 1024  # bytes: parsing or hashing a larger body runs in a thread
T = TypeVar("T")


class UnsupportedMediaType(Exception):
    """The body is not `application/json`."""


# --- the request ---------------------------------------------------------------------------


def _hudhud(request: Request) -> Hudhud:
    state = request.app.state
    if getattr(state, "hudhud", None) is None:
        state.hudhud = Hudhud(state.settings)
    hudhud: Hudhud = state.hudhud
    return hudhud


def _replies(request: Request) -> Replies:
    state = request.app.state
    if getattr(state, "replies", None) is None:
        settings = state.settings
        state.replies = Replies(runtime.ledger(settings), keep_seconds=settings.idempotency_ttl)
    replies: Replies = state.replies
    return replies


def _not_a_number(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def _parsed(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_not_a_number)


def _size(request: Request) -> int:
    return int(getattr(request.state, "body_size", 0))


async def _off_the_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`, in a thread when it is about a large body (so other requests go on)."""
    if size > LARGE_BODY:
        return await run_in_threadpool(work, *args)
    return work(*args)


async def _fields(request: Request) -> dict[str, Any]:
    """The body: a JSON object (`application/json`)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType()
    raw = await request.body()
    request.state.body_size = len(raw)
    try:
        value = await _off_the_loop(len(raw), _parsed, raw)
    except (ValueError, RecursionError):
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("body", "must be a JSON object")
    return value


def _channel(value: Any) -> str:
    if value not in CHANNELS:
        raise InvalidInput("channel", f"must be {', '.join(CHANNELS[:-1])} or {CHANNELS[-1]}")
    return str(value)


def _known(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in body:
        if name not in allowed:
            shown = v.field_name(name)
            raise InvalidInput(shown or "body", "is not a known field")


def _key_used() -> InvalidInput:
    """The ledger's refusal of a key used before, without the other request's message id."""
    return InvalidInput("key", KEY_USED)


async def _idempotent(
    request: Request,
    route: str,
    body: Mapping[str, Any],
    key: str | None,
    action: Callable[[], Awaitable[Answer]],
    *,
    hold: int,
) -> Response:
    request_digest = await _off_the_loop(_size(request), digest, route, body) if key else ""
    return await once(_replies(request), key, request_digest, action, hold=hold)


# --- sends -----------------------------------------------------------------------------------


async def _send_one(request: Request, channel: str) -> Response:
    fields = await _fields(request)
    key = key_of(request, fields.get("key"))
    if key:
        fields["key"] = key  # the message's own key too: the ledger refuses a second one
    hudhud = _hudhud(request)

    async def action() -> Answer:
        try:
            receipt = await gather.submit_one(hudhud, channel, fields)
        except IdempotencyConflict:
            raise _key_used() from None
        return Answer(202, {"id": receipt.id, "status": receipt.status}, replayed=receipt.duplicate)

    return await _idempotent(request, f"send:{channel}", fields, key, action, hold=SEND_HOLD)


def _sender_of(channel: str) -> Callable[[Request], Awaitable[Response]]:
    async def send(request: Request) -> Response:
        return await _send_one(request, channel)

    return send


for _one_channel, _summary, _schema in (
    ("sms", "Send an SMS", schemas.SmsSend),
    ("email", "Send an email", schemas.EmailSend),
    ("voice", "Place a voice call", schemas.VoiceSend),
):
    router.add_api_route(
        f"/messages/{_one_channel}",
        _sender_of(_one_channel),
        methods=["POST"],
        operation_id=f"send_{_one_channel}",
        tags=["messages"],
        summary=_summary,
        status_code=202,
        openapi_extra=schemas.request_body(_schema),
        responses=schemas.answers(schemas.Receipt, 202, 409, 413, 415),
    )


def _keyed_items(items: list[Any], key: str) -> list[Any]:
    """A batch's key given to each of its messages that has none (`{key}/{index}`), so the
    ledger records each once even if the batch is sent again after its answer was lost."""
    if len(f"{key}/{len(items) - 1}") > MAX_KEY:
        raise InvalidInput("key", f"is too long for a batch of {len(items)} messages")
    return [
        {**item, "key": f"{key}/{index}"} if isinstance(item, Mapping) and not item.get("key") else item
        for index, item in enumerate(items)
    ]


def _batch_items(body: Mapping[str, Any]) -> list[Any]:
    items = body.get("messages")
    if not isinstance(items, list):
        raise InvalidInput("messages", "must be a list of objects" if items is not None else "is required")
    if not items:
        raise InvalidInput("messages", "needs at least one message")
    if len(items) > MAX_BATCH:
        raise InvalidInput("messages", f"has {len(items)} messages, more than {MAX_BATCH}: split the batch")
    return items


def _in_batch(field: str) -> str:
    """The producer API's `items[i]...` as the HTTP API's body names it: `messages[i]...`."""
    return "messages" + field.removeprefix("items")


def _batch_answer(receipts: list[Receipt]) -> Answer:
    replayed = all(r.duplicate for r in receipts)
    return Answer(202, {"ids": [r.id for r in receipts]}, replayed=replayed)


@router.post(
    "/messages/batch",
    operation_id="send_batch",
    tags=["messages"],
    summary="Many sends on one channel, all checked first",
    status_code=202,
    openapi_extra=schemas.request_body(schemas.BatchSend),
    responses=schemas.answers(schemas.BatchReceipt, 202, 409, 413, 415),
)
async def send_batch(request: Request) -> Response:
    body = await _fields(request)
    _known(body, ("channel", "messages", "key"))
    channel = _channel(body.get("channel"))
    items = _batch_items(body)
    key = key_of(request, body.get("key"))
    if key:
        items = _keyed_items(items, key)
    hudhud = _hudhud(request)

    async def action() -> Answer:
        try:
            receipts = await run_in_threadpool(hudhud.send_many, channel, items)
        except IdempotencyConflict as exc:  # nothing of the batch was recorded
            recorded = f"{KEY_USED}: nothing of the batch was recorded"
            raise InvalidInput(_in_batch(exc.field), recorded) from None
        except InvalidInput as exc:
            if exc.field.startswith("items"):
                raise InvalidInput(_in_batch(exc.field), exc.message) from None
            raise
        return _batch_answer(receipts)

    return await _idempotent(request, "batch", body, key, action, hold=BULK_HOLD)


@router.post(
    "/campaigns",
    operation_id="send_campaign",
    tags=["campaigns"],
    summary="One message to many recipients",
    status_code=202,
    openapi_extra=schemas.request_body(schemas.CampaignSend),
    responses=schemas.answers(schemas.CampaignReceipt, 202, 409, 413, 415),
)
async def send_campaign(request: Request) -> Response:
    body = await _fields(request)
    channel = _channel(body.get("channel"))
    fields = {name: value for name, value in body.items() if name != "channel"}
    key = key_of(request, fields.get("key"))
    if key:
        fields["key"] = key
    hudhud = _hudhud(request)

    async def action() -> Answer:
        try:
            receipt = await run_in_threadpool(hudhud.send_campaign, channel, fields)
        except IdempotencyConflict:
            raise _key_used() from None
        answer = {
            "id": receipt.id,
            "status": receipt.status,
            "recipients": receipt.recipients,
            "batches": receipt.batches,
            "suppressed": receipt.suppressed,
        }
        return Answer(202, answer, replayed=receipt.duplicate)

    return await _idempotent(request, "campaign", body, key, action, hold=BULK_HOLD)


# --- one message -----------------------------------------------------------------------------


@router.get(
    "/messages/{message_id}",
    operation_id="get_message",
    tags=["messages"],
    summary="A message's record, as `hudhud status --json` prints it",
    responses=schemas.answers(schemas.MessageRecord, 200, 404),
)
async def message_status(message_id: str, request: Request) -> Response:
    v.message_id(message_id, "id")
    record = await run_in_threadpool(_hudhud(request).status, message_id)
    return Response(json.dumps(record, default=str, ensure_ascii=False), media_type="application/json")


@router.post(
    "/messages/{message_id}/cancel",
    operation_id="cancel_message",
    tags=["messages"],
    summary="Cancel a message not yet handed to a provider",
    responses=schemas.answers(schemas.Receipt, 200, 404, 409),
)
async def cancel(message_id: str, request: Request) -> Response:
    v.message_id(message_id, "id")
    key = key_of(request, None)
    hudhud = _hudhud(request)

    async def action() -> Answer:
        receipt = await run_in_threadpool(hudhud.cancel, message_id)
        return Answer(200, {"id": receipt.id, "status": receipt.status})

    return await _idempotent(request, "cancel", {"id": message_id}, key, action, hold=SEND_HOLD)


def _retry_id(hudhud: Hudhud, message_id: str, key: str) -> str:
    """The id of the retry of `message_id` asked with `key`: the same on every try with the
    key, so a retry recorded before its answer was kept is not made twice. Made from the keyed
    key, so the id does not tell the key."""
    keyed = hudhud.ledger.keyed(digest("retry", {"id": message_id, "idempotency_key": key}))
    return str(uuid.uuid5(uuid.NAMESPACE_OID, keyed))


@router.post(
    "/messages/{message_id}/retry",
    operation_id="retry_message",
    tags=["messages"],
    summary="Ask the provider to retry a bounced, failed or rejected email (a new, linked message)",
    status_code=202,
    responses=schemas.answers(schemas.RetryReceipt, 202, 404, 409),
)
async def retry(message_id: str, request: Request) -> Response:
    v.message_id(message_id, "id")
    key = key_of(request, None)
    hudhud = _hudhud(request)

    def retry_once() -> Receipt:
        new_id = _retry_id(hudhud, message_id, key) if key else None
        return hudhud.retry_email(message_id, new_id=new_id)

    async def action() -> Answer:
        receipt = await run_in_threadpool(retry_once)
        return Answer(202, {"id": receipt.id, "status": receipt.status, "retry_of": message_id})

    return await _idempotent(request, "retry", {"id": message_id}, key, action, hold=SEND_HOLD)
