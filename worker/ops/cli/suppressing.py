"""`hudhud suppress add|remove|list`: the suppression list, by number or address.

Values are checked whole before anything is written (a bad one exits 2 naming it); the list
keeps only keyed fingerprints, so `list` without values shows fingerprints, and with values
says whether each is listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis

from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.suppression import Source, Suppressions
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option

T = TypeVar("T")
VALUES = click.argument("values", nargs=-1, metavar="[ADDR|NUMBER ...]")


def _run(as_json: bool, work: Callable[[Suppressions], T]) -> T:
    """`work` on the list; bad input exits 2 naming the value, Redis trouble exits 1."""
    from hudhud.worker import runtime

    try:
        return work(Suppressions(runtime.ledger()))
    except InvalidInput as exc:
        fail(as_json, f"{exc.field}: {exc.message}", EXIT_INPUT, field=exc.field)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)


def _needs_values(values: tuple[str, ...], as_json: bool) -> None:
    if not values:
        fail(as_json, "values: give one or more numbers or addresses", EXIT_INPUT, field="values")


def _rows(flags: list[bool], key: str) -> list[dict[str, Any]]:
    """One row per value given, by its position (the answer names no number or address)."""
    return [{"index": i, key: flag} for i, flag in enumerate(flags)]


@click.group()
def suppress() -> None:
    """The suppression list: numbers and addresses nothing is sent to."""


@suppress.command()
@VALUES
@click.option("--reason", default="", help="why (kept with the entry; no personal data)")
@json_option
def add(values: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Put numbers or addresses on the suppression list."""
    _needs_values(values, as_json)
    added = _run(
        as_json, lambda s: s.add(list(values), reason=reason, source=Source.OPERATOR, now=time.time())
    )
    rows = _rows(added, "added")
    data = {"added": sum(added), "already": len(added) - sum(added), "values": rows}
    emit(as_json, data, f"added {sum(added)}, already listed {len(added) - sum(added)}")


@suppress.command()
@VALUES
@json_option
def remove(values: tuple[str, ...], as_json: bool) -> None:
    """Take numbers or addresses off the suppression list."""
    _needs_values(values, as_json)
    removed = _run(as_json, lambda s: s.remove(list(values)))
    rows = _rows(removed, "removed")
    data = {"removed": sum(removed), "absent": len(removed) - sum(removed), "values": rows}
    emit(as_json, data, f"removed {sum(removed)}, not listed {len(removed) - sum(removed)}")


@suppress.command(name="list")
@VALUES
@click.option("--cursor", default=0, type=click.IntRange(min=0), help="where a page starts (from the last)")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="at most about this many (0: all)")
@json_option
def list_(values: tuple[str, ...], cursor: int, limit: int, as_json: bool) -> None:
    """The listed fingerprints; with values, whether each of them is listed."""
    if values:
        _check(values, as_json)
        return
    entries, following, total = _run(as_json, lambda s: _entries(s, cursor, limit))
    data = {"count": total, "cursor": following, "entries": [e.as_dict() for e in entries]}
    lines = [f"{total} listed"]
    lines += [f"{e.fingerprint} {e.kind:8} {e.source:9} {e.at} {e.reason}".rstrip() for e in entries]
    if following:
        lines.append(f"more: --cursor {following}")
    emit(as_json, data, "\n".join(lines))


def _entries(suppressions: Suppressions, cursor: int, limit: int) -> tuple[list[Any], int, int]:
    entries: list[Any] = []
    while True:
        cursor, page = suppressions.page(cursor)
        entries += page
        if not cursor or (limit and len(entries) >= limit):
            return entries, cursor, suppressions.count()


def _check(values: tuple[str, ...], as_json: bool) -> None:
    found = _run(as_json, lambda s: s.contains(list(values)))
    rows = [
        {"index": i, "listed": entry is not None, **(entry.as_dict() if entry else {})}
        for i, entry in enumerate(found)
    ]
    lines = [
        f"{values[i]}: "
        + (f"listed ({entry.source}, {entry.at}) {entry.reason}".rstrip() if entry else "not listed")
        for i, entry in enumerate(found)
    ]
    emit(as_json, {"listed": sum(e is not None for e in found), "values": rows}, "\n".join(lines))
