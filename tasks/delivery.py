"""The delivery tasks: intake of foreign producers' sends, and the delivery of one message.
Their work lives in `hudhud.worker.delivery.intake`; these are its Celery bindings."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task

from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import RedactedRequest, app
from hudhud.worker.delivery import intake
from hudhud.worker.ledger.calls import fields_of
from hudhud.worker.ledger.status import DeliveryOutcome

log = logging.getLogger("hudhud.tasks")


@app.task(name="hudhud.deliver", bind=True, max_retries=None, ignore_result=True)
def deliver(self: Task, message_id: str, provider: str = "") -> str:
    """Claim the message, call its provider once, record what happened."""
    # Celery's own lines ("received", "succeeded") name the task id only: this one ties it to
    # the message, so a message's story can be found in the log by its id.
    log.info("hudhud.deliver[%s]: message %r", self.request.id, str(message_id)[:200])
    outcome = intake.deliver(app, str(message_id), str(provider))
    return delivery_result(outcome, str(message_id)[:200])


def delivery_result(outcome: str, message_id: str) -> str:
    """What a delivery's task answers (Flower's result column, the worker's "succeeded" line):
    the outcome first, then the message, e.g. `rejected: message 42`. The task succeeds
    whatever became of the message (a refusal is the provider's answer, not a fault of the
    worker; the ledger holds the details): in Flower, `result:rejected` finds the refused ones.
    A hold also names the paused provider and the kind of its pause, or the top-up a send
    too large for the balance waits for."""
    shown = f"{outcome}: message {message_id}"
    if outcome == DeliveryOutcome.HELD:
        return f"{shown}: {_pause_of(message_id)}"
    return shown


def _pause_of(message_id: str) -> str:
    """`taqnyat paused (balance)`: the pause the message waits for, read after the fact."""
    try:
        ledger = runtime.ledger()
        provider, short_since = fields_of(ledger, message_id, "provider", "short_since")
        short = bool(short_since)
        reason = ledger.pause_reason(provider) if provider and not short else None
    except (redis.RedisError, ValueError):  # a Redis that is gone, a pause that is not JSON
        return "its provider is paused"
    if short:
        return f"waits for a top-up of {provider}"
    kind = (reason or {}).get("kind")
    return f"{provider or 'its provider'} paused" + (f" ({kind})" if kind else "")


class IntakeTask(Task):
    """An intake task: a producer's keyword named `self` is one more unknown field, refused
    by the intake like any other (Celery's default call wrapper would raise on it)."""

    Request = RedactedRequest

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


@app.task(name="hudhud.send_sms", bind=True, ignore_result=True, base=IntakeTask)
def send_sms(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake.intake(app, str(self.request.id), "sms", args, fields)


@app.task(name="hudhud.send_email", bind=True, ignore_result=True, base=IntakeTask)
def send_email(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake.intake(app, str(self.request.id), "email", args, fields)


@app.task(name="hudhud.send_voice", bind=True, ignore_result=True, base=IntakeTask)
def send_voice(self: Task, /, *args: Any, **fields: Any) -> str:
    return intake.intake(app, str(self.request.id), "voice", args, fields)


@app.task(name="hudhud.retry_email", bind=True, ignore_result=True)
def retry_email(self: Task, id: str) -> str:
    return intake.retry_email(app, str(id), str(self.request.id))


@app.task(name="hudhud.cancel", ignore_result=True)
def cancel(id: str) -> str:
    return intake.cancel(app, str(id))
