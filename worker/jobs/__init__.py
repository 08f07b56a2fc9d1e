"""The periodic jobs run by beat, by concern: `scheduling` (release due messages),
`expiry` (end waiting messages whose expiry passed), `recovery` (lost tasks, expired claims),
`health` (provider outages, balances, probes and pauses) and `tracking` (what providers report
after the hand-over). Each loops over the registered providers; none names one.

Each job is safe to run on several workers at once: every move is an atomic ledger script.
"""

from __future__ import annotations

from decimal import Decimal

from hudhud.worker.jobs import expiry, health, recovery, scheduling, tracking
from hudhud.worker.jobs.context import Context

__all__ = ["Context", "Jobs"]


class Jobs(Context):
    """Every job, bound to one ledger, settings, app and provider clients."""

    def release_due(self) -> int:
        return scheduling.release_due(self)

    def expire_due(self) -> int:
        return expiry.expire_due(self)

    def requeue_stale(self) -> int:
        return recovery.requeue_stale(self)

    def recover_leases(self) -> int:
        return recovery.recover_leases(self)

    def watch_outages(self) -> bool:
        return health.watch_outages(self)

    def watch_balances(self) -> dict[str, Decimal | None]:
        return health.watch_balances(self)

    def probe_paused(self) -> list[str]:
        return health.probe_paused(self)

    def resume(self, provider: str) -> int:
        return health.resume(self, provider)

    def follow_deliveries(self) -> int:
        return tracking.follow_deliveries(self)
