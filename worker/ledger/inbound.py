"""What the ledger remembers of a provider's webhook calls: the deliveries already applied.

A provider sends a webhook delivery again until it gets a 2xx, and may send one twice anyway.
Each delivery is remembered (a week) by its delivery id and by the digest of its signed body,
once what it reported is recorded: a delivery whose id or body was seen before changes
nothing. The body counts because a delivery id outside the signature could be changed by
anyone replaying a captured call. A final status is safe to apply twice (a transition from
`sent` happens once), so its delivery is remembered after it; an event is appended and its
delivery remembered in one script, so it is never appended twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from redis.commands.core import Script

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.keys import delivery_body_key, delivery_key, events_key, msg_key
from hudhud.worker.ledger.records import text
from hudhud.worker.ledger.scripts import source

KEEP_SECONDS = 7 * 86400  # far past any provider's retries (the last come within a day)


class Appended(StrEnum):
    """What became of an event a webhook delivery carried."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # its delivery id or its body was seen: nothing appended
    MISSING = "missing"  # the message's record is gone: nothing to append to


def digest(value: str | bytes) -> str:
    """A delivery id or a body as the ledger keeps it (whatever its length or characters)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class Delivery:
    """One webhook call, as told apart from the others: its delivery id and its signed body."""

    delivery_id: str
    body: bytes


class Deliveries:
    """One provider's webhook deliveries already applied."""

    def __init__(self, ledger: Ledger, provider: str, keep_seconds: int = KEEP_SECONDS) -> None:
        self.ledger = ledger
        self.provider = provider
        self.keep_seconds = keep_seconds
        self._append: Script | None = None

    def _keys(self, delivery: Delivery) -> list[str]:
        return [
            delivery_key(self.provider, digest(delivery.delivery_id)),
            delivery_body_key(self.provider, digest(delivery.body)),
        ]

    def seen(self, delivery: Delivery) -> bool:
        return bool(self.ledger.redis.exists(*self._keys(delivery)))

    def remember(self, delivery: Delivery) -> None:
        """Call once what the delivery reported is recorded."""
        pipe = self.ledger.redis.pipeline(transaction=False)
        for key in self._keys(delivery):
            pipe.set(key, "1", ex=self.keep_seconds)
        pipe.execute()

    def append_event(self, delivery: Delivery, message_id: str, entry: str) -> Appended:
        """Append the JSON event `entry` to the message's events and remember the delivery, in
        one step; nothing when its id or its body was seen before."""
        if self._append is None:
            self._append = self.ledger.redis.register_script(source("inbound_event"))
        keys = [*self._keys(delivery), msg_key(message_id), events_key(message_id)]
        return Appended(text(self._append(keys=keys, args=[self.keep_seconds, entry])))
