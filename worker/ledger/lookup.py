"""Finding a message by what its producer gave it: its idempotency key or its reference.

A key's index (`idem:{key}`, `{id}|{request hash}`) lives as long as the idempotency TTL.
No index holds references: the change stream carries each change's reference, so a
reference is looked for among the stream's latest changes (`scan` of them, newest first),
and a message whose changes all left the stream is not found by it.
"""

from __future__ import annotations

from typing import Any

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.changes import newest_first
from hudhud.worker.ledger.keys import idem_key
from hudhud.worker.ledger.records import text as _s


def id_of_key(ledger: Ledger, key: str) -> str | None:
    """The id of the message (or campaign) recorded with idempotency key `key`, or None."""
    if not key:
        return None
    held = ledger.redis.get(idem_key(key))
    if held is None:
        return None
    message_id, _, _hash = _s(held).partition("|")
    return message_id or None


def ids_of_reference(ledger: Ledger, reference: str, *, limit: int = 20, scan: int = 20_000) -> list[str]:
    """The ids of up to `limit` messages with `reference`, the latest changed first, found
    among the last `scan` changes."""
    if not reference:
        return []
    wanted = reference.encode()
    found: list[str] = []
    for _entry, fields in newest_first(ledger, scan=scan):
        if _field(fields, "reference") == wanted:
            message_id = _s(_field(fields, "id"))
            if message_id not in found:
                found.append(message_id)
            if len(found) == limit:
                break
    return found


def _field(fields: dict[Any, Any], name: str) -> bytes:
    value = fields.get(name.encode(), fields.get(name, b""))
    return value if isinstance(value, bytes) else str(value).encode()
