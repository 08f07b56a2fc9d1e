"""A send whose reply was lost: in doubt, never retried blindly.

A read timeout, a 500 or 504, a reply cut short, or a claim whose lease ran out (the worker
died during the call) may follow a send the provider accepted. Such a message is flagged
`in_doubt` (its record says so in every later state, unless the provider is asked and
answers what it has), and then:

- a provider that can be asked (`client.reconcile`: Taifa, by the tag `hudhud-<id>` every
  email carries) is asked before anything is sent again, at the next claim; what it has is
  recorded as sent, and only what it lacks is sent, email by email inside a campaign batch;
- a single message of a provider that cannot be asked (Taqnyat) is sent again at most
  `HUDHUD_IN_DOUBT_RESENDS` times (1); after that it ends `sent`, flagged in doubt, since it
  may well have been delivered: it is never sent a third time, and never a plain `failed`;
- a campaign batch of such a provider (up to a thousand recipients) is held, still `sending`
  and out of every queue, until an operator decides (`hudhud resolve ID --sent|--resend`);
  `HUDHUD_IN_DOUBT_BATCHES=resend` treats it as a single message, `=sent` records it sent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from hudhud.worker.delivery.attempt import Delivery, Outcome, recipients_of
from hudhud.worker.ledger import Claim, ClaimOutcome, Status, event, overview
from hudhud.worker.ledger.status import DeliveryOutcome
from hudhud.worker.providers.errors import AccountError, BalanceError, ProviderError
from hudhud.worker.providers.results import SendResult

log = logging.getLogger("hudhud.doubt")


def can_reconcile(delivery: Delivery, claim: Claim) -> bool:
    return bool(delivery.clients(claim.provider).reconcilable(claim.payload))


def after_lost_reply(delivery: Delivery, message_id: str, claim: Claim, error: str) -> Outcome:
    """What to do once a send's outcome is unknown (see the module's rules)."""
    log.warning("message %s is in doubt: %s", message_id, error)
    if not claim.in_doubt:
        overview.note_in_doubt(delivery.ledger)
    claim = replace(claim, in_doubt=True)
    if can_reconcile(delivery, claim):
        return delivery.retry(
            message_id,
            claim,
            f"in doubt: {error}; {claim.provider} is asked before any resend",
            None,
            fields={"in_doubt": "1", "reconcile": "1"},
            kind=Status.IN_DOUBT,
            spare=True,
        )
    if claim.payload.get("batch") and delivery.settings.in_doubt_batches != "resend":
        if delivery.settings.in_doubt_batches == Status.SENT:
            return sent_in_doubt(delivery, message_id, claim, error)
        return await_decision(delivery, message_id, claim, error)
    spent = claim.attempts >= delivery.settings.max_attempts
    if claim.resends >= delivery.settings.in_doubt_resends or spent:
        return sent_in_doubt(delivery, message_id, claim, error)
    return delivery.retry(
        message_id,
        claim,
        f"in doubt: {error}; sent again once",
        None,
        fields={"in_doubt": "1", "resends": str(claim.resends + 1)},
        kind=Status.IN_DOUBT,
    )


def sent_in_doubt(delivery: Delivery, message_id: str, claim: Claim, error: str) -> Outcome:
    """No more resends: the provider most likely has it. Recorded `sent`, flagged."""
    now = time.time()
    words = f"in doubt: {error}; not sent again (it may have been delivered)"
    delivery.record(
        message_id,
        claim,
        Status.SENT,
        now,
        event(Status.SENT, now, in_doubt=True, error=words),
        {"in_doubt": "1", "error": words},
    )
    return Outcome(DeliveryOutcome.SENT)


def await_decision(delivery: Delivery, message_id: str, claim: Claim, error: str) -> Outcome:
    """A whole batch is not sent again blind: it waits, `sending`, for an operator."""
    now = time.time()
    words = (
        f"in doubt: {error}; held for a decision "
        f"(hudhud resolve {message_id} --sent, or --resend to send the whole batch again)"
    )
    delivery.record(
        message_id,
        claim,
        Status.SENDING,
        now,
        event(Status.IN_DOUBT, now, error=words),
        {"in_doubt": "1", "error": words, "lease_until": ""},
        zset="doubt",
        score=now,
    )
    return Outcome(DeliveryOutcome.DOUBT)


def reconcile_first(delivery: Delivery, message_id: str, claim: Claim) -> Outcome | Claim:
    """Ask the provider what it got of an in-doubt send. Returns the outcome when that
    settles it, else the claim narrowed to what is still to send."""
    client = delivery.clients(claim.provider)
    try:
        found = client.reconcile(message_id)
    except (AccountError, BalanceError) as exc:
        return delivery.hold(message_id, claim, exc)
    except ProviderError as exc:
        return delivery.retry(
            message_id,
            claim,
            f"in doubt: {claim.provider} cannot be asked yet ({exc.describe()})",
            getattr(exc, "retry_after", None),
            counted=False,
            kind=Status.IN_DOUBT,
            spare=True,
        )
    if found is None:
        # "cannot tell" is not "has none of it": resending could send it twice
        return await_decision(delivery, message_id, claim, f"{claim.provider} cannot tell what it received")
    now = time.time()
    recipients = recipients_of(claim.payload)
    if not claim.payload.get("each"):
        if found:
            email_id = next(iter(found.values()))
            delivery.ledger.add_event(message_id, "reconciled", now=now, provider_message_id=email_id)
            result = SendResult(claim.provider, email_id, Status.QUEUED, accepted=tuple(recipients))
            return delivery.sent(message_id, claim, result, how="reconciled")
        delivery.ledger.add_event(message_id, "reconciled", now=now, found=0)
        if claim.attempts > delivery.settings.max_attempts:
            return delivery.end(
                message_id,
                replace(claim, in_doubt=False),
                Status.FAILED,
                error=f"retries spent after {claim.attempts - 1} attempts; {claim.provider} has none of it",
                fields={"in_doubt": ""},
            )
        delivery.ledger.flag(message_id, reconcile="")
        return replace(claim, reconcile=False, in_doubt=True)
    have = dict(claim.reconciled)
    have.update({r: found[r.strip().lower()] for r in recipients if r.strip().lower() in found})
    remaining = [r for r in recipients if r not in have]
    delivery.ledger.add_event(message_id, "reconciled", now=now, found=len(have), remaining=len(remaining))
    claim = replace(claim, reconcile=False, in_doubt=True, reconciled=have)
    if not remaining:
        result = SendResult(claim.provider, None, Status.QUEUED, accepted=tuple(recipients), item_ids=have)
        return delivery.sent(message_id, claim, result, how="reconciled")
    delivery.ledger.flag(message_id, reconcile="", reconciled=json.dumps(have))
    return replace(claim, payload={**claim.payload, "to": remaining})


def without_reconciled(claim: Claim) -> Claim:
    """The claim of a batch whose reconciled part is recorded: only the rest is sent."""
    rest = [r for r in recipients_of(claim.payload) if r not in claim.reconciled]
    return replace(claim, payload={**claim.payload, "to": rest})


def merged(claim: Claim, result: Any) -> Any:
    """A provider's answer to the rest of a batch, joined with what reconciling found."""
    if not claim.reconciled or not isinstance(result, SendResult):
        return result
    accepted = (*claim.reconciled, *(r for r in result.accepted if r not in claim.reconciled))
    return replace(
        result,
        status=Status.QUEUED,
        accepted=tuple(accepted),
        item_ids={**claim.reconciled, **result.item_ids},
    )


