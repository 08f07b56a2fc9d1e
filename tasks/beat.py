"""Periodic jobs, scheduled by `hudhud beat` (see `hudhud.worker.broker.celery_app._beat_schedule`).

The task names stay as deployments know them; each job loops over every registered provider.
"""

from __future__ import annotations

import os

from hudhud.config import get_settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import app
from hudhud.worker.jobs import Jobs

# The jobs (about 90 a minute) send no task events, so Flower lists deliveries and intake only;
# HUDHUD_BEAT_EVENTS=1 in the workers' environment lists the jobs too.
BEAT_EVENTS = os.environ.get("HUDHUD_BEAT_EVENTS", "").strip() == "1"


def jobs() -> Jobs:
    settings = get_settings()
    return Jobs(runtime.ledger(settings), settings, app, runtime.provider_client)


@app.task(name="hudhud.beat.release_due", ignore_result=True, send_events=BEAT_EVENTS)
def release_due() -> int:
    return jobs().release_due()


@app.task(name="hudhud.beat.expire_due", ignore_result=True, send_events=BEAT_EVENTS)
def expire_due() -> int:
    return jobs().expire_due()


@app.task(name="hudhud.beat.requeue_stale", ignore_result=True, send_events=BEAT_EVENTS)
def requeue_stale() -> int:
    return jobs().requeue_stale()


@app.task(name="hudhud.beat.recover_leases", ignore_result=True, send_events=BEAT_EVENTS)
def recover_leases() -> int:
    return jobs().recover_leases()


@app.task(name="hudhud.beat.taqnyat_status", ignore_result=True, send_events=BEAT_EVENTS)
def watch_outages() -> bool:
    return jobs().watch_outages()


@app.task(name="hudhud.beat.taqnyat_balance", ignore_result=True, send_events=BEAT_EVENTS)
def watch_balances() -> dict[str, str | None]:
    return {name: None if amount is None else str(amount) for name, amount in jobs().watch_balances().items()}


@app.task(name="hudhud.beat.probe_paused", ignore_result=True, send_events=BEAT_EVENTS)
def probe_paused() -> list[str]:
    return jobs().probe_paused()


@app.task(name="hudhud.beat.taifa_events", ignore_result=True, send_events=BEAT_EVENTS)
def follow_deliveries() -> int:
    return jobs().follow_deliveries()
