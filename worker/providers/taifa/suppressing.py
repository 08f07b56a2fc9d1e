"""Which of Taifa's reports put a recipient on the suppression list: a hard bounce, a complaint.

Taifa's public docs name a `bounced` event and status but say nothing of its kinds; its
events carry free `metadata`. So the words are read liberally: a bounce is soft when its
metadata says so (`bounce_type`, `type`, `classification`, ... of soft, transient,
temporary, or a 4xx / 4.x.x SMTP code in its reason) and hard otherwise, since Taifa reports
a delivery it will not try again as `failed`, not `bounced`. A complaint is any event type of
complaint or spam (`complained`, `email.complaint`, `spam_report`, ...), or a bounce whose
metadata calls it one.

The recipient: a campaign's by its fingerprint (as Taifa's ids are mapped); a single email's
by the address the report names, if any, else its only `to` (the record's `fps`: its payload
is erased by then); an email to several with no address named suppresses no one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.suppression import (
    Kind,
    Source,
    Suppressions,
    automatic,
    normalized,
    to_fingerprints,
)
from hudhud.worker.providers.taifa.failures import PROVIDER

if TYPE_CHECKING:
    from hudhud.worker.ledger.tracking import Tracker

COMPLAINT_WORDS = frozenset(
    {"complained", "complaint", "complaints", "spam", "spam_report", "spamreport", "spam_complaint"}
    | {"abuse", "abuse_report", "marked_as_spam", "reported_spam", "fbl"}
)
HARD_WORDS = frozenset({"hard", "hard_bounce", "hardbounce", "permanent", "permanent_failure", "invalid"})
SOFT_WORDS = frozenset({"soft", "soft_bounce", "softbounce", "transient", "temporary", "undetermined"})
SOFT_EVENTS = frozenset({"soft_bounce", "softbounce", "soft_bounced", "deferred", "delayed"})
BOUNCE_EVENTS = frozenset({"bounced", "bounce", "hard_bounce", "hardbounce", "hard_bounced"})
KIND_FIELDS: tuple[str, ...] = (
    "bounce_type",
    "bouncetype",
    "type",
    "bounce_class",
    "classification",
    "category",
    "kind",
)
KIND_FIELDS += ("severity", "bounce", "bounce_kind", "bounce_category", "subtype", "bounce_sub_type")
WORDS_FIELDS = ("reason", "smtp_response", "diagnostic", "diagnostic_code", "error", "message", "status")
ADDRESS_FIELDS: tuple[str, ...] = (
    "email",
    "recipient",
    "to",
    "address",
    "email_address",
    "bounced_recipient",
    "rcpt_to",
)
ADDRESS_FIELDS += ("recipients", "to_addresses", "bounced_recipients")
_SOFT_CODE = re.compile(r"^\s*4\d\d\b|\b4\.\d{1,3}\.\d{1,3}\b")
_HARD_CODE = re.compile(r"^\s*5\d\d\b|\b5\.\d{1,3}\.\d{1,3}\b")


def _lower(value: Any) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(value, str) else ""


def _said(metadata: Any) -> Iterator[Mapping[str, Any]]:
    """The metadata and the objects it nests one level down (`bounce: {...}`, `data: {...}`)."""
    if isinstance(metadata, Mapping):
        yield metadata
        for value in metadata.values():
            if isinstance(value, Mapping):
                yield value


def _kind_words(metadata: Any) -> set[str]:
    return {_lower(said.get(name)) for said in _said(metadata) for name in KIND_FIELDS} - {""}


def is_soft(metadata: Any) -> bool:
    words = _kind_words(metadata)
    if words & HARD_WORDS or (isinstance(metadata, Mapping) and metadata.get("permanent") is True):
        return False
    if words & SOFT_WORDS or any(said.get("permanent") is False for said in _said(metadata)):
        return True
    texts = [str(said.get(name)) for said in _said(metadata) for name in WORDS_FIELDS if said.get(name)]
    return any(_SOFT_CODE.search(text) for text in texts) and not any(_HARD_CODE.search(t) for t in texts)


def cause(kind: str, metadata: Any) -> Source | None:
    """What one of Taifa's events says of its recipient: a complaint, a hard bounce, or neither."""
    word = _lower(kind).removeprefix("email.")
    if word in COMPLAINT_WORDS or _kind_words(metadata) & COMPLAINT_WORDS:
        return Source.COMPLAINT
    if word in SOFT_EVENTS:
        return None
    if word in BOUNCE_EVENTS and not is_soft(metadata):
        return Source.BOUNCE
    return None


def named_addresses(data: Any) -> list[str]:
    """The addresses an event names (plain, from Taifa's data, before it is scrubbed)."""
    found: dict[str, None] = {}
    for said in _said(data):
        for name in ADDRESS_FIELDS:
            value = said.get(name)
            for item in value if isinstance(value, list) else [value]:
                address = item.get("email") if isinstance(item, Mapping) else item
                if isinstance(address, str) and "@" in address:
                    with contextlib.suppress(InvalidInput):
                        found.setdefault(normalized(address, "email")[0], None)
    return list(found)


def recipient(tracker: Tracker, owner: tuple[str, str], data: Any) -> str | None:
    """The fingerprint of the recipient an event is about, or None when it cannot be told."""
    message_id, campaign_recipient = owner
    if campaign_recipient:
        return campaign_recipient
    named = named_addresses(data)
    if len(named) == 1:
        return tracker.ledger.fingerprints.of(named[0])
    primary = to_fingerprints(tracker.ledger.field(message_id, "fps"))
    return primary[0] if len(primary) == 1 else None


def suppress(tracker: Tracker, owner: tuple[str, str], kind: str, data: Any, *, on: str, now: float) -> bool:
    """Put the event's recipient on the suppression list when the event is a hard bounce or a
    complaint that `on` (HUDHUD_SUPPRESS_ON) asks for; whether it was added."""
    source = cause(kind, data)
    if source is None or source not in automatic(on):
        return False
    fingerprint = recipient(tracker, owner, data)
    if fingerprint is None:
        return False
    why = f"{PROVIDER}: {'hard bounce' if source is Source.BOUNCE else 'complaint'}"
    return Suppressions(tracker.ledger).after_report(
        owner[0], fingerprint, kind=Kind.ADDRESS, source=source, reason=why, now=now
    )
