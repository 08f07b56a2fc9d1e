"""Reading request bodies without tripping over them.

A body may be anything: not JSON, JSON nested thousands of levels deep, JSON strings that
are not Unicode (lone surrogates such as `"\\ud800"`), a form in an unknown charset or a
broken multipart body. Each of these is an unreadable body here, answered by the caller in
its provider's shape, never an exception that becomes a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

MAX_DEPTH = 512  # PHP's json_decode refuses deeper documents; so does the sandbox


class Unreadable(ValueError):
    """The body is not a JSON document the sandbox can read."""


def is_unicode(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json(raw: bytes | str, *, unicode_only: bool = False) -> Any:
    """The JSON document in `raw`; `Unreadable` when it is not JSON, nested deeper than
    `MAX_DEPTH`, or (with `unicode_only`) holds a string that is not Unicode."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise Unreadable("the document is nested too deeply") from None
    except ValueError as error:
        raise Unreadable(str(error)) from None
    problem = _shape_problem(value, unicode_only)
    if problem:
        raise Unreadable(problem)
    return value


def load_json(raw: bytes | str, *, unicode_only: bool = False) -> tuple[bool, Any]:
    """(True, document) or (False, None) for an unreadable body."""
    try:
        return True, parse_json(raw, unicode_only=unicode_only)
    except Unreadable:
        return False, None


def _shape_problem(value: Any, unicode_only: bool) -> str | None:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return "the document is nested too deeply"
            if isinstance(item, dict):
                if unicode_only and not all(is_unicode(key) for key in item):
                    return "a name is not a valid Unicode string"
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
        elif unicode_only and isinstance(item, str) and not is_unicode(item):
            return "a string is not valid Unicode"
    return None


async def form_fields(request: web.Request) -> MultiDictProxy[Any] | None:
    """The fields of a form body; None when it cannot be decoded (bad charset, bytes that
    are not text in it, a broken multipart body). Oversized bodies still raise 413."""
    try:
        return await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        return None


def plain(value: Any) -> Any:
    """A JSON scalar as is; anything else (a list, an object, an uploaded file) as None."""
    return value if value is None or isinstance(value, str | int | float | bool) else None
