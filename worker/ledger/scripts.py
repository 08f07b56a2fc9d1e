"""The Lua scripts that make each ledger transition one atomic Redis round trip.

Each script is a file in `lua/` that opens by naming its KEYS and ARGV and says what it
answers. Every key a script touches arrives in KEYS (Redis Cluster needs it): a script never
builds one, except `change.lua`'s index of ended messages (`keys.ended_key`), built from the
record key's prefix (allowed while Redis is not a cluster). Times are epoch seconds and ISO
strings passed in by the caller, so scripts never read clocks. A script that changes a status
appends the change to the change stream in the same run (`change.lua`).

A file may name, in its opening comment, the function files it calls (`-- uses: a.lua`):
they are put before it, in that order, since Redis runs one chunk per script.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from redis import Redis
from redis.commands.core import Script

LEDGER = (
    "create",
    "create_many",
    "claim",
    "transition",
    "release",
    "requeue",
    "expired_leases",
    "expire_due",
    "slow_down",
    "flag",
    "finish_recipient",
    "callback_queue",
    "callback_take",
    "callback_retry",
    "callback_done",
    "inbound_event",
    "reply_claim",
    "reply_settle",
    "redrive",
    "move_provider",
)
_USES = re.compile(r"^-- uses: (.+)$", re.MULTILINE)


def _file(name: str) -> str:
    return resources.files("hudhud.worker.ledger").joinpath("lua", name).read_text(encoding="utf-8")


@functools.cache
def source(name: str) -> str:
    """The text Redis runs for the script `name`: its file, after the functions it uses."""
    text = _file(f"{name}.lua")
    used = _USES.search(text)
    parts = [_file(part.strip()) for part in used.group(1).split(",")] if used else []
    if text.startswith("#!"):  # a shebang must stay the first line
        head, _, body = text.partition("\n")
        return "\n".join([head, *parts, body])
    return "\n".join([*parts, text])


def register(client: Redis) -> dict[str, Script]:
    """The ledger's scripts, registered with `client` (loaded on their first call)."""
    return {name: client.register_script(source(name)) for name in LEDGER}
