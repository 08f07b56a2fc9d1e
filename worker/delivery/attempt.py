"""Deliver one recorded message: claim it, call its provider once, record the outcome.

The claim (`queued|scheduled -> sending`, with a lease) is atomic, so a duplicated or
redelivered task finds the message claimed or done and stops without calling the provider.
What happens when the provider's reply is lost lives in `hudhud.worker.delivery.doubt`; a balance too small
for one send in `hudhud.worker.delivery.shortfall`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Any, cast

import redis

from hudhud.config import Settings
from hudhud.worker.broker.enqueue import Placement, placement
from hudhud.worker.errors import ConfigurationError, InvalidInput
from hudhud.worker.ledger import Claim, ClaimOutcome, Ledger, Status, event, iso, op_token, reports
from hudhud.worker.ledger.patience import patiently
from hudhud.worker.ledger.status import PENDING, WAITING, DeliveryOutcome
from hudhud.worker.producer import campaign
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Follow
from hudhud.worker.providers.base import reconcile_tag as reconcile_tag
from hudhud.worker.providers.errors import (
    AccountError,
    BalanceError,
    InDoubtError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from hudhud.worker.redaction import NO_SECRETS

log = logging.getLogger("hudhud.delivery")

MAX_INLINE_WAIT = 1.0  # seconds a worker sleeps for the rate limiter before re-queuing
MAX_INLINE_WAITING = 3.0  # seconds of such sleeps in all, for one task
# Outcomes that carry the provider's own answer (as opposed to "try again later").
ANSWERED = frozenset({Status.SENT, Status.REJECTED, Status.FAILED})
DEFAULT_SLOW_DOWN = 2.0  # seconds every worker waits after a 429 without Retry-After
EXPIRED_ERROR = "expired: not handed to a provider before its expires_at"  # as claim.lua says


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery attempt; `retry_in` asks the task to retry after it."""

    result: DeliveryOutcome
    retry_in: float | None = None


def recipients_of(payload: dict[str, Any]) -> list[str]:
    to = payload.get("to") or []
    return [str(r) for r in to] if isinstance(to, list) else [str(to)]


