"""A balance too small for one send: hold that send alone, and let smaller ones go on.

Taqnyat answers code 3 ("Your balance is not enough") when the account has money, but not
enough for this call: a campaign batch of 1,000 SMS costs 26 SAR, an OTP 0.026. Pausing the
whole provider for it would stop every OTP behind one batch, and resuming it as soon as the
balance reads positive would pause it again at once. So:

- code 3 for a send to several recipients holds that message alone (status `queued`, in the
  index `short:<provider>`, its retry budget untouched) with the balance seen at the time;
  beat sends it again once the balance has grown (a top-up), and once at the first check
  after the hold (the balance read just after a refusal may already include a top-up);
  after `HUDHUD_BALANCE_WAIT` seconds without one it ends `failed`, saying why;
- code 3 for a single recipient means nothing fits: the provider is paused like for code 2,
  and its probe resumes it only once the balance has grown past what it was.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from hudhud.worker.delivery.attempt import Delivery, Outcome, recipients_of
from hudhud.worker.ledger import Claim, Status, event, iso
from hudhud.worker.ledger.status import DeliveryOutcome
from hudhud.worker.providers.errors import BalanceError, ProviderError

log = logging.getLogger("hudhud.shortfall")

NOT_ENOUGH = "3"
CHECKED = "short_checked"  # a held message's first check after its hold was made


def balance_now(delivery: Delivery, provider: str) -> str:
    """The provider's balance as text ("" when it cannot be read)."""
    try:
        found = delivery.clients(provider).balance()
    except ProviderError:
        return ""
    return "" if found is None else str(found.balance)


def on_balance_error(delivery: Delivery, message_id: str, claim: Claim, exc: BalanceError) -> Outcome:
    if exc.code != NOT_ENOUGH:
        return delivery.hold(message_id, claim, exc)
    balance = balance_now(delivery, claim.provider)
    if len(recipients_of(claim.payload)) > 1:
        return wait_for_top_up(delivery, message_id, claim, exc, balance)
    return delivery.hold(message_id, claim, exc, balance=balance)


def wait_for_top_up(
    delivery: Delivery, message_id: str, claim: Claim, exc: BalanceError, balance: str
) -> Outcome:
    now = time.time()
    since = float(delivery.ledger.field(message_id, "short_since") or now)
    deadline = since + delivery.settings.balance_wait
    count = len(recipients_of(claim.payload))
    seen = f"{balance} {claim.provider}" if balance else "unknown"
    if delivery.expires_by(claim, now):  # no top-up can come in time for it
        return delivery.expire(message_id, claim, now)
    if now >= deadline:
        return delivery.end(
            message_id,
            claim,
            Status.FAILED,
            error=(
                f"{exc.describe()}: the balance ({seen}) could not pay for this send to {count} "
                f"recipients, and no top-up came within {delivery.settings.balance_wait:g} s"
            ),
        )
    words = (
        f"{exc.describe()}: the balance ({seen}) cannot pay for this send to {count} recipients; "
        f"it waits for a top-up until {iso(deadline)} while smaller sends go on"
    )
    log.warning("message %s waits for a top-up of %s", message_id, claim.provider)
    delivery.record(
        message_id,
        claim,
        Status.QUEUED,
        now,
        event("held", now, error=words),
        {"error": words, "short_since": repr(since), "short_balance": balance},
        zset="short",
        score=since,
        attempts_delta=-1,
    )
    return Outcome(DeliveryOutcome.HELD)


def grown(balance: Decimal, before: Any) -> bool:
    """True when `balance` is above the balance text `before` (or `before` is unknown)."""
    try:
        return balance > Decimal(str(before))
    except (InvalidOperation, ValueError):
        return balance > 0


def due_again(
    delivery: Delivery, provider: str, balance: Decimal | None, *, now: float
) -> list[tuple[str, bool]]:
    """The messages waiting for a top-up that may go now, each with whether the balance grew
    since it was held (a fresh wait if it still does not fit) or only its wait is over (its
    next attempt ends it)."""
    ready = []
    for message_id, since in delivery.ledger.in_index("short", provider):
        before = delivery.ledger.field(message_id, "short_balance")
        topped_up = balance is not None and grown(balance, before)
        # The balance read at the hold comes a moment after the refusal: a top-up in between
        # makes it the grown balance already, so the first check after a hold tries once more.
        first = not delivery.ledger.field(message_id, CHECKED)
        if topped_up or first or now - since >= delivery.settings.balance_wait:
            ready.append((message_id, topped_up))
    return ready


def released_fields(topped_up: bool) -> dict[str, str]:
    """What a message let go again keeps of its wait: nothing after a top-up, else that the
    first check after its hold was made (its wait for a top-up goes on)."""
    return {"short_since": "", CHECKED: ""} if topped_up else {CHECKED: "1"}
