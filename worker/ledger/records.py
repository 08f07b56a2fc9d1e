"""What the ledger takes and answers: a new message, a creation's outcome, a claim, a beat
sweep; and the small values its scripts are given (ISO times, history entries, op tokens)."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hudhud.worker.ledger.status import ClaimOutcome, Lane, Status


def op_token() -> str:
    """A token for one script call, so that the call sent again recognizes its first run."""
    return uuid.uuid4().hex


@functools.lru_cache(maxsize=256)
def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, at: float, **extra: Any) -> str:
    fields = {k: v for k, v in extra.items() if v is not None}
    if not fields:
        return _plain_event(kind, at)
    return json.dumps({"type": kind, "at": iso(at), **fields}, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _plain_event(kind: str, at: float) -> str:
    return json.dumps({"type": kind, "at": iso(at)}, separators=(",", ":"))


def text(value: Any) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class NewMessage:
    """A validated message ready to be recorded."""

    id: str
    channel: str
    provider: str
    payload: Mapping[str, Any]
    request_hash: str
    key: str | None = None
    due: float | None = None  # epoch seconds when scheduled
    retry_of: str | None = None
    status: Status = Status.QUEUED
    reference: str | None = None
    callback_url: str | None = None
    lane: str = Lane.TRANSACTIONAL
    expires: float | None = None  # epoch seconds: not handed over by then, it ends `expired`
    pinned: bool = False  # its provider was named: email failover never moves it


@dataclass(frozen=True)
class Created:
    outcome: str  # created | duplicate | exists | conflict | withheld (a batch refused whole)
    id: str
    status: str


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    attempts: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    channel: str = ""
    provider: str = ""
    in_doubt: bool = False
    status: Status | None = None  # where a `skip` found the message
    wait: float = 0.0
    resends: int = 0  # in-doubt resends already made
    reconcile: bool = False  # ask the provider what it has before sending again
    reconciled: dict[str, str] = field(default_factory=dict)  # recipient -> provider id found
    probe: bool = False  # the first claim after the provider asked every caller to slow down
    free_tries: int = 0  # tries that spent no attempt (nothing was sent): they drive the back-off
    lane: str = Lane.TRANSACTIONAL
    expires: float | None = None  # epoch seconds
    # positions (in to, then cc, then bcc) of recipients on the suppression list: not sent to
    suppressed: tuple[int, ...] = ()


@dataclass(frozen=True)
class Sweep:
    """What a beat move found: the items it moved, and ids whose record is gone."""

    items: list[tuple[str, ...]]
    gone: list[str]