def rest_refused(claim: Claim, reason: str) -> SendResult:
    """What reconciling found is sent; the provider refused the rest of the batch."""
    return SendResult(
        claim.provider,
        None,
        Status.QUEUED,
        accepted=tuple(claim.reconciled),
        rejected=tuple(recipients_of(claim.payload)),
        rejection_reason=reason,
        item_ids=dict(claim.reconciled),
    )


def lease_ran_out(delivery: Delivery, message_id: str, provider: str, attempts: int) -> Outcome:
    """A claim whose lease expired: its worker died during the provider call, so the
    send is in doubt. Called by beat, with the recovery of the lease already owned."""
    record = delivery.ledger.get(message_id) or {}
    if record.get("status") != Status.SENDING:
        return Outcome(DeliveryOutcome.SKIP)
    claim = Claim(
        ClaimOutcome.CLAIMED,
        attempts=attempts,
        payload=json.loads(record.get("payload") or "{}"),
        channel=record.get("channel", ""),
        provider=provider,
        in_doubt=record.get("in_doubt") == "1",
        resends=int(record.get("resends") or 0),
        reconciled=json.loads(record.get("reconciled") or "{}"),
    )
    return after_lost_reply(delivery, message_id, claim, "the claim's lease ran out during the provider call")


def awaiting_decision(delivery: Delivery, limit: int = 1000) -> list[tuple[str, float]]:
    """Batches held in doubt for an operator, oldest first: (id, since)."""
    return delivery.ledger.in_index("doubt", limit=limit)


def decide(delivery: Delivery, message_id: str, *, resend: bool) -> Status:
    """An operator's decision on a batch held in doubt: send it again whole (`resend`), or
    record it as sent. Returns the new status (`queued`: the caller enqueues its delivery);
    raises LookupError when it is not held."""
    if not delivery.ledger.is_in("doubt", message_id):
        raise LookupError(f"message {message_id} is not held in doubt for a decision")
    now = time.time()
    record = delivery.ledger.get(message_id) or {}
    provider = record.get("provider", "")
    if resend:
        words = "in doubt: sent again whole by an operator's decision"
        fields = {"error": words, "resends": str(int(record.get("resends") or 0) + 1)}
        to, zset = Status.QUEUED, "queued"
    else:
        words = "in doubt: recorded as sent by an operator's decision"
        fields, to, zset = {"error": words}, Status.SENT, ""
    outcome, current = delivery.ledger.transition(
        message_id,
        to=to,
        expect=Status.SENDING,
        now=now,
        provider=provider,
        zset=zset,
        score=now,
        event_json=event(to, now, decision="resend" if resend else "sent", error=words),
        fields=fields,
    )
    if outcome != "ok":
        raise LookupError(f"message {message_id} is {current or 'gone'}: nothing to decide")
    return to
