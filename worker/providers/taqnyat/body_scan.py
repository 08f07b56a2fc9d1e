"""Looking at a body without parsing it whole: a JSON body's top-level fields and how deep it
nests, a multipart body's fields one by one.

The JSON walks step over the text's strings and brackets only, in one pass and without
recursion; the multipart one splits on the boundary. A large or deeply nested body costs
little before its pass phrase is known to be right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_KEY_END = re.compile(r"\s*:\s*")
_SCALAR = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|-?\d{1,100}(?![\d.eE])')
_OPENING = re.compile(r"\s*\[\s*")
_BOUNDARY = re.compile(r'boundary="?([^";]{1,200})"?', re.IGNORECASE)
_PART_NAME = re.compile(rb'^content-disposition:[^\r\n]*?\bname="([^"\r\n]*)"', re.IGNORECASE | re.MULTILINE)


def top_fields(text: str) -> Iterator[tuple[str, str]]:
    """The fields of a JSON object's top level (or of a JSON list's first object) whose value
    is a string or an integer, in order; nested values are stepped over unread."""
    start = _OPENING.match(text)
    at = start.end() if start is not None else 0
    if text[at : at + 1] != "{":
        return
    depth = 0
    for token in _TOKEN.finditer(text, at):
        mark = token.group()
        if mark in ("{", "["):
            depth += 1
        elif mark in ("}", "]"):
            depth -= 1
            if depth == 0:
                return
        elif depth == 1:
            found = _member(text, token)
            if found is not None:
                yield found


def _member(text: str, key: re.Match[str]) -> tuple[str, str] | None:
    """(name, value) when the string `key` is a member's name and its value a scalar."""
    colon = _KEY_END.match(text, key.end())
    if colon is None or ":" not in colon.group():
        return None
    value = _SCALAR.match(text, colon.end())
    if value is None:
        return None
    try:
        name, read = json.loads(key.group()), json.loads(value.group())
    except ValueError:
        return None
    return str(name), str(read)


def deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON text nests objects or lists more than `limit` deep."""
    depth = 0
    for token in _TOKEN.finditer(text):
        mark = token.group()
        if mark in ("{", "["):
            depth += 1
            if depth > limit:
                return True
        elif mark in ("}", "]"):
            depth -= 1
    return False


def multipart_fields(content_type: str, raw: bytes) -> Iterator[tuple[str, str]] | None:
    """Each (name, text) of a multipart/form-data body, in order; None without a boundary."""
    boundary = _BOUNDARY.search(content_type)
    if boundary is None:
        return None
    return _parts(raw, b"--" + boundary.group(1).encode())


def _parts(raw: bytes, delimiter: bytes) -> Iterator[tuple[str, str]]:
    chunks = raw.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return  # the closing delimiter
        head, _, content = chunk.partition(b"\r\n\r\n" if b"\r\n\r\n" in chunk else b"\n\n")
        name = _PART_NAME.search(head)
        if name is not None:
            value = content.removesuffix(b"\n").removesuffix(b"\r")
            yield name.group(1).decode("utf-8", "replace"), value.decode("utf-8", "replace").strip()
