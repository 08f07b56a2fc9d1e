"""Input checks shared by the producer API, the CLI, the tasks and the provider clients.

Each check returns the cleaned value or raises `InvalidInput` naming the field. Nothing here
talks to Redis or a provider, so a refusal never leaves anything half-recorded.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.errors import InvalidInput

MAX_ATTACHMENT_BYTES = 24 * 1024 * 1024
MAX_SMS_BODY = 10_000
MAX_EMAIL_BODY = 10 * 1024 * 1024
MAX_SUBJECT = 998
MAX_RECIPIENTS = 100_000

_MSISDN = re.compile(r"[1-9][0-9]{7,14}")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")  # printable ASCII without ':' (RFC 5322 ftext)
_SENDER_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,59}")
_MAX_MSISDN = 10**15


def field_name(name: Any) -> str | None:
    """`name` when it may be shown as the name of a field (a short ASCII word), else None.

    Unknown names come from the caller; anything else could be a value given by mistake
    (a phone number as a key), which must not reach an error text or a log.
    """
    return name if isinstance(name, str) and _FIELD_NAME.fullmatch(name) else None


def text(
    value: Any, field: str, *, max_len: int, allow_empty: bool = False, single_line: bool = False
) -> str:
    """A string that is valid UTF-8, within `max_len` characters."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "is not valid UTF-8") from None
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    if not allow_empty and not value.strip():
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidInput(field, f"is too long ({len(value)} characters, at most {max_len})")
    if single_line and ("\r" in value or "\n" in value):
        raise InvalidInput(field, "must be a single line")
    return value


def msisdn(value: Any, field: str) -> str:
    """A phone number in international format without `+` or `00` (e.g. 966500000000)."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInput(field, "must be a phone number string")
    if isinstance(value, int) and not 0 <= value < _MAX_MSISDN:
        raise InvalidInput(field, "must be 8 to 15 digits in international format (e.g. 966500000000)")
    number = str(value).strip()
    if number.startswith("+"):
        raise InvalidInput(field, "must be in international format without '+' (e.g. 966500000000)")
    if number.startswith("00"):
        raise InvalidInput(field, "must be in international format without '00' (e.g. 966500000000)")
    if not _MSISDN.fullmatch(number):
        raise InvalidInput(field, "must be 8 to 15 digits in international format (e.g. 966500000000)")
    return number


def email(value: Any, field: str) -> str:
    """An email address (`local@domain.tld`)."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be an email address string")
    address = value.strip()
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise InvalidInput(field, "is not a valid email address")
    return address


def recipients(values: Any, field: str, check: Any) -> list[str]:
    """A non-empty list of recipients, each passed through `check`, duplicates removed."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InvalidInput(field, "must be a list")
    items = list(values)
    if not items:
        raise InvalidInput(field, "needs at least one recipient")
    if len(items) > MAX_RECIPIENTS:
        raise InvalidInput(field, f"has too many recipients (at most {MAX_RECIPIENTS})")
    seen: dict[str, None] = {}
    for index, item in enumerate(items):
        seen.setdefault(check(item, f"{field}[{index}]"), None)
    return list(seen)


def sender_name(value: Any, field: str) -> str:
    """An SMS sender name as approved by the provider."""
    name = text(value, field, max_len=64, single_line=True)
    if not _SENDER_NAME.fullmatch(name):
        raise InvalidInput(field, "contains control characters")
    return name


def url(value: Any, field: str) -> str:
    """An absolute http(s) URL."""
    link = text(value, field, max_len=2048, single_line=True).strip()
    if not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", link):
        raise InvalidInput(field, "must be an absolute http:// or https:// URL")
    return link


def headers(value: Any, field: str) -> dict[str, str]:
    """Custom email headers: names of printable ASCII, single-line values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(field, "must be an object of name: value")
    out: dict[str, str] = {}
    for index, (name, val) in enumerate(value.items()):
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            if isinstance(name, str) and re.fullmatch(r"[ -~]{1,40}", name):
                raise InvalidInput(f"{field}.{name}", "is not a valid header name")
            raise InvalidInput(field, f"header {index + 1} has an invalid name (printable ASCII without ':')")
        out[name] = text(val, f"{field}.{name}", max_len=998, allow_empty=True, single_line=True)
    return out


def tags(value: Any, field: str) -> list[str]:
    """A list of short single-line strings."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidInput(field, "must be a list of strings")
    return [text(tag, f"{field}[{i}]", max_len=100, single_line=True) for i, tag in enumerate(value)]


def base64_size(data: str) -> int:
    """The decoded size of a base64 string, without decoding it."""
    stripped = data.rstrip("=")
    return (len(stripped) * 3) // 4


def attachments(value: Any, field: str) -> list[dict[str, str]]:
    """Taifa attachment rules: base64 without `data:` prefix, safe names, 24 MiB each and total."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidInput(field, "must be a list of {filename, content_base64, content_type}")
    total = 0
    out: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(where, "must be an object {filename, content_base64, content_type}")
        for key in item:
            if key not in ("filename", "content_base64", "content_type"):
                shown = field_name(key)
                if shown is None:
                    raise InvalidInput(
                        where, "has a field whose name is not filename, content_base64 or content_type"
                    )
                raise InvalidInput(f"{where}.{shown}", "is not a known field")
        for key in ("filename", "content_base64"):
            if item.get(key) is None:
                raise InvalidInput(f"{where}.{key}", "is required")
        name = text(item.get("filename"), f"{where}.filename", max_len=255, single_line=True)
        if any(ch in name for ch in "/\\\x00"):
            raise InvalidInput(f"{where}.filename", "must not contain '/', '\\' or NUL")
        content = item.get("content_base64")
        if not isinstance(content, str):
            raise InvalidInput(f"{where}.content_base64", "must be a base64 string")
        if content.startswith("data:"):
            raise InvalidInput(f"{where}.content_base64", "must be plain base64 without a data: prefix")
        size = base64_size(content)
        if size > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(f"{where}.content_base64", "is larger than 24 MiB")
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{where}.content_base64", "is not valid base64") from None
        total += size
        if total > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(field, "are larger than 24 MiB in total")
        entry = {"filename": name, "content_base64": content}
        ctype = item.get("content_type")
        if ctype is not None:
            entry["content_type"] = text(ctype, f"{where}.content_type", max_len=255, single_line=True)
        out.append(entry)
    return out


def instant(value: Any, field: str) -> datetime:
    """An ISO 8601 time with an offset or `Z`, as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        raw = value.strip()
        try:
            moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
        except ValueError:
            raise InvalidInput(field, "is not an ISO 8601 time (e.g. 2030-01-31T09:00:00+03:00)") from None
    else:
        raise InvalidInput(field, "must be an ISO 8601 time string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(field, "needs an offset or Z (e.g. 2030-01-31T09:00:00+03:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+03:00 lies before year 1 in UTC
        raise InvalidInput(field, "is out of range") from None


def future_instant(
    value: Any,
    field: str,
    *,
    now: datetime | None = None,
    min_ahead: timedelta = timedelta(0),
    max_ahead: timedelta | None = None,
    grace: timedelta = timedelta(seconds=5),
) -> datetime:
    """An instant that is not in the past (a few seconds of clock skew are tolerated)."""
    moment = instant(value, field)
    current = now or datetime.now(UTC)
    if moment < current + min_ahead - grace:
        raise InvalidInput(
            field, "is in the past" if min_ahead == timedelta(0) else f"must be at least {min_ahead} ahead"
        )
    if max_ahead is not None and moment > current + max_ahead:
        raise InvalidInput(field, f"must be at most {max_ahead} ahead")
    return moment
