"""What every periodic job works with: the ledger, the settings, the Celery app, the clients."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from hudhud.config import Settings
from hudhud.worker.ledger import Ledger

log = logging.getLogger("hudhud.jobs")


@dataclass
class Context:
    ledger: Ledger
    settings: Settings
    app: Celery
    clients: Callable[[str], Any]  # provider name -> its client

    def report_gone(self, index: str, gone: list[str]) -> None:
        """An index entry without its record: Redis lost it (eviction, a restart without
        persistence, an expiry). The message cannot be sent; say so loudly."""
        if gone:
            log.error(
                "%d %s messages have no record any more (evicted or lost by Redis): %s",
                len(gone),
                index,
                ", ".join(gone[:20]),
            )
