"""Single sends from the HTTP API, recorded together (group commit).

Each request's fields are checked at once, so a bad field fails that request alone and
records nothing. Checked requests then wait for a flusher: while the flushes under way are
in Redis, the requests that arrive gather, and the next flush records and enqueues them (at
most `FLUSH_LIMIT`) in one script call, awaited on the event loop (`ledger.aio`), answering
each with its own receipt or error. A
request that finds a flusher free is flushed at once: nobody waits for a batch to fill. An
email with attachments is checked and recorded alone, in a thread, as `Hudhud.send` does.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from fastapi.concurrency import run_in_threadpool

from hudhud.worker.errors import RedisFull
from hudhud.worker.ledger.aio import AsyncRecorder
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict, Receipt, one_by_one, out_of_memory
from hudhud.worker.producer.messages import SendRequest

FLUSH_LIMIT = 200  # requests in one flush
FLUSHERS = 2  # flushes at once: while one waits on Redis, the next can start


@dataclass(frozen=True)
class _Waiting:
    request: SendRequest
    answer: asyncio.Future[Receipt]


class Gatherer:
    """The requests waiting to be recorded through one `Hudhud`, on one event loop."""

    def __init__(self, hudhud: Hudhud) -> None:
        self.hudhud = hudhud
        self.recorder = AsyncRecorder(hudhud.ledger, hudhud.settings.redis_url)
        self.waiting: list[_Waiting] = []
        self.flushers: set[asyncio.Task[None]] = set()

    async def submit(self, request: SendRequest) -> Receipt:
        answer: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(request, answer))
        if len(self.flushers) < FLUSHERS:
            self.flushers.add(asyncio.create_task(self._flush_while_waiting()))
        return await answer

    async def _flush_while_waiting(self) -> None:
        current = asyncio.current_task()
        try:
            while self.waiting:
                batch = self.waiting[:FLUSH_LIMIT]
                del self.waiting[:FLUSH_LIMIT]
                await self._flush(batch)
        except BaseException:  # cancelled: the loop is shutting down
            for left in self.waiting:
                left.answer.cancel()
            self.waiting.clear()
            raise
        finally:
            self.flushers.discard(current)

    async def _flush(self, batch: list[_Waiting]) -> None:
        try:
            answers = await self._record([w.request for w in batch])
        except Exception as exc:  # a Redis error fails every request of this flush, and only those
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        except BaseException:  # cancelled: the loop is shutting down
            for waiting in batch:
                waiting.answer.cancel()
            raise
        for waiting, answer in zip(batch, answers, strict=True):
            if waiting.answer.done():  # its caller went away; the message is recorded all the same
                continue
            if isinstance(answer, IdempotencyConflict):
                waiting.answer.set_exception(answer)
            else:
                waiting.answer.set_result(answer)

    async def _record(self, requests: list[SendRequest]) -> list[Receipt | IdempotencyConflict]:
        now = time.time()
        news, tasks = self.hudhud.prepare(requests, now)
        try:
            created = await self.recorder.create_many(news, now=now, tasks=tasks)
        except redis.RedisError as exc:
            if out_of_memory(exc):
                raise RedisFull() from exc
            raise
        return one_by_one(created)


_gatherers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hudhud, Gatherer]] = (
    weakref.WeakKeyDictionary()
)


def gatherer(hudhud: Hudhud) -> Gatherer:
    """The running loop's gatherer for `hudhud`."""
    per_loop = _gatherers.setdefault(asyncio.get_running_loop(), {})
    if hudhud not in per_loop:
        per_loop[hudhud] = Gatherer(hudhud)
    return per_loop[hudhud]


async def submit_one(hudhud: Hudhud, channel: str, fields: Mapping[str, Any]) -> Receipt:
    """Check, record and enqueue one send: its receipt, as `Hudhud.send` answers. Raises
    `InvalidInput` for a bad field (nothing recorded), `IdempotencyConflict`, and the Redis
    errors `Hudhud.send` raises (`RedisFull`...)."""
    if isinstance(fields, Mapping) and fields.get("attachments"):
        # checking attachments takes a while, and big records are better written alone
        return await run_in_threadpool(hudhud.send, channel, fields)
    request = hudhud.check(channel, fields)
    return await gatherer(hudhud).submit(request)
