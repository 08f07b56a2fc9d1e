"""The suppression list: numbers and addresses nothing is sent to, as keyed fingerprints.

One hash (`keys.SUPPRESSED`): the keyed fingerprint of a normalized number or address ->
JSON `{reason, source, kind, at}` (and `message`, the message whose report put it there).
The list never holds the plain number or address: a value is normalized the way a send's
recipients are (a number as `validation.msisdn` takes it, `+` or `00` dropped first; an
address as `validation.email` takes it, in lower case), so its fingerprint is the one the
claim computes from a message's recipients (`Ledger.recipient_fingerprints`). The claim reads
the hash by itself (`claim.lua`); every write is here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import Ledger, iso
from hudhud.worker.ledger.keys import SUPPRESSED
from hudhud.worker.producer import validation as v

MAX_REASON = 200
MAX_VALUES = 10_000  # values one call may add, remove or check
PAGE = 100  # entries a page of the list holds unless told
CHUNK = 5_000  # fingerprints looked up per round trip
_SPACING = re.compile(r"[\s().-]")  # what people write inside a number: 966 50-000 0000


class Source(StrEnum):
    """Who put a value on the list."""

    OPERATOR = "operator"  # `hudhud suppress add`
    API = "api"  # POST /v1/suppressions
    BOUNCE = "bounce"  # a provider reported a hard bounce
    COMPLAINT = "complaint"  # a provider reported a complaint (marked as spam)


class Kind(StrEnum):
    """The channel kind of a listed value."""

    NUMBER = "number"
    ADDRESS = "address"


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    reason: str
    source: str
    kind: str
    at: str
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {"fingerprint": self.fingerprint, "reason": self.reason, "source": self.source}
        shown.update({"kind": self.kind, "at": self.at})
        return shown | ({"message": self.message} if self.message else {})


def normalized(value: Any, field: str) -> tuple[str, Kind]:
    """`value` as a send's recipient would be kept, and its kind; InvalidInput naming `field`."""
    if isinstance(value, str) and "@" in value:
        return v.email(value, field).lower(), Kind.ADDRESS
    if isinstance(value, str):
        number = _SPACING.sub("", value)
        number = number[1:] if number.startswith("+") else number[2:] if number.startswith("00") else number
        return v.msisdn(number, field), Kind.NUMBER
    return v.msisdn(value, field), Kind.NUMBER


def reason_text(value: Any, field: str = "reason") -> str:
    if value is None:
        return ""
    return v.text(value, field, max_len=MAX_REASON, allow_empty=True, single_line=True).strip()


