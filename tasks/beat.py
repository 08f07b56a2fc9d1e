"""Periodic jobs, scheduled by `hudhud beat` (see `hudhud.worker.celery_app._beat_schedule`)."""

from __future__ import annotations

from hudhud.config import get_settings
from hudhud.worker import runtime
from hudhud.worker.celery_app import app
from hudhud.worker.jobs import Jobs


def jobs() -> Jobs:
    settings = get_settings()
    return Jobs(runtime.ledger(settings), settings, app, runtime.provider_client)


@app.task(name="hudhud.beat.release_due", ignore_result=True)
def release_due() -> int:
    return jobs().release_due()


@app.task(name="hudhud.beat.requeue_stale", ignore_result=True)
def requeue_stale() -> int:
    return jobs().requeue_stale()


@app.task(name="hudhud.beat.recover_leases", ignore_result=True)
def recover_leases() -> int:
    return jobs().recover_leases()


@app.task(name="hudhud.beat.taqnyat_status", ignore_result=True)
def taqnyat_status() -> bool:
    return jobs().taqnyat_status()


@app.task(name="hudhud.beat.taqnyat_balance", ignore_result=True)
def taqnyat_balance() -> str | None:
    balance = jobs().taqnyat_balance()
    return None if balance is None else str(balance)


@app.task(name="hudhud.beat.probe_paused", ignore_result=True)
def probe_paused() -> list[str]:
    return jobs().probe_paused()


@app.task(name="hudhud.beat.taifa_events", ignore_result=True)
def taifa_events() -> int:
    return jobs().taifa_events()