class Delivery:
    def __init__(self, ledger: Ledger, settings: Settings, clients: Any) -> None:
        self.ledger = ledger
        self.settings = settings
        self.clients = clients  # callable: provider name -> client

    def rate_for(self, provider: str) -> float:
        return registry.get(provider).rate_limit(self.settings) if registry.known(provider) else 0.0

    def patiently(self, what: str, call: Any) -> Any:
        """A ledger call that waits while Redis refuses writes (full, restarting)."""
        return patiently(call, what=what, patience=self.settings.redis_patience)

    def deliver(self, message_id: str, provider: str) -> Outcome:
        from hudhud.worker.delivery import failover

        provider = self.patiently(
            f"the provider of {message_id}",
            lambda: failover.before_claim(self.ledger, message_id, provider, self.settings),
        )
        op = op_token()  # one token for every try: a claim Redis ran but did not answer is ours
        claim = self.patiently(f"the claim of {message_id}", lambda: self._claim(message_id, provider, op))
        if claim.outcome is ClaimOutcome.WAIT:
            return self.wait(message_id, provider, claim.wait + random.uniform(0, min(1.0, claim.wait)))
        if claim.outcome is not ClaimOutcome.CLAIMED:
            if claim.outcome is ClaimOutcome.HELD:
                log.info("message %s held: provider %s is paused", message_id, provider)
            return Outcome(DeliveryOutcome(claim.outcome))
        from hudhud.worker.delivery import doubt

        if claim.suppressed:
            claim = self._without_suppressed(message_id, claim)
        if claim.reconcile:
            settled = doubt.reconcile_first(self, message_id, claim)
            if isinstance(settled, Outcome):
                return settled
            claim = settled
        elif claim.reconciled:  # what the provider was found to have is never sent again
            claim = doubt.without_reconciled(claim)
        return self.attempt(message_id, claim)

    def _without_suppressed(self, message_id: str, claim: Claim) -> Claim:
        """The claim's payload without the recipients the suppression list holds (their
        positions in to, then cc, then bcc), and an event that says how many."""
        dropped = set(claim.suppressed)
        payload = dict(claim.payload)
        position = 0
        for field in ("to", "cc", "bcc"):
            given = list(payload.get(field) or ())
            if not given:
                continue
            kept = [r for i, r in enumerate(given, start=position) if i not in dropped]
            position += len(given)
            if kept:
                payload[field] = kept
            else:
                payload.pop(field, None)
        with contextlib.suppress(redis.RedisError):
            self.ledger.add_event(message_id, "recipients_suppressed", now=time.time(), count=len(dropped))
        return replace(claim, payload=payload)

    def attempt(self, message_id: str, claim: Claim) -> Outcome:
        """One provider call for a claimed message, and its outcome recorded."""
        from hudhud.worker.delivery import doubt, shortfall

        try:
            result = self.call(message_id, claim)
        except InvalidInput as exc:
            return self.end(message_id, claim, Status.FAILED, error=str(exc))
        except PermanentError as exc:
            if claim.reconciled:  # the provider refused the rest; what it had stays sent
                return self.sent(message_id, claim, doubt.rest_refused(claim, exc.describe()))
            return self.end(message_id, claim, Status.REJECTED, error=exc.describe())
        except BalanceError as exc:
            return shortfall.on_balance_error(self, message_id, claim, exc)
        except AccountError as exc:
            return self.hold(message_id, claim, exc)
        except InDoubtError as exc:
            return doubt.after_lost_reply(self, message_id, claim, exc.describe())
        except RetryableError as exc:
            return self.retry_later(message_id, claim, exc)
        except ProviderError as exc:
            return self.retry(message_id, claim, exc.describe(), None)
        except ConfigurationError as exc:
            self._park(message_id, claim, f"configuration: {exc.variable} is not set or invalid")
            raise
        except Exception as exc:  # a fault of ours: keep the message, spend a retry
            log.exception("delivery of %s failed with %s", message_id, type(exc).__name__)
            return self.retry(message_id, claim, f"internal error: {type(exc).__name__}", None)
        if claim.probe:
            with contextlib.suppress(redis.RedisError):
                self.ledger.speed_up(claim.provider)
        return self.sent(message_id, claim, doubt.merged(claim, result))

    def wait(self, message_id: str, provider: str, seconds: float) -> Outcome:
        """Not claimed yet (not due, rate limit, a provider's Retry-After): a short wait is a
        task retry; a long one parks the message, so no ETA outlives the visibility timeout."""
        now = time.time()
        if placement(now + seconds, now, self.ledger.park_after) is not Placement.PARK:
            return Outcome(DeliveryOutcome.RETRY, retry_in=seconds)
        due = float(self.ledger.field(message_id, "due") or 0)
        self.patiently(
            f"the wait of {message_id}",
            lambda: self.ledger.transition(
                message_id,
                to=Status.SCHEDULED if due > now else Status.QUEUED,
                expect=WAITING,
                now=now,
                provider=provider,
                zset="scheduled",
                score=now + seconds,
                event_json=event("waiting", now, until=iso(now + seconds)),
            ),
        )
        return Outcome(DeliveryOutcome.PARKED)

    def _claim(self, message_id: str, provider: str, op: str) -> Claim:
        """The claim; a short wait (the rate limiter) is slept inline, for a few seconds at
        most, so that a long wait never keeps a worker's slot."""
        rate = self.rate_for(provider)
        burst = max(1.0, rate / 10)
        deadline = time.monotonic() + MAX_INLINE_WAITING
        while True:
            claim = self.ledger.claim(
                message_id,
                provider,
                now=time.time(),
                rate=rate,
                burst=burst,
                op=op,
                share=self.settings.transactional_share,
            )
            short = claim.outcome is ClaimOutcome.WAIT and claim.wait <= MAX_INLINE_WAIT
            if not short or time.monotonic() > deadline:
                return claim
            time.sleep(claim.wait)

    # --- the provider call --------------------------------------------------------
    def call(self, message_id: str, claim: Claim) -> Any:
        from hudhud.worker.delivery import failover

        client = self.clients(claim.provider)
        try:
            if claim.payload.get("batch"):
                result = client.deliver_batch(claim.channel, message_id, claim.payload)
            else:
                result = client.deliver(claim.channel, message_id, claim.payload)
        except ProviderError as exc:
            failover.count_outcome(self.ledger, claim, self.settings, exc)
            raise
        failover.count_outcome(self.ledger, claim, self.settings, None)
        return result

    # --- outcomes -----------------------------------------------------------------
    def result_fields(self, result: Any) -> dict[str, Any]:
        """What the record keeps of a provider's answer: recipients only as fingerprints."""
        fields: dict[str, Any] = {}
        if result.provider_message_id:
            fields["provider_message_id"] = result.provider_message_id
        if result.cost is not None:
            fields["cost"] = str(result.cost)
        if result.currency:
            fields["currency"] = result.currency
        prints = self.ledger.fingerprints
        self.patiently("the data key", prints.key)
        if result.accepted:
            fields["accepted"] = json.dumps(prints.of_all(result.accepted))
        if result.rejected:
            fields["rejected"] = json.dumps(prints.of_all(result.rejected))
        if result.item_ids:
            fields["provider_ids"] = json.dumps({prints.of(r): i for r, i in result.item_ids.items()})
        return fields

    def sent(self, message_id: str, claim: Claim, result: Any, *, how: str = Status.SENT) -> Outcome:
        """The provider took the message. Its ids are mapped to the message before the `sent`
        transition: a report pushed right away finds the message (still `sending`: the
        provider is asked to send it again) instead of no message at all."""
        now = time.time()
        fields = self.result_fields(result)
        if result.status == Status.REJECTED:
            # the provider's words may name the recipient; the error reaches the change stream
            fields["error"] = f"{claim.provider}: {NO_SECRETS(result.rejection_reason or 'rejected')}"
            return self.end(message_id, claim, Status.REJECTED, fields=fields)
        follow = self.clients(claim.provider).follow(claim.channel, claim.payload)
        self._map_provider_ids(message_id, claim, result, follow, now)
        tracking = follow is Follow.MESSAGE
        fields.update(self._sent_fields(claim, how, tracking=tracking))
        ev = event(
            how,
            now,
            provider_message_id=result.provider_message_id,
            cost=fields.get("cost"),
            rejected=len(result.rejected) or None,
        )
        self.record(
            message_id, claim, Status.SENT, now, ev, fields, zset="tracking" if tracking else "", score=now
        )
        return Outcome(DeliveryOutcome.SENT)

    def _sent_fields(self, claim: Claim, how: str, *, tracking: bool) -> dict[str, str]:
        fields = {"error": ""}
        if claim.reconcile:
            fields["reconcile"] = ""
        if claim.reconciled or how == "reconciled":
            fields["in_doubt"] = ""  # the provider said what it has: no longer in doubt
        if tracking:
            fields["tracked"] = "1"  # its delivery is followed: `sent` is not final yet
        return fields

    def _map_provider_ids(
        self, message_id: str, claim: Claim, result: Any, follow: Follow, now: float
    ) -> None:
        """Remember which message each of the provider's ids stands for."""
        keep_seconds = int(self.settings.tracking_days * 86400)
        if follow is not Follow.NONE:
            # Followed through the provider's feed of changes (delivered, bounced): a batch's
            # ids by recipient, a single send's as the message itself.
            emails = result.item_ids if follow is Follow.RECIPIENTS else {"": result.provider_message_id}
            prints = self.ledger.fingerprints
            followed = {(prints.of(r) if r else ""): i for r, i in emails.items() if i}
            self.patiently(
                f"the tracking of {message_id}",
                lambda: campaign.follow_recipients(
                    self.ledger,
                    message_id,
                    followed,
                    provider=claim.provider,
                    now=now,
                    keep_seconds=keep_seconds,
                ),
            )
        elif result.provider_message_id and self.clients(claim.provider).takes_webhooks:
            # its reports, pushed to /webhooks/<provider>, find the message by the provider's id
            self.patiently(
                f"the provider id of {message_id}",
                lambda: reports.remember(
                    self.ledger,
                    claim.provider,
                    message_id,
                    result.provider_message_id,
                    keep_seconds=keep_seconds,
                ),
            )

    def end(
        self,
        message_id: str,
        claim: Claim,
        status: Status,
        *,
        error: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Outcome:
        now = time.time()
        data = dict(fields or {})
        if error:
            if claim.in_doubt and status != Status.SENT:
                error = f"{error} (an earlier attempt's reply was lost: it may have been delivered)"
            data["error"] = error
        log.info("message %s %s: %s", message_id, status, data.get("error", ""))
        self.record(message_id, claim, status, now, event(status, now, error=data.get("error") or None), data)
        return Outcome(DeliveryOutcome(status))

    def retry_later(self, message_id: str, claim: Claim, exc: RetryableError) -> Outcome:
        """A transient fault. One that proves nothing was sent spends no retry; a 429 slows
        the provider down for every worker until its Retry-After has passed."""
        if exc.http_status == 429:
            pause = exc.retry_after if exc.retry_after is not None else DEFAULT_SLOW_DOWN
            now = time.time()
            self.patiently("a slow-down", lambda: self.ledger.slow_down(claim.provider, pause, now=now))
        return self.retry(message_id, claim, exc.describe(), exc.retry_after, counted=not exc.sent_nothing)

    def retry(
        self,
        message_id: str,
        claim: Claim,
        error: str,
        retry_after: float | None,
        *,
        counted: bool = True,
        fields: dict[str, Any] | None = None,
        kind: str = "retry",
        spare: bool = False,
    ) -> Outcome:
        """Try again later. `counted`: the try spent an attempt (something may have been
        sent); `spare`: go on even when the attempts are spent (an in-doubt send waiting for
        the provider to be asked, which sends nothing by itself)."""
        fields = dict(fields or {})
        # tries that sent nothing never end a message, but they may move it to the other provider
        tried = claim.attempts if counted else claim.free_tries + 1
        if tried >= self.settings.max_attempts and not spare:
            from hudhud.worker.delivery import failover

            moved = failover.spent_elsewhere(self, message_id, claim, error, fields)
            if moved is not None:
                return moved
        if counted and claim.attempts >= self.settings.max_attempts and not spare:
            return self.end(
                message_id,
                claim,
                Status.FAILED,
                error=f"retries spent after {claim.attempts} attempts: {error}",
                fields=fields,
            )
        tries = claim.attempts
        if not counted:  # nothing was sent: its own count drives the back-off, not the budget
            tries = claim.free_tries + 1
            fields["free_tries"] = str(tries)
        delay = backoff(max(1, tries), self.settings.backoff_base, self.settings.backoff_cap)
        delay = max(delay, retry_after or 0.0)
        now = time.time()
        if self.expires_by(claim, now + delay) and not fields.get("in_doubt"):
            return self.expire(message_id, claim, now)
        park = placement(now + delay, now, self.ledger.park_after) is Placement.PARK
        log.info("message %s retry in %.1fs (attempt %d): %s", message_id, delay, claim.attempts, error)
        self.record(
            message_id,
            claim,
            Status.QUEUED,
            now,
            event(kind, now, error=error, delay=round(delay, 3), counted=None if counted else False),
            {"error": error, "next_attempt_at": now + delay, **fields},
            zset="scheduled" if park else "queued",
            score=now + delay,
            attempts_delta=0 if counted else -1,
        )
        outcome = DeliveryOutcome.PARKED if park else DeliveryOutcome.RETRY
        return Outcome(outcome, retry_in=None if park else delay)

    def expires_by(self, claim: Claim, moment: float) -> bool:
        """Whether a claimed message's expiry comes at or before `moment` (never one in doubt:
        its provider may have it)."""
        return claim.expires is not None and claim.expires <= moment and not claim.in_doubt

    def expire(self, message_id: str, claim: Claim, now: float) -> Outcome:
        """End a claimed message `expired` instead of making it wait past its expiry."""
        expires_at = iso(claim.expires) if claim.expires is not None else None
        log.info("message %s expired: its next try would come after its expires_at", message_id)
        ev = event(Status.EXPIRED, now, error=EXPIRED_ERROR, expires_at=expires_at)
        self.record(message_id, claim, Status.EXPIRED, now, ev, {"error": EXPIRED_ERROR})
        return Outcome(DeliveryOutcome.EXPIRED)

    def hold(self, message_id: str, claim: Claim, exc: ProviderError, **reason: Any) -> Outcome:
        """An account-level fault: the provider is paused for every worker, the message waits."""
        now = time.time()
        pause = {
            "kind": exc.kind,
            "error": exc.describe(),
            "since": now,
            "code": exc.code,
            "message_id": message_id,
            **reason,
        }
        log.warning("provider %s paused (%s): %s", claim.provider, exc.kind, exc.describe())
        self.record(
            message_id,
            claim,
            Status.QUEUED,
            now,
            event("held", now, error=exc.describe()),
            {"error": exc.describe()},
            zset="held",
            score=now,
            attempts_delta=-1,
            pause=pause,
        )
        return Outcome(DeliveryOutcome.HELD)

    def _park(self, message_id: str, claim: Claim, error: str) -> None:
        now = time.time()
        log.error("message %s waits: %s", message_id, error)
        self.record(
            message_id,
            claim,
            Status.QUEUED,
            now,
            event("held", now, error=error),
            {"error": error},
            zset="scheduled",
            score=now + 60,
            attempts_delta=-1,
        )

    def record(
        self,
        message_id: str,
        claim: Claim,
        status: Status,
        now: float,
        ev: str,
        fields: dict[str, Any],
        *,
        zset: str = "",
        score: float = 0.0,
        attempts_delta: int = 0,
        pause: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome of this claim; False if the claim had run out meanwhile.

        The outcome of a provider call is kept until Redis takes it: a full Redis makes this
        wait instead of losing it (which would send the message again)."""

        def write(expect: str | frozenset[Status], extra: dict[str, Any]) -> tuple[str, str]:
            op = op_token()  # made once: a write Redis ran but did not answer is recognized
            return cast(
                tuple[str, str],
                self.patiently(
                    f"the {status} outcome of {message_id}",
                    lambda: self.ledger.transition(
                        message_id,
                        to=status,
                        expect=expect,
                        now=now,
                        event_json=ev,
                        token=claim.attempts,
                        provider=claim.provider,
                        zset=zset,
                        score=score,
                        attempts_delta=attempts_delta,
                        pause=pause,
                        fields={**fields, **extra},
                        op=op,
                    ),
                ),
            )

        outcome, current = write(Status.SENDING, {})
        if outcome == "stale" and status in ANSWERED and current in PENDING:
            # The lease ran out while this outcome waited (a long call, a full Redis) and beat
            # took the send for lost. No claim came since (the token, the attempt number,
            # still holds), so what the provider answered is still the truth: it wins.
            doubt = {"in_doubt": "1" if claim.in_doubt else "", "reconcile": ""}
            outcome, current = write(PENDING, doubt)
        if outcome == "stale":
            log.warning("message %s: late %s result while %s", message_id, status, current)
            if status == Status.SENT:
                self.ledger.flag(message_id, in_doubt="1")
                self.ledger.add_event(message_id, "late_sent", now=now)
        return outcome == "ok"


def narrowed(claim: Claim, recipients: list[str]) -> Claim:
    """The claim with its payload sent to `recipients` only."""
    return replace(claim, payload={**claim.payload, "to": recipients})


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential back-off with jitter: base * 2^(attempt-1), capped, times 0.5-1.0."""
    raw = min(cap, base * (2 ** max(0, attempt - 1)))
    return raw * random.uniform(0.5, 1.0)
