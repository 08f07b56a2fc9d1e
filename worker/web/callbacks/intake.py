"""Which callback a change makes: to the message's own `callback_url`, else to
`HUDHUD_CALLBACK_URL`, else none; none either to an endpoint disabled by a 410 (the
operator's URL exactly; a message's own URL by its origin: scheme, host and port)."""

from __future__ import annotations

from dataclasses import dataclass

from hudhud.config import Settings
from hudhud.worker.ledger.callbacks import Callback, CallbackStore
from hudhud.worker.ledger.changes import Change
from hudhud.worker.producer import targets
from hudhud.worker.web.callbacks.body import body_of

NO_ENDPOINT = "no endpoint"
DISABLED = "disabled"


@dataclass(frozen=True)
class Prepared:
    callback: Callback | None
    why_not: str = ""  # NO_ENDPOINT or DISABLED when there is no callback


def endpoint(target: str, settings: Settings) -> str:
    """Where a callback of `target` goes now ('' : nowhere)."""
    return target or settings.callback_url or ""


def disabled_as(target: str, settings: Settings) -> str:
    """What a 410 of a callback of `target` disables: a message's own URL stands for its whole
    origin (a URL per message would otherwise be one endpoint more at each 410)."""
    return targets.origin(target) if target else settings.callback_url or ""


def prepare(change: Change, store: CallbackStore, settings: Settings) -> Prepared:
    record = store.message_fields(change.id)
    target = record.get("callback_url", "")
    url = endpoint(target, settings)
    if not url:
        return Prepared(None, NO_ENDPOINT)
    if store.is_disabled(disabled_as(target, settings)):
        return Prepared(None, DISABLED)
    return Prepared(Callback(change.entry, change.id, target, body_of(change, record)))
