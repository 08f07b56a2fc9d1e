"""The ledger's one write that the HTTP API awaits on its event loop: recording a flush of
single sends (`create_many.lua`, with their broker tasks) over an asyncio connection, so a
flush costs no hop to a thread and back. Its arguments are built, and its answer read, by
`Ledger` itself, exactly as for the threaded call."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio

from hudhud.worker.ledger import (
    WRITE,
    Created,
    Ledger,
    NewMessage,
    duplicated,
    many_answer,
    scripts,
    with_statuses,
)
from hudhud.worker.ledger.keys import msg_key


class AsyncRecorder:
    """One event loop's asyncio client of the ledger's Redis (made on that loop)."""

    def __init__(self, ledger: Ledger, url: str, *, size: int = 16) -> None:
        self.ledger = ledger
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=size,
            timeout=20,
            socket_timeout=30,
            socket_connect_timeout=10,
            health_check_interval=25,
            retry_on_timeout=True,
        )
        self.redis = redis.asyncio.Redis(connection_pool=pool)
        self._create_many = self.redis.register_script(scripts.source("create_many"))

    async def create_many(
        self, messages: Sequence[NewMessage], *, now: float, tasks: Sequence[tuple[str, str] | None]
    ) -> list[Created]:
        """As `Ledger.create_many` (each message created, a duplicate or a conflict on its own)."""
        keys, args = self.ledger.many_call(messages, now, tasks, WRITE)
        created = many_answer(await self._create_many(keys=keys, args=args))
        firsts = duplicated(created)
        if not firsts:
            return created
        pipe = self.redis.pipeline(transaction=False)
        for mid in firsts:
            pipe.hget(msg_key(mid), "status")
        return with_statuses(created, await pipe.execute())

    async def close(self) -> None:
        await self.redis.aclose()
