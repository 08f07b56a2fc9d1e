"""The ledger's side of a redrive: the index of messages that ended `failed` or `expired`
(`keys.ended_key`, written by `change.lua`), and the script that sends one of them again as a
new, linked message (`lua/redrive.lua`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hudhud.worker.ledger import scripts
from hudhud.worker.ledger.keys import EXPIRIES, ended_key, events_key, msg_key
from hudhud.worker.ledger.records import NewMessage, op_token
from hudhud.worker.ledger.records import text as _s
from hudhud.worker.ledger.status import REDRIVABLE, Status

if TYPE_CHECKING:
    from redis.commands.core import Script

    from hudhud.worker.ledger import Ledger


@dataclass(frozen=True)
class Redriven:
    """What `redrive.lua` answered: `redriven` (a new message), `done` (redriven before: its
    message), `stale` (the old one is no longer `status`), `missing`, `empty` (no payload),
    `duplicate` or `conflict` (the redrive's key holds another message)."""

    outcome: str
    new_id: str = ""
    status: str = ""


def ended(
    ledger: Ledger, status: Status, *, now: float, since: float | None = None
) -> list[tuple[str, float]]:
    """The messages that ended `status` at or after `since`, oldest first, each with when it
    ended. Entries older than the retention (their record is gone) are trimmed first."""
    if status not in REDRIVABLE:
        raise ValueError(f"only {sorted(REDRIVABLE)} messages are indexed, not {status}")
    key = ended_key(status)
    pipe = ledger.redis.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", f"({now - ledger.retention_seconds!r}")
    pipe.zrangebyscore(key, "-inf" if since is None else repr(since), "+inf", withscores=True)
    _, found = pipe.execute()
    return [(_s(member), float(score)) for member, score in found]


def forget(ledger: Ledger, status: Status, message_ids: Sequence[str]) -> None:
    """Drop ids from the ended index (their record is gone or no longer `status`)."""
    if message_ids:
        ledger.redis.zrem(ended_key(status), *message_ids)


@functools.cache
def _script_source() -> str:
    return scripts.source("redrive")


def _script(ledger: Ledger) -> Script:
    return ledger.redis.register_script(_script_source())


def redrive(
    ledger: Ledger,
    old_id: str,
    status: Status,
    new: NewMessage,
    task: tuple[str, str] | None,
    *,
    now: float,
    op: str | None = None,
) -> Redriven:
    """Record `new` (whose `retry_of` is `old_id`) and push its broker task `task` (`(queue,
    message)`, None when it waits), mark the old message redriven to it and erase its payload:
    all in one script, and only while the old one is `status` and not redriven yet."""
    op = op or op_token()
    create_keys, create_args = ledger._create_args(new, now, op)
    keys = [msg_key(old_id), events_key(old_id), ended_key(status), *create_keys[:5], EXPIRIES]
    keys.append(task[0] if task else "")
    # `_create_args`' ARGV (create.lua's): ten values, then the record's fields
    new_id, idem_ttl, request_hash, new_status, score, entry, _op, life, at, maxlen = create_args[:10]
    args = [old_id, status, at, op, new_id, idem_ttl, request_hash, new_status, score, entry, life, maxlen]
    args += [task[1] if task else "", *create_args[10:]]
    reply = _script(ledger)(keys=keys, args=args)
    return Redriven(*(_s(part) for part in reply))
