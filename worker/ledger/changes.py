"""The change stream: every status change in the order the ledger recorded it.

The script that changes a status appends the change to `keys.CHANGES` in the same call
(`XADD ... MAXLEN ~`), with the fields of `FIELDS` and nothing personal. Two ways to read it:

- `ChangeConsumer`, for whatever reacts to outcomes (callbacks, metrics, the operator page):
  a consumer of a Redis consumer group, at least once. Its handler gets one change at a time,
  in stream order; a change is acknowledged once its handler returned. A change whose handler
  raised stays pending and is tried again `claim_after` seconds later, as are the pending
  changes of a consumer that died (XAUTOCLAIM, by whichever consumer of the group asks
  first). A change tried `max_deliveries` times is copied to `keys.CHANGES_DEAD` with the
  group and the reason, and acknowledged. A handler must finish a batch well within
  `claim_after`, or another consumer takes the batch over while it still runs.
- `last`, `after` and `follow`, for the command line: plain reads, no group, nothing acked.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from hudhud.worker.ledger.keys import CHANGES, CHANGES_DEAD
from hudhud.worker.ledger.status import Status

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger import Ledger

log = logging.getLogger(__name__)

FIELDS = ("id", "status", "previous", "channel", "provider", "lane", "reference", "at", "attempt", "error")
RECIPIENT = "recipient"  # only in the change of a campaign recipient's final status
DEAD_MAXLEN = 100_000
PAGE = 1000
_ENTRY_ID = re.compile(r"^\d+(-\d+)?$")

Handler = Callable[["Change"], object]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Change:
    """One status change of a message (or of one recipient of a campaign batch)."""

    entry: str  # the stream entry's id, e.g. `1764646800000-0`
    id: str
    status: Status
    previous: Status | None  # None when the record was created in `status`
    channel: str
    provider: str
    lane: str
    reference: str | None
    at: str  # ISO 8601, UTC
    attempt: int
    error: str | None
    recipient: str | None = None

    @classmethod
    def from_entry(cls, entry: Any, fields: dict[Any, Any]) -> Change:
        """The change of a stream entry; ValueError when it is not one."""
        got = {_s(k): _s(v) for k, v in fields.items()}
        if not got.get("id") or not got.get("status"):
            raise ValueError("an entry without id or status")
        previous = got.get("previous") or None
        return cls(
            entry=_s(entry),
            id=got["id"],
            status=Status(got["status"]),
            previous=Status(previous) if previous else None,
            channel=got.get("channel", ""),
            provider=got.get("provider", ""),
            lane=got.get("lane", ""),
            reference=got.get("reference") or None,
            at=got.get("at", ""),
            attempt=int(got.get("attempt") or 0),
            error=got.get("error") or None,
            recipient=got.get(RECIPIENT) or None,
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "entry": self.entry,
            "id": self.id,
            "status": str(self.status),
            "previous": str(self.previous) if self.previous else None,
            "channel": self.channel,
            "provider": self.provider,
            "lane": self.lane,
            "reference": self.reference,
            "at": self.at,
            "attempt": self.attempt,
            "error": self.error,
        }
        if self.recipient is not None:
            data[RECIPIENT] = self.recipient
        return data

    def line(self) -> str:
        """`time id previous -> status channel provider attempt N [error] [recipient N]`."""
        words = [
            f"{self.at:24}",
            self.id,
            f"{self.previous or '-':>9} → {self.status:9}",
            f"{self.channel:5}",
            f"{self.provider:8}",
            f"attempt {self.attempt}",
        ]
        if self.error:
            words.append(self.error)
        if self.recipient is not None:
            words.append(f"recipient {self.recipient}")
        return " ".join(words)


def _client(source: Ledger | redis.Redis) -> redis.Redis:
    client: Any = getattr(source, "redis", source)
    return cast(redis.Redis, client)


def _readable(entry: Any, fields: dict[Any, Any]) -> Change | None:
    try:
        return Change.from_entry(entry, fields)
    except ValueError:
        log.warning("change stream entry %s is not a status change: skipped", _s(entry))
        return None


# --- plain reads (the command line) ------------------------------------------------------


def is_entry_id(text: str) -> bool:
    return bool(_ENTRY_ID.match(text))


def last(source: Ledger | redis.Redis, count: int) -> list[Change]:
    """The last `count` changes, oldest first."""
    entries: Any = _client(source).xrevrange(CHANGES, "+", "-", count=count)
    found = (_readable(entry, fields) for entry, fields in reversed(entries))
    return [change for change in found if change is not None]


def after(source: Ledger | redis.Redis, since: str) -> Iterator[Change]:
    """Every change after the entry `since` (which may be gone), oldest first, read in pages."""
    client = _client(source)
    cursor = since
    while True:
        entries: Any = client.xrange(CHANGES, f"({cursor}", "+", count=PAGE)
        for entry, fields in entries:
            change = _readable(entry, fields)
            if change is not None:
                yield change
        if len(entries) < PAGE:
            return
        cursor = _s(entries[-1][0])


def follow(
    source: Ledger | redis.Redis,
    *,
    since: str = "$",
    stop: threading.Event | None = None,
    block: float = 1.0,
) -> Iterator[Change]:
    """The changes recorded after `since` (`$`: after the newest one when called), as they
    come, until `stop` is set (seen within `block` seconds)."""
    client = _client(source)
    cursor = _newest(client) if since == "$" else since
    return _tail(client, cursor, stop, max(1, int(block * 1000)))  # BLOCK 0 would wait forever


def _tail(client: redis.Redis, cursor: str, stop: threading.Event | None, wait: int) -> Iterator[Change]:
    while stop is None or not stop.is_set():
        reply: Any = client.xread({CHANGES: cursor}, count=PAGE, block=wait)
        for _stream, entries in reply or []:
            for entry, fields in entries:
                cursor = _s(entry)
                change = _readable(entry, fields)
                if change is not None:
                    yield change


def newest_first(source: Ledger | redis.Redis, *, scan: int) -> Iterator[tuple[Any, dict[Any, Any]]]:
    """The stream's last `scan` entries as they are stored (id, fields), newest first, read in
    pages."""
    client = _client(source)
    cursor, read = "+", 0
    while read < scan:
        page: Any = client.xrevrange(CHANGES, cursor, "-", count=min(PAGE, scan - read))
        yield from page
        read += len(page)
        if len(page) < PAGE:
            return
        cursor = f"({_s(page[-1][0])}"


def _newest(client: redis.Redis) -> str:
    # The id itself rather than `$` on every XREAD, so that nothing recorded between two
    # reads is missed.
    newest = client.xrevrange(CHANGES, "+", "-", count=1)
    return _s(newest[0][0]) if newest else "0-0"


# --- consumer groups ---------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """What one `ChangeConsumer.run_once` did."""

    handled: int = 0  # handler returned: acknowledged
    failed: int = 0  # handler raised: pending, tried again after claim_after
    dead: int = 0  # copied to the dead-letter stream and acknowledged
    claimed: int = 0  # taken over after claim_after (from a dead consumer, or a failure)


class ChangeConsumer:
    """One consumer of a consumer group on the change stream (see the module's docstring)."""

    def __init__(
        self,
        source: Ledger | redis.Redis,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        start: str = "$",
        batch: int = 100,
        block: float = 1.0,
        claim_after: float = 60.0,
        max_deliveries: int = 5,
        dead_maxlen: int = DEAD_MAXLEN,
    ) -> None:
        self.redis = _client(source)
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.start = start  # where a new group starts: `$` new changes only, `0` all kept
        self.batch = batch
        self.block = block  # seconds a round waits for a new change (0: it does not wait)
        self.claim_after = claim_after
        self.max_deliveries = max_deliveries
        self.dead_maxlen = dead_maxlen
        self.stopping = threading.Event()
        self._group_made = False
        self._claim_cursor = "0-0"
        self._failures: dict[str, str] = {}  # entry -> the type of its handler's last error

    @classmethod
    def from_settings(
        cls,
        source: Ledger | redis.Redis,
        settings: Settings,
        group: str,
        consumer: str,
        handler: Handler,
        **kw: Any,
    ) -> ChangeConsumer:
        return cls(
            source,
            group,
            consumer,
            handler,
            claim_after=settings.changes_claim_after,
            max_deliveries=settings.changes_max_deliveries,
            dead_maxlen=settings.changes_maxlen,
            **kw,
        )

    def create_group(self) -> None:
        """The group (and the stream), unless they exist: create it before the first change it
        must see when it starts at `$`."""
        try:
            self.redis.xgroup_create(CHANGES, self.group, id=self.start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_made = True

    def stop(self) -> None:
        self.stopping.set()

    def run(self, *, pause: float = 1.0) -> None:
        """Rounds until `stop()`. A Redis error is logged and the round tried again after
        `pause` seconds."""
        while not self.stopping.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning(
                    "change consumer %s/%s: Redis failed (%s)", self.group, self.consumer, type(exc).__name__
                )
                self.stopping.wait(pause)

    def run_once(self) -> Round:
        """One round: take over what waited `claim_after`, read new changes, handle, ack."""
        if not self._group_made:
            self.create_group()
        try:
            return self._round()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.create_group()  # the stream was deleted since: start it again
            return self._round()

    def _round(self) -> Round:
        claimed, dead = self._take_over()
        block = None if claimed or self.block <= 0 or self.stopping.is_set() else int(self.block * 1000)
        reply: Any = self.redis.xreadgroup(
            self.group, self.consumer, {CHANGES: ">"}, count=self.batch, block=block
        )
        fresh = [(entry, fields) for _stream, entries in reply or [] for entry, fields in entries]
        handled, failed, unreadable = self._handle([*claimed, *fresh])
        return Round(handled=handled, failed=failed, dead=dead + unreadable, claimed=len(claimed) + dead)

    def _take_over(self) -> tuple[list[tuple[Any, Any]], int]:
        """Entries pending longer than claim_after, now this consumer's; those tried too often
        are dead-lettered instead. Returns the ones to handle and the number dead-lettered."""
        reply: Any = self.redis.xautoclaim(
            CHANGES,
            self.group,
            self.consumer,
            int(self.claim_after * 1000),
            self._claim_cursor,
            count=self.batch,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = _s(cursor)
        gone = [entry for entry, fields in entries if fields is None and entry is not None]
        if gone:  # trimmed away while pending (Redis 6.2 answers these as nil entries)
            self.redis.xack(CHANGES, self.group, *gone)
        entries = [(entry, fields) for entry, fields in entries if fields is not None]
        if not entries:
            return [], 0
        deliveries = self._deliveries([_s(entry) for entry, _fields in entries])
        keep, dead = [], 0
        for entry, fields in entries:
            times = deliveries.get(_s(entry), 0)
            if times > self.max_deliveries:
                reason = f"not handled in {times - 1} deliveries"
                self._dead_letter(_s(entry), fields, reason, times - 1)
                dead += 1
            else:
                keep.append((entry, fields))
        return keep, dead

    def _deliveries(self, entries: Sequence[str]) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xpending_range(CHANGES, self.group, entry, entry, 1, consumername=self.consumer)
            replies = pipe.execute()
        return {_s(row["message_id"]): int(row["times_delivered"]) for rows in replies for row in rows}

    def _handle(self, entries: Sequence[tuple[Any, Any]]) -> tuple[int, int, int]:
        done: list[str] = []
        failed = unreadable = 0
        for raw_entry, fields in entries:
            entry = _s(raw_entry)
            try:
                change = Change.from_entry(entry, fields)
            except ValueError:
                self._dead_letter(entry, fields, "not a status change", 1)
                unreadable += 1
                continue
            try:
                self.handler(change)
            except Exception as exc:  # any failure leaves the change pending
                failed += 1
                self._failed(change, type(exc).__name__)
                continue
            done.append(entry)
            self._failures.pop(entry, None)
        if done:
            self.redis.xack(CHANGES, self.group, *done)
        return len(done), failed, unreadable

    def _failed(self, change: Change, error: str) -> None:
        if len(self._failures) >= 10 * self.batch:
            self._failures.clear()
        self._failures[change.entry] = error
        log.warning(
            "change %s (message %s, %s) not handled by %s/%s (%s): tried again in %gs",
            change.entry,
            change.id,
            change.status,
            self.group,
            self.consumer,
            error,
            self.claim_after,
        )

    def _dead_letter(self, entry: str, fields: dict[Any, Any], reason: str, deliveries: int) -> None:
        """A copy of the change's own fields (nothing else of the entry) with why it is here,
        written and acked in one transaction."""
        kept = {_s(k): _s(v) for k, v in fields.items() if _s(k) in (*FIELDS, RECIPIENT)}
        letter = {
            **kept,
            "entry": entry,
            "group": self.group,
            "consumer": self.consumer,
            "reason": reason,
            "deliveries": str(deliveries),
        }
        failure = self._failures.pop(entry, None)
        if failure:
            letter["failure"] = failure
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(CHANGES_DEAD, letter, maxlen=self.dead_maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.xack(CHANGES, self.group, entry)
            pipe.execute()
        log.error("change %s (group %s) dead-lettered: %s", entry, self.group, reason)


def dead_letters(source: Ledger | redis.Redis, count: int = 100) -> list[dict[str, str]]:
    """The last `count` dead letters, oldest first, as plain fields (with `dead`: their own id)."""
    entries: Any = _client(source).xrevrange(CHANGES_DEAD, "+", "-", count=count)
    return [{"dead": _s(e), **{_s(k): _s(v) for k, v in f.items()}} for e, f in reversed(entries)]
