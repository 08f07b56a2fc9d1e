"""Taqnyat's replies that are not JSON, read anyway.

The seeds print replies that are not JSON: bare words (`"ResponseStatus": success`),
trailing commas, doubled closing quotes (`"MessageEn":" error From"",`), a repeated key
(`"MessageEn": "MessageEn":" this ip ..."`), unquoted keys (`statusCode: 200`), a missing
comma after `}` and missing braces. A real server may copy its own docs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hudhud.worker.providers.decoding import decode_body, decode_json

_REPAIRS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'"(\w+)"\s*:\s*"\1"\s*:'), r'"\1":'),
    (re.compile(r'([^"\s:,\[{\\])""(\s*[,}\]\n])'), r'\1"\2'),
    (re.compile(r"([{,]\s*)([A-Za-z_]\w*)\s*:"), r'\1"\2":'),
    (re.compile(r":\s*(?!(?:null|true|false)\b)([A-Za-z_]\w*)\s*(?=[,}\]\n])"), r': "\1"'),
    (re.compile(r'([}\]])([ \t]*\n\s*")'), r"\1,\2"),
    (re.compile(r",(\s*[}\]])"), r"\1"),
)


def salvage_json(text: str) -> Any:
    """Best effort for a JSON-like body: repair it, else pick the known fields out of it."""
    repaired = text if text.startswith(("{", "[")) else "{" + text
    for pattern, replacement in _REPAIRS:
        repaired = pattern.sub(replacement, repaired)
    repaired = repaired.rstrip().rstrip(",") + _missing_closers(repaired)
    try:
        return decode_json(re.sub(r",(\s*[}\]])", r"\1", repaired))
    except ValueError:
        return _salvage_fields(text)


def _missing_closers(text: str) -> str:
    stack: list[str] = []
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    return "".join(reversed(stack))


_PAIR = re.compile(
    r'"?([A-Za-z_]\w*)"?\s*:\s*'
    r'(?:"([^"\n]*)"(?!\s*:)|(-?\d+(?:\.\d+)?)\b|(null|true|false)\b|([A-Za-z_]\w*)\b(?!"?\s*:))'
)
_ERROR_KEYS = ("ErrorCode", "MessageAr", "MessageEn")
_DATA_KEYS = ("msgId", "result", "MessageAr", "MessageEn", "price", "rejectedNumber")
_TOP_KEYS = ("status", "statusCode", "ResponseStatus", "messageId", "message", "reason")


def _salvage_fields(text: str) -> dict[str, Any] | None:
    """The last resort: the fields a provider module reads, found by pattern."""
    fields: dict[str, Any] = {}
    for match in _PAIR.finditer(text):
        key, quoted, number, literal, word = match.groups()
        if quoted is not None:
            fields.setdefault(key, quoted)
        elif number is not None:
            fields.setdefault(key, decode_json(number))
        elif literal is not None:
            fields.setdefault(key, json.loads(literal))
        else:
            fields.setdefault(key, word)
    if not fields:
        return None
    out: dict[str, Any] = {k: fields[k] for k in _TOP_KEYS if k in fields}
    if "ErrorCode" in fields:
        out["Data"] = None
        out["Error"] = {k: fields[k] for k in _ERROR_KEYS if k in fields}
    elif "msgId" in fields or "price" in fields:
        out["Data"] = {k: fields[k] for k in _DATA_KEYS if k in fields}
    if "service" in fields or "description" in fields:
        out["status"] = {k: fields[k] for k in ("service", "description") if k in fields}
    out["salvaged"] = True
    return out


def decode(text: str) -> Any:
    """A Taqnyat body's JSON value, the seeds' invalid JSON salvaged; None for anything else."""
    return decode_body(text, salvage_json)
