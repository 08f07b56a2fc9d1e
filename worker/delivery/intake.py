"""What the delivery tasks do: take in a foreign producer's send, deliver one recorded message.

A foreign producer (any Celery app) sends `hudhud.send_sms`/`send_email`/`send_voice` by name
with the send's fields as keyword arguments; the task's id becomes the message id. The intake
checks the fields as the producer API does, records the message and delivers it at once (or
enqueues it for its due time). `tasks/delivery.py` binds these functions to Celery.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from celery import Celery

from hudhud.config import Settings, get_settings
from hudhud.worker import runtime
from hudhud.worker.broker.enqueue import DeliveryTask, enqueue
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import Created, Status, lanes, op_token
from hudhud.worker.ledger.patience import patiently
from hudhud.worker.ledger.status import Lane
from hudhud.worker.producer import messages, validation
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict, NotFound, Refused

log = logging.getLogger("hudhud.tasks")


def delivery(settings: Settings | None = None) -> Delivery:
    cfg = settings or get_settings()
    return Delivery(runtime.ledger(cfg), cfg, runtime.provider_client)


def deliver(app: Celery, message_id: str, provider: str) -> str:
    """Claim the message, call its provider once, record what happened; a retry the outcome
    asks for is enqueued again (a short wait as an ETA task, a long one was parked)."""
    settings = get_settings()
    outcome = delivery(settings).deliver(message_id, provider)
    if outcome.retry_in is not None:
        ledger = runtime.ledger(settings)
        channel = ledger.field(message_id, "channel")
        lane = lanes.lane_or_default(ledger.field(message_id, "lane"))
        retry = DeliveryTask(message_id, provider, channel, time.time() + outcome.retry_in, lane)
        _enqueue_patiently(app, settings, retry)
    return outcome.result


def intake(app: Celery, task_id: str, channel: str, args: tuple[Any, ...], fields: Mapping[str, Any]) -> str:
    """Check a foreign producer's send; record it under the task id; deliver it now or later.

    Bad input ends as a complete `failed` record naming the field (no payload kept),
    never as an endless retry; so does input that trips a check in an unforeseen way.
    A task id that cannot be a message id (`validation.message_id`) is logged and the
    task discarded: nothing may be recorded under it.
    """
    settings = get_settings()
    message_id = str(task_id)
    try:
        validation.message_id(message_id, "task id")
    except InvalidInput as exc:
        log.warning("a %s send was discarded and nothing recorded (%s)", channel, exc)
        return "discarded"
    hudhud = Hudhud(settings, app=app)
    try:
        request = _checked(channel, args, fields, message_id, settings)
        created = _record(hudhud, request, message_id, settings)
    except InvalidInput as exc:
        _refuse(hudhud, message_id, channel, str(exc), settings)
        log.warning("send %s refused: %s", message_id, exc)
        return Status.FAILED
    # `exists` and still queued: this task's first run recorded it and died before
    # delivering it (a worker killed, a Redis that answered too late); the claim keeps it once.
    fresh = created.outcome == "created" or (created.outcome == "exists" and created.status == Status.QUEUED)
    if not fresh or created.status != Status.QUEUED:
        if created.status == Status.SCHEDULED and created.outcome == "created" and request.due:
            at = request.due.timestamp()
            due = DeliveryTask(message_id, request.provider, request.channel, at, request.lane)
            _enqueue_patiently(app, settings, due)
        return created.status
    if request.lane == Lane.BULK:
        # intake runs on the transactional queue: a bulk send waits its turn in its own lane
        bulk = DeliveryTask(message_id, request.provider, request.channel, None, request.lane)
        _enqueue_patiently(app, settings, bulk)
        return created.status
    outcome = delivery(settings).deliver(message_id, request.provider)
    if outcome.retry_in is not None:
        # The first attempt asked for another (a 5xx, a rate limit): the delivery task takes over.
        again = time.time() + outcome.retry_in
        retry = DeliveryTask(message_id, request.provider, request.channel, again, request.lane)
        _enqueue_patiently(app, settings, retry)
    return outcome.result


def retry_email(app: Celery, message_id: str, task_id: str) -> str:
    """A foreign producer's retry of a Taifa email; the new message's id is the task's, so a
    redelivered task finds it and makes no second one."""
    try:
        return Hudhud(app=app).retry_email(message_id, new_id=task_id).id
    except (NotFound, Refused, InvalidInput) as exc:
        log.warning("retry of %s refused: %s", message_id, exc)
        return "refused"


def cancel(app: Celery, message_id: str) -> str:
    try:
        return Hudhud(app=app).cancel(message_id).status
    except (NotFound, Refused) as exc:
        log.warning("cancel of %s refused: %s", message_id, exc)
        return "refused"


def _checked(
    channel: str, args: tuple[Any, ...], fields: Mapping[str, Any], message_id: str, settings: Settings
) -> messages.SendRequest:
    """The send request the fields make; InvalidInput naming the field when they make none."""
    if args:
        raise InvalidInput("args", "positional arguments are not accepted: use keyword arguments")
    try:
        return messages.build(channel, {k: v for k, v in fields.items() if v is not None}, settings)
    except InvalidInput:
        raise
    except Exception as exc:  # a check that broke on input it did not expect
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "send %s: checking its fields raised %s at %s:%s",
            message_id,
            type(exc).__name__,
            where.filename,
            where.lineno,
        )
        raise InvalidInput("fields", f"could not be checked ({type(exc).__name__})") from None


def _record(hudhud: Hudhud, request: messages.SendRequest, message_id: str, settings: Settings) -> Created:
    new = hudhud._new(request, message_id, None)
    op = op_token()  # one token for every try: a create Redis ran but did not answer is ours
    created: Created = patiently(
        lambda: hudhud.ledger.create(new, now=time.time(), op=op),
        what=f"the record of send {message_id}",
        patience=settings.redis_patience,
    )
    if created.outcome == "conflict":
        raise IdempotencyConflict(created.id)
    return created


def _refuse(hudhud: Hudhud, message_id: str, channel: str, reason: str, settings: Settings) -> None:
    patiently(
        lambda: hudhud.ledger.record_failure(message_id, channel, reason, now=time.time()),
        what=f"the refusal of send {message_id}",
        patience=settings.redis_patience,
    )


def _enqueue_patiently(app: Celery, settings: Settings, task: DeliveryTask) -> None:
    """Enqueue, waiting out a Redis that refuses writes for a while: the task is kept rather
    than left to the sweep of stale queued messages."""
    ledger = runtime.ledger(settings)
    patiently(
        lambda: enqueue(app, ledger, task),
        what=f"the delivery task of {task.message_id}",
        patience=settings.redis_patience,
    )
