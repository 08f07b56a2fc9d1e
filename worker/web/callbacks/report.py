"""What `hudhud callbacks status` and `hudhud check` show of the callbacks: pending, given up,
dropped, disabled endpoints (as `targets.shown` shows a URL), tries by what they got."""

from __future__ import annotations

import time
from typing import Any

from hudhud.config import Settings
from hudhud.worker.ledger.callbacks import CallbackStore
from hudhud.worker.producer import targets

OUTCOMES = ("delivered", "given_up", "dropped", "refused", "disabled")


def summary(store: CallbackStore, settings: Settings, now: float | None = None) -> dict[str, Any]:
    moment = time.time() if now is None else now
    stats = store.stats()
    due_now, later = store.waiting(moment)
    return {
        "endpoint": targets.shown(settings.callback_url) if settings.callback_url else None,
        "dispatchers": len(store.dispatchers(moment)),
        "pending": max(0, stats.get("pending", 0)),
        "due_now": due_now,
        "waiting_to_retry": later,
        "queued": stats.get("queued", 0),
        "replayed": stats.get("replayed", 0),
        **{name: stats.get(name, 0) for name in OUTCOMES},
        "attempts": {
            k.removeprefix("attempt:"): v for k, v in sorted(stats.items()) if k.startswith("attempt:")
        },
        "disabled_endpoints": [
            {"endpoint": targets.shown(url), "since": note.get("at")}
            for url, note in sorted(store.disabled().items())
        ],
        "last_given_up": store.given_up(),
    }


def lines(report: dict[str, Any]) -> list[str]:
    """The summary as text."""
    out = [
        f"endpoint:    {report['endpoint'] or '(HUDHUD_CALLBACK_URL not set)'}",
        f"dispatchers: {report['dispatchers']} running",
        f"pending:     {report['pending']} ({report['due_now']} due now, "
        f"{report['waiting_to_retry']} waiting to retry)",
        "done:        " + ", ".join(f"{report[name]} {name.replace('_', ' ')}" for name in OUTCOMES),
        "attempts:    " + (", ".join(f"{n} {got}" for got, n in report["attempts"].items()) or "none"),
    ]
    for endpoint in report["disabled_endpoints"]:
        out.append(f"disabled:    {endpoint['endpoint']} (answered 410; `hudhud callbacks enable URL`)")
    for note in report["last_given_up"]:
        what = f"{note.get('webhook_id')} {note.get('type')} of {note.get('id')}"
        out.append(f"given up:    {what} ({note.get('last')})")
    return out
