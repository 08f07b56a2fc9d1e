"""Keeping secrets and personal data out of what hudhud shows: the one place that redacts.

- `mask_url`: a URL with its password masked (the Redis URL in errors and reports);
- `Redactor`: a provider's words without its token, email addresses and phone numbers;
- `scrubbed`: a provider's structured data (event metadata, error replies) walked whole,
  keys that echo input dropped, every text redacted and every long integer masked;
- `argument_shape`: the shape of a task's arguments (field names, never values), for the
  reprs that Flower, events and `inspect` show;
- `MessageContentFilter`: Celery's own log lines about a message it discards, without the
  message's body and headers;
- `set_aside_summary`: what is kept of a queue item that could not be read.

Which keys of a provider's reply echo input is that provider's quirk and stays in its
module; the walking and the rewriting live here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kombu.utils.url import maybe_sanitize_url

MASK = "***"

# --- URLs -------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***`."""
    return str(maybe_sanitize_url(url, mask=MASK))


# --- a provider's words and data ----------------------------------------------------------

_ADDRESS = re.compile(r"[^\s@<>\"',;:()\[\]]+@[^\s@<>\"',;:()\[\]]+")
LONG_DIGITS = 8  # a run of this many digits may be a phone number
_LONG_NUMBER = re.compile(rf"(?<![\w.])\+?\d{{{LONG_DIGITS},}}(?![\w.])")


@dataclass(frozen=True)
class Redactor:
    """Takes secrets, email addresses and phone numbers out of a provider's words."""

    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __call__(self, words: str) -> str:
        for secret in self.secrets:
            if secret:
                words = words.replace(secret, MASK)
        words = _ADDRESS.sub("<address>", words)
        return _LONG_NUMBER.sub("<number>", words)


NO_SECRETS = Redactor()


def scrubbed(
    value: Any,
    *,
    drop: Collection[str] = (),
    redact: Callable[[str], str] | None = NO_SECRETS,
) -> Any:
    """`value` (JSON-like) with the keys in `drop` left out at every depth, every text passed
    through `redact` and every integer of 8 digits or more (a phone number) masked as `redact`
    masks it in a text (None: texts and numbers kept as they are)."""
    if isinstance(value, Mapping):
        return {str(k): scrubbed(v, drop=drop, redact=redact) for k, v in value.items() if k not in drop}
    if isinstance(value, list | tuple):
        return [scrubbed(v, drop=drop, redact=redact) for v in value]
    if redact is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int) and len(str(abs(value))) >= LONG_DIGITS:
        return redact(str(abs(value)))
    return value


# --- task arguments -----------------------------------------------------------------------


def argument_shape(value: Any) -> str:
    """Only the shape of arguments: field names, never their values."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!s}: …" for k in value) + "}"
    if isinstance(value, list | tuple):
        return f"({len(value)} args)"
    return "…"


# --- Celery's log lines -------------------------------------------------------------------

CONSUMER_LOGGER = "celery.worker.consumer.consumer"
_WITHHELD = "(body and headers withheld: they may carry personal data)"


class MessageContentFilter(logging.Filter):
    """When the worker discards a message it cannot run (an unregistered task name, a
    malformed task, a body it cannot decode) Celery logs the whole body and headers,
    `argsrepr` and `kwargsrepr` included, and a foreign producer's message carries a send's
    recipients and text. This filter rewrites those records to name the task and the fault."""

    def __init__(self) -> None:
        super().__init__()
        from celery.worker.consumer import consumer

        self._rewrites: dict[str, Callable[[tuple[Any, ...]], tuple[str, tuple[Any, ...]]]] = {
            consumer.UNKNOWN_TASK_ERROR: _unknown_task,
            consumer.INVALID_TASK_ERROR: _invalid_task,
            consumer.MESSAGE_DECODE_ERROR: _undecodable,
            consumer.UNKNOWN_FORMAT: _unknown_format,
        }

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite = self._rewrites.get(record.msg) if isinstance(record.msg, str) else None
        if rewrite is None:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        record.msg, record.args = rewrite(args)
        record.exc_info = None
        record.exc_text = None
        return True


def _unknown_task(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    text = "Received unregistered task of type %s; the message was discarded %s"
    return text, (args[0] if args else "?", _WITHHELD)


def _invalid_task(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    text = "Received an invalid task message (%s); the message was discarded %s"
    return text, (type(args[0]).__name__ if args else "?", _WITHHELD)


def _undecodable(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    text = "Cannot decode a message body (%s, type %r); the message was discarded %s"
    return text, (type(args[0]).__name__ if args else "?", args[1] if len(args) > 1 else "?", _WITHHELD)


def _unknown_format(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    return "Received a message in an unknown format; it was rejected %s", (_WITHHELD,)


def install() -> None:
    logger = logging.getLogger(CONSUMER_LOGGER)
    if not any(isinstance(f, MessageContentFilter) for f in logger.filters):
        logger.addFilter(MessageContentFilter())


# --- queue items set aside ----------------------------------------------------------------

_NAME = re.compile(r"[\w.:-]{1,200}")


def set_aside_summary(item: bytes | str, reason: str, now: float) -> str:
    """What is kept of a queue item that could not be read: never its contents (a foreign
    producer's task carries recipients and text), only enough to find where it came from —
    its size, a digest, and the task name and id when its envelope is readable JSON."""
    raw = item.encode("utf-8", "replace") if isinstance(item, str) else item
    summary: dict[str, object] = {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "reason": reason,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest()[:16],
    }
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        envelope = None
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if isinstance(headers, dict):
        for name in ("task", "id"):
            value = headers.get(name)
            if isinstance(value, str) and _NAME.fullmatch(value):
                summary[name] = value
    return json.dumps(summary, separators=(",", ":"))
