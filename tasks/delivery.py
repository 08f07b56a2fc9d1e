"""The delivery tasks: intake of foreign producers' sends, and the delivery of one message."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from celery import Task

from hudhud.config import get_settings
from hudhud.worker import messages, runtime, validation
from hudhud.worker.celery_app import RedactedRequest, app
from hudhud.worker.delivery import Delivery
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import op_token
from hudhud.worker.ledger.patience import patiently
from hudhud.worker.producer import Hudhud, IdempotencyConflict, NotFound, Refused, dispatch

log = logging.getLogger("hudhud.tasks")


def delivery() -> Delivery:
    settings = get_settings()
    return Delivery(runtime.ledger(settings), settings, runtime.provider_client)


@app.task(name="hudhud.deliver", bind=True, max_retries=None, ignore_result=True)
def deliver(self: Task, message_id: str, provider: str = "") -> str:
    """Claim the message, call its provider once, record what happened."""
    # Celery's own lines ("received", "succeeded") name the task id only: this one ties it to
    # the message, so a message's story can be found in the log by its id.
    log.info("hudhud.deliver[%s]: message %r", self.request.id, str(message_id)[:200])
    outcome = delivery().deliver(str(message_id), str(provider))
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.result


def intake(task: Task, channel: str, args: tuple[Any, ...], fields: dict[str, Any]) -> str:
    """Check a foreign producer's send; record it under the task id; deliver it now or later.

    Bad input ends as a complete `failed` record naming the field (no payload kept),
    never as an endless retry; so does input that trips a check in an unforeseen way.
    A task id that cannot be a message id (`validation.message_id`) is logged and the
    task discarded: nothing may be recorded under it.
    """
    settings = get_settings()
    message_id = str(task.request.id)
    try:
        validation.message_id(message_id, "task id")
    except InvalidInput as exc:
        log.warning("a %s send was discarded and nothing recorded (%s)", channel, exc)
        return "discarded"
    hudhud = Hudhud(settings, app=app)
    try:
        if args:
            raise InvalidInput("args", "positional arguments are not accepted: use keyword arguments")
        try:
            request = messages.build(channel, {k: v for k, v in fields.items() if v is not None}, settings)
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
        new = hudhud._new(request, message_id, None)
        op = op_token()  # one token for every try: a create Redis ran but did not answer is ours
        created = patiently(
            lambda: hudhud.ledger.create(new, now=time.time(), op=op),
            what=f"the record of send {message_id}",
            patience=settings.redis_patience,
        )
        if created.outcome == "conflict":
            raise IdempotencyConflict(created.id)
    except InvalidInput as exc:
        reason = str(exc)
        patiently(
            lambda: hudhud.ledger.record_failure(message_id, channel, reason, now=time.time()),
            what=f"the refusal of send {message_id}",
            patience=settings.redis_patience,
        )
        log.warning("send %s refused: %s", message_id, exc)
        return "failed"
    # `exists` and still queued: this task's first run recorded it and died before
    # delivering it (a worker killed, a Redis that answered too late); the claim keeps it once.
    fresh = created.outcome == "created" or (created.outcome == "exists" and created.status == "queued")
    if not fresh or created.status != "queued":
        if created.status == "scheduled" and created.outcome == "created" and request.due:
            due = request.due.timestamp()
            if due - time.time() <= hudhud.ledger.park_after:
                dispatch(app, message_id, request.channel, request.provider, due)
        return created.status
    outcome = delivery().deliver(message_id, request.provider)
    if outcome.retry_in is not None:
        # The first attempt asked for another (a 5xx, a rate limit): the delivery task takes over.
        dispatch(app, message_id, request.channel, request.provider, time.time() + outcome.retry_in)
    return outcome.result


class IntakeTask(Task):
    """An intake task: a producer's keyword named `self` is one more unknown field, refused
    by the intake like any other (Celery's default call wrapper would raise on it)."""

    Request = RedactedRequest

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


@app.task(name="hudhud.send_sms", bind=True, ignore_result=True, base=IntakeTask)
def send_sms(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake(self, "sms", args, fields)


@app.task(name="hudhud.send_email", bind=True, ignore_result=True, base=IntakeTask)
def send_email(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake(self, "email", args, fields)


@app.task(name="hudhud.send_voice", bind=True, ignore_result=True, base=IntakeTask)
def send_voice(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake(self, "voice", args, fields)


@app.task(name="hudhud.retry_email", bind=True, ignore_result=True)
def retry_email(self: Task, id: str) -> str:
    # The new message's id is the task's: a redelivered task finds it and makes no second one.
    try:
        return Hudhud(app=app).retry_email(str(id), new_id=str(self.request.id)).id
    except (NotFound, Refused, InvalidInput) as exc:
        log.warning("retry of %s refused: %s", id, exc)
        return "refused"


@app.task(name="hudhud.cancel", ignore_result=True)
def cancel(id: str) -> str:
    try:
        return Hudhud(app=app).cancel(str(id)).status
    except (NotFound, Refused) as exc:
        log.warning("cancel of %s refused: %s", id, exc)
        return "refused"
