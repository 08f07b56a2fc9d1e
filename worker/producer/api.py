"""The Python producer API: check a send, record it, enqueue its delivery.

    from hudhud.worker.producer.api import Hudhud

    hudhud = Hudhud()                      # settings from the environment / .env
    receipt = hudhud.send_sms(to=["966500000000"], body="Your code is 4831", key="otp-81-1")
    receipt.id, receipt.status             # ('6f1c…', 'queued')

Bad input raises `hudhud.worker.errors.InvalidInput` naming the field, before anything is
recorded. Only the message id travels through the broker. A Redis that is out of memory
raises `hudhud.worker.errors.RedisFull` (a `redis.RedisError`); other Redis errors are redis-py's.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import redis
from celery import Celery
from kombu.exceptions import KombuError

from hudhud.config import Settings, get_settings
from hudhud.worker import runtime
from hudhud.worker.broker import enqueue, publish
from hudhud.worker.errors import InvalidInput, RedisFull
from hudhud.worker.ledger import Created, Ledger, NewMessage, Status
from hudhud.worker.producer import campaign, messages, validation
from hudhud.worker.producer.public import public_record
from hudhud.worker.providers import registry

DELIVER_TASK = publish.DELIVER_TASK
BULK_CHUNK = 500


class IdempotencyConflict(InvalidInput):
    """The idempotency key was used before for a different request (`field` names it: `key`,
    or `items[i].key` in a batch, which then records nothing)."""

    def __init__(self, existing_id: str, field: str = "key") -> None:
        self.existing_id = existing_id
        super().__init__(field, f"was already used for a different request (message {existing_id})")


class NotFound(LookupError):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(f"no message with id {message_id}")


class NotARecipient(NotFound):
    """The message exists, and the recipient asked about is not one of its campaign's
    recipients (or it is a single message, not a campaign). The recipient is not named."""

    def __init__(self, message_id: str, *, is_campaign: bool) -> None:
        self.message_id = message_id
        LookupError.__init__(
            self,
            f"campaign {message_id} has no such recipient"
            if is_campaign
            else f"{message_id} is a single message, not a campaign",
        )


class Refused(RuntimeError):
    """The message is in a state that does not allow the operation."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def out_of_memory(exc: BaseException) -> bool:
    """Whether Redis's OOM refusal is the cause (kombu wraps it in its OperationalError)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, redis.exceptions.OutOfMemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _redis_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A Redis that is out of memory raises `RedisFull`, which names the cause, instead of
    redis-py's or kombu's error; other Redis errors pass unchanged."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except RedisFull:
            raise
        except (redis.RedisError, KombuError) as exc:
            if out_of_memory(exc):
                raise RedisFull() from exc
            raise

    return wrapper


@dataclass(frozen=True)
class Receipt:
    id: str
    status: str
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "duplicate": self.duplicate}


class Hudhud:
    """Producer API for web apps (Django, Flask, FastAPI) and scripts."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.settings = settings or get_settings()
        self._app = app

    @property
    def app(self) -> Celery:
        if self._app is None:
            from hudhud.worker.broker.celery_app import app

            self._app = app
        return self._app

    @property
    def ledger(self) -> Ledger:
        return runtime.ledger(self.settings)

    # --- sending ------------------------------------------------------------------
    def send_sms(
        self,
        to: str | Sequence[str],
        body: str,
        *,
        sender: str | None = None,
        at: str | datetime | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: str | datetime | None = None,
        lane: str | None = None,
    ) -> Receipt:
        expiry = {"ttl": ttl, "expires_at": expires_at, "lane": lane}
        return self.send("sms", {"to": to, "body": body, "sender": sender, "at": at, "key": key, **expiry})

    def send_voice(
        self,
        to: str | Sequence[str],
        audio_url: str,
        *,
        caller_id: str | None = None,
        at: str | datetime | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: str | datetime | None = None,
        lane: str | None = None,
    ) -> Receipt:
        fields = {"to": to, "audio_url": audio_url, "caller_id": caller_id, "at": at, "key": key}
        return self.send("voice", {**fields, "ttl": ttl, "expires_at": expires_at, "lane": lane})

    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        *,
        text: str | None = None,
        html: str | None = None,
        from_: str | None = None,
        provider: str | None = None,
        cc: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        reply_to: str | None = None,
        tags: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        attachments: Sequence[Mapping[str, str]] | None = None,
        campaign: str | None = None,
        at: str | datetime | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: str | datetime | None = None,
        lane: str | None = None,
    ) -> Receipt:
        fields = {
            "to": to,
            "subject": subject,
            "text": text,
            "html": html,
            "from": from_,
            "provider": provider,
            "cc": cc,
            "bcc": bcc,
            "reply_to": reply_to,
            "tags": tags,
            "headers": headers,
            "attachments": attachments,
            "campaign": campaign,
            "at": at,
            "key": key,
            "ttl": ttl,
            "expires_at": expires_at,
            "lane": lane,
        }
        return self.send("email", fields)

    @_redis_errors
    def send(self, channel: str, fields: Mapping[str, Any], *, message_id: str | None = None) -> Receipt:
        """Check `fields` for `channel`, record the message, enqueue it. One send."""
        request = self.check(channel, fields)
        if message_id is not None:
            validation.message_id(message_id, "id")
        return self.submit(request, message_id=message_id)

    @_redis_errors
    def submit(
        self, request: messages.SendRequest, *, message_id: str | None = None, retry_of: str | None = None
    ) -> Receipt:
        now = time.time()
        created = self.ledger.create(self._new(request, message_id, retry_of), now=now)
        return self._after_create(created, request, now)

    @_redis_errors
    def send_many(self, channel: str, items: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Bulk producer API, all or nothing: every item is checked first (a bad item raises
        `InvalidInput` naming `items[i].field`), then every key (an item whose key was used for
        another request raises `IdempotencyConflict` naming `items[i].key`), and only then are
        they recorded and enqueued, in pipelined round trips of `BULK_CHUNK` messages. A key
        used again for the same request answers its first message (a duplicate)."""
        requests = messages.build_many(channel, items, self.settings)
        now = time.time()
        news = [self._new(r, None, None) for r in requests]
        if len(news) > BULK_CHUNK:  # written in several calls: checked whole first
            _refuse_conflicts(self.ledger.key_conflicts(news, now=now), 0)
        receipts: list[Receipt] = []
        for start in range(0, len(news), BULK_CHUNK):
            created = self._create_and_push(news[start : start + BULK_CHUNK], now, all_or_nothing=True)
            _refuse_conflicts({i: c.id for i, c in enumerate(created) if c.outcome == "conflict"}, start)
            receipts += [Receipt(c.id, c.status, duplicate=c.outcome != "created") for c in created]
        return receipts

    def check(self, channel: str, fields: Mapping[str, Any]) -> messages.SendRequest:
        """The checked request `send` would record (raises `InvalidInput` naming the field)."""
        return messages.build(channel, _without_none(fields), self.settings)

    def prepare(
        self, requests: Sequence[messages.SendRequest], now: float
    ) -> tuple[list[NewMessage], list[tuple[str, str] | None]]:
        """The new messages of checked requests, and the broker task of each (None: parked)."""
        news = [self._new(r, None, None) for r in requests]
        return news, self._tasks(news, now)

    def _tasks(self, news: Sequence[NewMessage], now: float) -> list[tuple[str, str] | None]:
        window = self.ledger.park_after
        return [enqueue.broker_message(self.app, _task_of(msg), window=window, now=now) for msg in news]

    def _create_and_push(
        self, news: Sequence[NewMessage], now: float, *, all_or_nothing: bool = False
    ) -> list[Created]:
        """Record messages and push the broker tasks of those created, in one script call."""
        tasks = self._tasks(news, now)
        return self.ledger.create_many(news, now=now, tasks=tasks, all_or_nothing=all_or_nothing)

    @_redis_errors
    def send_campaign(
        self, channel: str, fields: Mapping[str, Any], *, campaign_id: str | None = None
    ) -> campaign.CampaignReceipt:
        """One message to many recipients (`fields["to"]`, up to a million), in batches of
        one provider call each. Checked whole first: a bad recipient raises `InvalidInput`
        naming `to[i]` and nothing is recorded. Recipients are deduplicated."""
        plan = campaign.plan(channel, _without_none(fields), self.settings)
        plan = campaign.without_suppressed(plan, self.ledger, self.settings)
        cid = campaign_id or str(uuid.uuid4())
        validation.message_id(campaign.batch_id(cid, len(plan.batches)), "campaign_id")
        now = time.time()
        outcome, found, status = campaign.record(self.ledger, plan, cid, now=now)
        if outcome == "conflict":
            raise IdempotencyConflict(found)
        size = len(plan.batches)
        if outcome == "duplicate":
            return campaign.CampaignReceipt(
                found, status, plan.recipients, size, duplicate=True, suppressed=plan.suppressed
            )
        request = plan.request
        due = request.due.timestamp() if request.due else None
        batches = (
            enqueue.DeliveryTask(
                campaign.batch_id(cid, n), request.provider, request.channel, due, request.lane
            )
            for n in range(size)
        )
        enqueue.enqueue_many(self.app, self.ledger, batches, now=now)
        return campaign.CampaignReceipt(cid, status, plan.recipients, size, suppressed=plan.suppressed)

    @_redis_errors
    def recipient_status(self, campaign_id: str, recipient: str) -> dict[str, Any]:
        """What became of one recipient of a campaign. NotFound when there is no such campaign;
        NotARecipient (a NotFound) when the campaign has no such recipient."""
        found = campaign.recipient_status(self.ledger, campaign_id, recipient)
        if found is not None:
            return found
        record = self.ledger.get(campaign_id)
        if record is None:
            raise NotFound(campaign_id)
        raise NotARecipient(campaign_id, is_campaign=campaign.is_campaign(record))

    def _new(self, request: messages.SendRequest, message_id: str | None, retry_of: str | None) -> NewMessage:
        return NewMessage(
            id=message_id or str(uuid.uuid4()),
            channel=request.channel,
            provider=request.provider,
            payload=request.payload,
            request_hash=request.request_hash,
            key=request.key,
            due=request.due.timestamp() if request.due else None,
            retry_of=retry_of,
            reference=request.reference,
            callback_url=request.callback_url,
            lane=request.lane,
            expires=request.expires.timestamp() if request.expires else None,
            pinned=request.pinned,
        )

    def _after_create(self, created: Created, request: messages.SendRequest, now: float) -> Receipt:
        if created.outcome == "conflict":
            raise IdempotencyConflict(created.id)
        if created.outcome != "created":
            return Receipt(created.id, created.status, duplicate=True)
        due = request.due.timestamp() if request.due else None
        task = enqueue.DeliveryTask(created.id, request.provider, request.channel, due, request.lane)
        enqueue.enqueue(self.app, self.ledger, task, now=now)
        return Receipt(created.id, created.status)

    # --- other operations -----------------------------------------------------------
    @_redis_errors
    def status(self, message_id: str) -> dict[str, Any]:
        record = self.ledger.get(message_id)
        if record is None:
            raise NotFound(message_id)
        if campaign.is_campaign(record):
            return campaign.summary(self.ledger, record)
        return public_record(record)

    @_redis_errors
    def cancel(self, message_id: str) -> Receipt:
        record = self.ledger.get(message_id)
        if record is not None and campaign.is_campaign(record):
            if not campaign.cancel(self.ledger, record, now=time.time()):
                raise Refused(f"campaign {message_id} has no batch left to cancel")
            return Receipt(message_id, Status.CANCELLED.value)
        outcome, previous = self.ledger.cancel(message_id, now=time.time())
        if outcome == "missing":
            raise NotFound(message_id)
        if outcome == "guarded":
            raise Refused(
                f"message {message_id} is in doubt: an earlier send's reply was lost and it may "
                "already have been delivered, so it cannot be cancelled"
            )
        if outcome != "ok":
            raise Refused(
                f"message {message_id} is {previous}: only scheduled or queued messages can be cancelled"
            )
        return Receipt(message_id, Status.CANCELLED.value)

    @_redis_errors
    def retry_email(self, message_id: str, *, new_id: str | None = None) -> Receipt:
        """Ask the provider to retry a bounced, failed or rejected email: a new, linked message
        with the original's reference and callback URL (`new_id`, when given, is its id:
        asking twice with the same one makes one retry)."""
        record = self.ledger.get(message_id)
        if record is None:
            raise NotFound(message_id)
        provider = record.get("provider", "")
        retries = registry.known(provider) and registry.get(provider).retries_by_id
        if record.get("channel") != "email" or not retries:
            raise Refused(
                f"message {message_id} is not an email its provider can retry: only those can be retried"
            )
        if record.get("status") not in {Status.BOUNCED, Status.FAILED, Status.REJECTED}:
            raise Refused(
                f"message {message_id} is {record.get('status')}: only bounced, failed "
                "or rejected emails can be retried"
            )
        if not record.get("provider_message_id"):
            raise Refused(f"message {message_id} never reached {provider}: send it again instead")
        payload = registry.get(provider).retry_payload(record["provider_message_id"])
        request = messages.SendRequest(
            "email",
            provider,
            payload,
            reference=record.get("reference") or None,
            callback_url=record.get("callback_url") or None,
        )
        if new_id is not None:
            validation.message_id(new_id, "id")
        return self.submit(request, message_id=new_id, retry_of=message_id)


def _refuse_conflicts(conflicts: Mapping[int, str], start: int) -> None:
    """Raise for the first of a batch's messages (by index in its chunk) whose key conflicts."""
    if conflicts:
        index = min(conflicts)
        raise IdempotencyConflict(conflicts[index], f"items[{start + index}].key")


def one_by_one(created: Iterable[Created]) -> list[Receipt | IdempotencyConflict]:
    """Each recorded message's receipt, or the conflict of its key (its neighbours recorded)."""
    return [
        IdempotencyConflict(c.id)
        if c.outcome == "conflict"
        else Receipt(c.id, c.status, duplicate=c.outcome != "created")
        for c in created
    ]


def _task_of(msg: NewMessage) -> enqueue.DeliveryTask:
    return enqueue.DeliveryTask(msg.id, msg.provider, msg.channel, msg.due, msg.lane)


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        raise InvalidInput("fields", "must be an object")
    return {k: v for k, v in fields.items() if v is not None}
