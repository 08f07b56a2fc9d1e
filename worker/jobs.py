"""The periodic jobs run by beat: release due messages, recover lost tasks and expired claims,
watch Taqnyat's status and balance, resume paused providers, and poll Taifa's events.

Each job is safe to run on several workers at once: every move is an atomic ledger script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from celery import Celery

from hudhud.config import Settings
from hudhud.worker import campaign, publish
from hudhud.worker.delivery import Delivery
from hudhud.worker.ledger import Ledger, event, held_key, iso
from hudhud.worker.producer import dispatch
from hudhud.worker.providers.errors import ProviderError
from hudhud.worker.providers.http import Redactor

log = logging.getLogger("hudhud.jobs")

TAIFA_FINAL = {
    "delivered": "delivered",
    "bounced": "bounced",
    "failed": "failed",
    "rejected": "rejected",
    "error": "failed",
    "cancelled": "failed",
}
# Taifa's events that are statuses hudhud records itself (its own `queued`, `sent`, and the
# final ones it moves the message to); the others (opened, clicked, ...) are kept as events.
STATUS_EVENTS = frozenset({"queued", "scheduled", "sent", *TAIFA_FINAL})
PROVIDERS = ("taqnyat", "taifa")
# A message waiting behind a backlog in its queue is enqueued again only once it is this many
# times `requeue_after` overdue (its own task is most likely still in the queue).
BACKLOG_PATIENCE = 10


EVENTS_LOCK = "hudhud:lock:taifa-events"
UPDATES_PAGES = 100  # pages of Taifa's updates feed read per run, 50 changes each
_redact = Redactor()


def _scrubbed(value: Any) -> Any:
    """Provider event metadata without addresses or numbers (bounce texts quote them)."""
    if isinstance(value, dict):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return _redact(value) if isinstance(value, str) else value


def _reason(kind: str, metadata: Any) -> str:
    words = ""
    if isinstance(metadata, dict):
        for key in ("reason", "error", "message", "description", "diagnostic"):
            if isinstance(metadata.get(key), str) and metadata[key].strip():
                words = _redact(metadata[key].strip())[:300]
                break
    return f"taifa: {kind}" + (f": {words}" if words else "")


def _when(moment: Any, now: float) -> str:
    """A provider's time in the ledger's one format (ISO 8601, milliseconds, `Z`)."""
    if isinstance(moment, datetime):
        stamp = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return iso(stamp.timestamp())
    return iso(now)


def eta_of(due: float, now: float) -> datetime | None:
    return datetime.fromtimestamp(due, UTC) if due > now + 0.05 else None


class Jobs:
    def __init__(
        self, ledger: Ledger, settings: Settings, app: Celery, clients: Callable[[str], Any]
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.app = app
        self.clients = clients

    # --- scheduling -----------------------------------------------------------------
    def release_due(self) -> int:
        """Parked messages due within the ETA window become ETA tasks (exact due time)."""
        now = time.time()
        released = 0
        while True:
            sweep = self.ledger.release_due(until=now + self.ledger.park_after, now=now, count=500)
            self._report_gone("scheduled", sweep.gone)
            publish.push(
                self.ledger.redis,
                self.app,
                (
                    (mid, provider, channel, eta_of(float(due), now))
                    for mid, channel, provider, due in sweep.items
                ),
            )
            released += len(sweep.items)
            if len(sweep.items) + len(sweep.gone) < 500:
                return released

    def requeue_stale(self) -> int:
        """Queued messages whose task never ran (lost publish, Redis crash, a worker killed
        while it held the ETA task of a message due soon): enqueue again once they are
        `requeue_after` seconds overdue. A duplicate task is harmless: the claim lets only one
        through."""
        now = time.time()
        after = self.settings.requeue_after
        sweep = self.ledger.requeue_stale(
            older_than=now - after, now=now, hard_limit=now - after * BACKLOG_PATIENCE
        )
        self._report_gone("queued", sweep.gone)
        publish.push(self.ledger.redis, self.app, ((mid, prov, ch, None) for mid, ch, prov in sweep.items))
        if sweep.items:
            log.warning("re-enqueued %d queued messages whose task was not seen", len(sweep.items))
        return len(sweep.items)

    def _report_gone(self, index: str, gone: list[str]) -> None:
        """An index entry without its record: Redis lost it (eviction, a restart without
        persistence, an expiry). The message cannot be sent; say so loudly."""
        if gone:
            log.error(
                "%d %s messages have no record any more (evicted or lost by Redis): %s",
                len(gone),
                index,
                ", ".join(gone[:20]),
            )

    # --- expired claims -------------------------------------------------------------
    def recover_leases(self) -> int:
        """A worker died during a provider call: the send is in doubt (`hudhud.worker.doubt`)."""
        from hudhud.worker import doubt

        sweep = self.ledger.expired_leases(now=time.time())
        self._report_gone("sending", sweep.gone)
        delivery = Delivery(self.ledger, self.settings, self.clients)
        for message_id, provider, attempts in sweep.items:
            outcome = doubt.lease_ran_out(delivery, message_id, provider, int(attempts or 0))
            if outcome.result == "retry":
                channel = self.ledger.field(message_id, "channel") or "sms"
                dispatch(self.app, message_id, channel, provider, time.time() + (outcome.retry_in or 0))
        if sweep.items:
            log.warning("recovered %d expired claims", len(sweep.items))
        return len(sweep.items)

    # --- provider health ------------------------------------------------------------
    def taqnyat_status(self) -> bool:
        """Pause Taqnyat while /system/status reports an outage; resume when it clears."""
        try:
            status = self.clients("taqnyat").system_status()
        except ProviderError as exc:
            log.warning("taqnyat status unknown: %s", exc)
            return True
        reason = self.ledger.pause_reason("taqnyat")
        if not status.operational:
            if self.ledger.pause(
                "taqnyat", {"kind": "outage", "error": status.description, "since": time.time()}
            ):
                log.warning("taqnyat paused: outage reported (%s)", status.description)
            return False
        if reason and reason.get("kind") == "outage":
            self.resume("taqnyat")
        return True

    def taqnyat_balance(self) -> Decimal | None:
        try:
            balance = self.clients("taqnyat").balance()
        except ProviderError as exc:
            log.warning("taqnyat balance unknown: %s", exc)
            self.release_short("taqnyat", None)
            return None
        amount = Decimal(balance.balance)
        if amount <= Decimal(str(self.settings.low_balance)):
            log.warning("taqnyat balance is low: %s %s", amount, balance.currency or "")
        self.release_short("taqnyat", amount)
        return amount

    def release_short(self, provider: str, balance: Decimal | None) -> int:
        """Sends the balance could not pay for go again after a top-up (or to end)."""
        from hudhud.worker import shortfall

        now = time.time()
        delivery = Delivery(self.ledger, self.settings, self.clients)
        ready = shortfall.due_again(delivery, provider, balance, now=now)
        for message_id, topped_up in ready:
            outcome, _ = self.ledger.transition(
                message_id,
                to="queued",
                expect="queued",
                now=now,
                provider=provider,
                zset="queued",
                score=now,
                fields={"short_since": ""} if topped_up else None,
            )
            if outcome == "ok":
                dispatch(self.app, message_id, self.ledger.field(message_id, "channel") or "sms", provider)
        if ready:
            log.warning("%d sends that waited for a %s top-up go again", len(ready), provider)
        return len(ready)

    def probe_paused(self) -> list[str]:
        """Probe every paused provider; resume those that answer well."""
        resumed = []
        for provider in PROVIDERS:
            reason = self.ledger.pause_reason(provider)
            if reason is None and self.ledger.held_count(provider):
                self.resume(provider)  # held messages left by a pause already lifted
                continue
            if reason is None or reason.get("kind") == "outage":
                continue
            if self._probe(provider, reason):
                self.resume(provider)
                resumed.append(provider)
        return resumed

    def _probe(self, provider: str, reason: dict[str, Any]) -> bool:
        from hudhud.worker import shortfall

        try:
            if provider == "taqnyat":
                balance = self.clients("taqnyat").balance()
                if reason.get("kind") == "balance" and not shortfall.grown(
                    Decimal(balance.balance), reason.get("balance") or 0
                ):
                    return False
                status = self.clients("taqnyat").system_status()
                return bool(status.operational)
            self.clients("taifa").list(limit=1)
            return True
        except ProviderError as exc:
            log.info("probe of %s: still failing (%s)", provider, exc.kind)
            return False

    def resume(self, provider: str) -> int:
        self.ledger.resume(provider)
        now = time.time()
        moved = 0
        while True:
            sweep = self.ledger.release_held(held_key(provider), now=now)
            self._report_gone("held", sweep.gone)
            publish.push(
                self.ledger.redis, self.app, ((mid, prov, ch, None) for mid, ch, prov, _ in sweep.items)
            )
            moved += len(sweep.items)
            if len(sweep.items) + len(sweep.gone) < 1000:
                break
        log.warning("provider %s resumed; %d held messages re-enqueued", provider, moved)
        return moved

    # --- Taifa events ---------------------------------------------------------------
    def taifa_events(self, limit: int = 200) -> int:
        """Read Taifa's events of emails not yet final: delivered, bounced, failed; opened and
        clicked are recorded as events."""
        now = time.time()
        # One poller at a time: two would both append the same new events.
        lock = self.ledger.redis.lock(
            EVENTS_LOCK, timeout=max(60.0, self.settings.events_interval * 4), blocking=False
        )
        if not lock.acquire():
            return 0
        try:
            self.ledger.untrack_older_than(now - self.settings.tracking_days * 86400)
            finished = 0
            for message_id in self.ledger.tracked(limit=limit):
                finished += self._poll_one(message_id, now)
            return finished + self._follow_updates(now)
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _follow_updates(self, now: float, pages: int = UPDATES_PAGES) -> int:
        """Read Taifa's feed of status changes from the cursor on; record the final status of
        each email of ours in it. The cursor moves only past pages fully recorded.

        The feed finds the emails whose fate is known with one call per 50 changes, however
        many are waiting; the poll of single emails by id above stays as a safety net."""
        since = self.ledger.redis.get(campaign.UPDATES_CURSOR)
        if since is None:
            return 0  # no email was ever handed to Taifa
        cursor = since.decode() if isinstance(since, bytes) else str(since)
        client = self.clients("taifa")
        finished = 0
        for _ in range(pages):
            try:
                page = client.updates(cursor)
            except ProviderError as exc:
                log.info("Taifa's updates feed unavailable: %s", exc.kind)
                break
            rows = [row for row in page.items if row.status in TAIFA_FINAL]
            for row, ref in zip(
                rows, campaign.followed(self.ledger.redis, [r.id for r in rows]), strict=True
            ):
                if ref is not None:
                    finished += self._finish_email(client, row.id, ref, TAIFA_FINAL[row.status], now)
            if not page.next_since or page.next_since == cursor:
                break
            cursor = page.next_since
            self.ledger.redis.set(campaign.UPDATES_CURSOR, cursor)
            if len(page.items) < campaign.UPDATES_FULL_PAGE:
                break
        return finished

    def _finish_email(self, client: Any, email_id: str, ref: tuple[str, str], status: str, now: float) -> int:
        batch, recipient = ref
        if not recipient:  # a single email: its events and status, as the poll by id does
            finished = self._poll_one(batch, now)
            self.ledger.redis.delete(f"{campaign.TAIFA_ID_PREFIX}{email_id}")
            return finished
        error = None
        if status != "delivered":
            error = f"taifa: {status}"
            with contextlib.suppress(ProviderError):
                for item in client.events(email_id):
                    if item.event_type in TAIFA_FINAL:
                        error = _reason(item.event_type, item.metadata)
        final = "failed" if status == "rejected" else status
        return int(
            campaign.finish_recipient(self.ledger, batch, recipient, email_id, final, now=now, error=error)
        )

    def _poll_one(self, message_id: str, now: float) -> int:
        record = self.ledger.get(message_id)
        if record is None or record.get("status") != "sent" or not record.get("provider_message_id"):
            self.ledger.redis.zrem("hudhud:tracking", message_id)
            return 0
        try:
            events = self.clients("taifa").events(record["provider_message_id"])
        except ProviderError as exc:
            log.info("events of %s unavailable: %s", message_id, exc.kind)
            return 0
        seen = int(record.get("taifa_events_seen") or 0)
        final = None
        reason = None
        pipe = self.ledger.redis.pipeline(transaction=False)
        for item in events[seen:]:
            if item.event_type in STATUS_EVENTS:
                continue  # a status of Taifa's own: hudhud's status change records it once
            metadata = _scrubbed(item.metadata) if item.metadata else None
            pipe.rpush(
                f"hudhud:e:{message_id}",
                json.dumps(
                    {
                        "type": item.event_type,
                        "at": _when(item.created_at, now),
                        "source": "taifa",
                        **({"metadata": metadata} if metadata else {}),
                    },
                    default=str,
                ),
            )
        for item in events:
            if item.event_type in TAIFA_FINAL:
                final = TAIFA_FINAL[item.event_type]
                reason = _reason(item.event_type, item.metadata)
        pipe.hset(f"hudhud:m:{message_id}", "taifa_events_seen", len(events))
        pipe.execute()
        if final is None:
            return 0
        self.ledger.transition(
            message_id,
            to=final,
            expect="sent",
            now=now,
            provider="taifa",
            event_json=event(final, now, via="taifa events", error=reason if final != "delivered" else None),
            fields={"error": reason} if final != "delivered" and reason else None,
        )
        return 1
