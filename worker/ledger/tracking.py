"""The ledger's side of following a provider's reports after the hand-over.

Beat's tracking job gives each provider that reports delivery later a `Tracker`: its lock
(one run at a time), its feed cursor, the map from its own ids to our messages, the
`tracking` index of sent messages waiting for a final event, and the writes that record what
the provider reported. The provider module decides what its reports mean.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import redis

from hudhud.worker.ledger import Ledger, event
from hudhud.worker.ledger.keys import (
    TRACKING,
    events_key,
    feed_cursor_key,
    follow_lock_key,
    msg_key,
    provider_id_key,
)
from hudhud.worker.ledger.status import Status


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def campaign_of(batch: str) -> str:
    return batch.rpartition(".")[0]


class Tracker:
    """What one provider's follow-up reads and writes of the ledger."""

    def __init__(self, ledger: Ledger, provider: str) -> None:
        self.ledger = ledger
        self.provider = provider

    @contextlib.contextmanager
    def lock(self, seconds: float) -> Iterator[bool]:
        """One run at a time: yields False (and holds nothing) while another run holds it."""
        held = self.ledger.redis.lock(follow_lock_key(self.provider), timeout=seconds, blocking=False)
        if not held.acquire():
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                held.release()

    # -- sent messages waiting for a final event --------------------------------------

    def tracked(self, *, limit: int) -> list[str]:
        return self.ledger.tracked(limit=limit)

    def untrack_older_than(self, cutoff: float) -> int:
        return self.ledger.untrack_older_than(cutoff)

    def untrack(self, message_id: str) -> None:
        self.ledger.redis.zrem(TRACKING, message_id)

    def record(self, message_id: str) -> dict[str, Any] | None:
        return self.ledger.get(message_id)

    def add_reports(
        self, message_id: str, reports: Iterable[Mapping[str, Any]], *, seen_field: str, seen: int
    ) -> None:
        """Append the provider's events to the message's events; remember how many were read."""
        pipe = self.ledger.redis.pipeline(transaction=False)
        for report in reports:
            pipe.rpush(events_key(message_id), json.dumps(dict(report), default=str))
        pipe.hset(msg_key(message_id), seen_field, seen)
        pipe.execute()

    def finish(self, message_id: str, status: Status, *, now: float, via: str, error: str | None) -> None:
        """A sent message's final status, as the provider reported it."""
        self.ledger.transition(
            message_id,
            to=status,
            expect=Status.SENT,
            now=now,
            provider=self.provider,
            event_json=event(status, now, via=via, error=error),
            fields={"error": error} if error else None,
        )

    # -- the provider's feed of changes -----------------------------------------------

    def cursor(self) -> str | None:
        since = self.ledger.redis.get(feed_cursor_key(self.provider))
        return None if since is None else _text(since)

    def move_cursor(self, since: str) -> None:
        self.ledger.redis.set(feed_cursor_key(self.provider), since)

    def owners(self, provider_ids: list[str]) -> list[tuple[str, str] | None]:
        """(message id, recipient) each provider id stands for ("" recipient: the whole
        message), None for an id of no message of ours."""
        if not provider_ids:
            return []
        keys = [provider_id_key(self.provider, i) for i in provider_ids]
        out: list[tuple[str, str] | None] = []
        for raw in self.ledger.redis.mget(keys):
            if raw is None:
                out.append(None)
                continue
            batch, _, recipient = _text(raw).partition("|")
            out.append((batch, recipient))
        return out

    def forget(self, provider_id: str) -> None:
        self.ledger.redis.delete(provider_id_key(self.provider, provider_id))

    def finish_recipient(
        self, batch: str, recipient: str, provider_id: str, status: Status, *, now: float, error: str | None
    ) -> bool:
        """A campaign recipient's final status, recorded once; False if already recorded."""
        forget = provider_id_key(self.provider, provider_id)
        return self.ledger.finish_recipient(
            batch, recipient, campaign=campaign_of(batch), forget=forget, status=status, now=now, error=error
        )
