"""What the ledger remembers of a provider's webhook calls: the delivery ids already applied.

A provider sends a webhook delivery again until it gets a 2xx, and may send one twice anyway.
Each delivery id is remembered (by its digest, a week) once what it reported is recorded: a
delivery seen before changes nothing. A final status is safe to apply twice (a transition
from `sent` happens once), so its id is remembered after it; an event is appended and its id
remembered in one script, so it is never appended twice.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from redis.commands.core import Script

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.keys import delivery_key, events_key, msg_key
from hudhud.worker.ledger.records import text
from hudhud.worker.ledger.scripts import source

KEEP_SECONDS = 7 * 86400  # far past any provider's retries (Taifa's last comes after ~11 h)


class Appended(StrEnum):
    """What became of an event a webhook delivery carried."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # its delivery id was seen: nothing appended
    MISSING = "missing"  # the message's record is gone: nothing to append to


def digest(delivery_id: str) -> str:
    """A delivery id as the ledger keeps it (whatever its length or characters)."""
    return hashlib.sha256(delivery_id.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class Deliveries:
    """One provider's webhook delivery ids already applied."""

    def __init__(self, ledger: Ledger, provider: str, keep_seconds: int = KEEP_SECONDS) -> None:
        self.ledger = ledger
        self.provider = provider
        self.keep_seconds = keep_seconds
        self._append: Script | None = None

    def _key(self, delivery_id: str) -> str:
        return delivery_key(self.provider, digest(delivery_id))

    def seen(self, delivery_id: str) -> bool:
        return bool(self.ledger.redis.exists(self._key(delivery_id)))

    def remember(self, delivery_id: str) -> None:
        """Call once what the delivery reported is recorded."""
        self.ledger.redis.set(self._key(delivery_id), "1", ex=self.keep_seconds)

    def append_event(self, delivery_id: str, message_id: str, entry: str) -> Appended:
        """Append the JSON event `entry` to the message's events and remember the delivery id,
        in one step; nothing when the id was seen before."""
        if self._append is None:
            self._append = self.ledger.redis.register_script(source("inbound_event"))
        keys = [self._key(delivery_id), msg_key(message_id), events_key(message_id)]
        return Appended(text(self._append(keys=keys, args=[self.keep_seconds, entry])))