def _entry(fingerprint: str, raw: Any) -> Entry:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    return Entry(
        fingerprint,
        str(data.get("reason") or ""),
        str(data.get("source") or ""),
        str(data.get("kind") or ""),
        str(data.get("at") or ""),
        str(data["message"]) if data.get("message") else None,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Suppressions:
    """The suppression list of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.redis = ledger.redis

    def fingerprints(self, values: Any, field: str = "to") -> list[tuple[str, Kind]]:
        """Each value's fingerprint and kind, every value checked before any is used (the
        first bad one raises InvalidInput naming `field[i]`)."""
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise InvalidInput(field, "must be a list")
        given = list(values)
        if not given:
            raise InvalidInput(field, "needs at least one number or address")
        if len(given) > MAX_VALUES:
            raise InvalidInput(field, f"has too many values (at most {MAX_VALUES})")
        checked = [normalized(value, f"{field}[{i}]") for i, value in enumerate(given)]
        prints = self.ledger.fingerprints.of_all(value for value, _ in checked)
        return [(fp, kind) for fp, (_, kind) in zip(prints, checked, strict=True)]

    # --- writing ---------------------------------------------------------------------------

    def add(self, values: Any, *, reason: Any = None, source: Source, now: float) -> list[bool]:
        """Put each value on the list; for each, whether it was not there before (an entry
        already there keeps its first reason and source)."""
        text = reason_text(reason)
        return self.add_fingerprints(self.fingerprints(values), reason=text, source=source, now=now)

    def add_fingerprints(
        self,
        prints: Sequence[tuple[str, Kind]],
        *,
        reason: str,
        source: Source,
        now: float,
        message: str | None = None,
    ) -> list[bool]:
        """Put fingerprints already made (by `Ledger.fingerprints`) on the list."""
        pipe = self.redis.pipeline(transaction=True)
        for fp, kind in prints:
            entry = {"reason": reason, "source": source.value, "kind": kind.value, "at": iso(now)}
            if message:
                entry["message"] = message
            pipe.hsetnx(SUPPRESSED, fp, json.dumps(entry, separators=(",", ":")))
        return [bool(added) for added in pipe.execute()]

    def remove(self, values: Any) -> list[bool]:
        """Take each value off the list; for each, whether it was there."""
        prints = self.fingerprints(values)
        pipe = self.redis.pipeline(transaction=True)
        for fp, _ in prints:
            pipe.hdel(SUPPRESSED, fp)
        return [bool(removed) for removed in pipe.execute()]

    # --- reading ---------------------------------------------------------------------------

    def contains(self, values: Any) -> list[Entry | None]:
        """For each value, its entry when it is listed, else None."""
        prints = [fp for fp, _ in self.fingerprints(values)]
        found = self.redis.hmget(SUPPRESSED, prints)
        return [None if raw is None else _entry(fp, raw) for fp, raw in zip(prints, found, strict=True)]

    def listed(self, prints: Sequence[str]) -> set[str]:
        """Those of `prints` (fingerprints) that are listed, in a round trip per CHUNK."""
        out: set[str] = set()
        for start in range(0, len(prints), CHUNK):
            part = list(prints[start : start + CHUNK])
            found = self.redis.hmget(SUPPRESSED, part)
            out.update(fp for fp, raw in zip(part, found, strict=True) if raw is not None)
        return out

    def page(self, cursor: int = 0, count: int = PAGE) -> tuple[int, list[Entry]]:
        """One page of the list (SCAN order) and the cursor of the next (0: no more)."""
        following, found = self.redis.hscan(SUPPRESSED, cursor, count=count)
        pairs = found.items() if isinstance(found, dict) else zip(found[::2], found[1::2], strict=True)
        entries = [_entry(_text(fp), raw) for fp, raw in pairs]
        return int(following), sorted(entries, key=lambda e: e.at)

    def count(self) -> int:
        return int(self.redis.hlen(SUPPRESSED))

    # --- what providers report -------------------------------------------------------------

    def after_report(
        self, message_id: str, fingerprint: str, *, kind: Kind, source: Source, reason: str, now: float
    ) -> bool:
        """A recipient of `message_id` (by its fingerprint) put on the list because its provider
        reported a hard bounce or a complaint, with an event `suppression_added` on the
        message the first time; whether it was not listed before."""
        added = self.add_fingerprints(
            [(fingerprint, kind)], reason=reason, source=source, now=now, message=message_id
        )
        if added[0]:
            self.ledger.add_event(
                message_id, "suppression_added", now=now, source=source.value, reason=reason
            )
        return added[0]


def automatic(setting: str) -> frozenset[Source]:
    """The reports that put a recipient on the list by themselves (`HUDHUD_SUPPRESS_ON`:
    `bounce`, `complaint`, comma-separated; "" for none)."""
    words = {word.strip().lower().removesuffix("s") for word in setting.split(",")}
    return frozenset(source for source in (Source.BOUNCE, Source.COMPLAINT) if source.value in words)


def to_fingerprints(fps: str) -> list[str]:
    """The `to` part of a record's `fps` field (`to,...|cc,bcc,...`)."""
    return [fp for fp in fps.partition("|")[0].split(",") if fp]
