"""A top-up that lands between Taqnyat's "balance not enough" and the balance read just after
it: the held batch is tried once more at the next check instead of waiting for a growth that
already happened (`worker/delivery/shortfall.py`), against a real redis-server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis

from hudhud.config import Settings
from hudhud.worker.delivery import shortfall
from hudhud.worker.ledger import Ledger, NewMessage


class Held:
    """What `due_again` reads of a delivery: its ledger and settings."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.settings = Settings(HUDHUD_BALANCE_WAIT=3600)


def held_batch(ledger: Ledger, mid: str, *, balance: str, since: float) -> None:
    payload = {"to": ["966500000001", "966500000002"], "body": "b", "batch": 1}
    ledger.create(
        NewMessage(id=mid, channel="sms", provider="taqnyat", payload=payload, request_hash=mid), now=since
    )
    ledger.transition(
        mid,
        to="queued",
        expect="queued",
        now=since,
        zset="short",
        provider="taqnyat",
        score=since,
        fields={"short_since": repr(since), "short_balance": balance},
    )


def test_the_first_check_after_a_hold_tries_once_even_when_the_balance_did_not_grow(
    redis_client: redis.Redis,
) -> None:
    ledger = Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )
    held_batch(ledger, "late-read", balance="100000", since=1000.0)  # read after the top-up
    delivery: Any = Held(ledger)
    now = Decimal("99990")  # the top-up, already spent a little: it did not "grow" since the read
    assert shortfall.due_again(delivery, "taqnyat", now, now=1060.0) == [("late-read", False)]
    for name, value in shortfall.released_fields(False).items():
        ledger.flag("late-read", **{name: value})
    assert shortfall.due_again(delivery, "taqnyat", now, now=1120.0) == [], "once, not at every check"
    assert shortfall.due_again(delivery, "taqnyat", Decimal("100500"), now=1180.0) == [("late-read", True)]
    assert shortfall.released_fields(True) == {"short_since": "", "short_checked": ""}
