"""Input checks shared by the producer API, the CLI, the tasks and the provider clients.

Each check returns the cleaned value or raises `InvalidInput` naming the field. Nothing here
talks to Redis or a provider, so a refusal never leaves anything half-recorded.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hudhud.worker.errors import InvalidInput

MAX_ATTACHMENT_BYTES = 24 * 1024 * 1024
MAX_SMS_BODY = 10_000
MAX_EMAIL_BODY = 10 * 1024 * 1024
MAX_SUBJECT = 998
MAX_RECIPIENTS = 100_000
MAX_HEADERS = 50
MAX_HEADER_NAME = 76
MAX_HEADER_VALUE = 998
MAX_HEADERS_SIZE = 16_384  # characters of all custom header names and values together
MAX_TAGS = 20  # a producer's own; the worker adds `hudhud-<message id>` and `campaign-<name>`
MAX_TAG = 100
MAX_ATTACHMENTS = 50
MAX_FILENAME = 255
MAX_MESSAGE_ID = 90  # `hudhud-<id>` must still fit in one tag
RESERVED_TAG_PREFIX = "hudhud-"

# Custom email headers a producer may set: these prefixes (case-insensitive) and names.
# Every other header belongs to the message's own fields (From, To, Cc, Bcc, Reply-To,
# Subject), to its MIME structure (Content-*, MIME-Version) or to the sending service
# (Return-Path, Sender, Message-ID, Date, DKIM-Signature, Received, ...).
SAFE_HEADER_PREFIXES = ("X-", "List-")
SAFE_HEADERS = (
    "Feedback-ID",
    "Precedence",
    "Auto-Submitted",
    "In-Reply-To",
    "References",
    "Keywords",
    "Comments",
    "Organization",
    "Importance",
    "Priority",
)
_SAFE_HEADERS = frozenset(name.lower() for name in SAFE_HEADERS)
# Look-alikes of '/' and '\\' that NFKC leaves as they are (it maps the fullwidth ones).
_PATH_SEPARATORS = frozenset("/\\\u2215\u2044\u29f8\u29f9\u2216\u2571\u2572")
# Bidirectional controls that reorder what a reader sees ("invoice\u202egpj.exe").
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAK = re.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # what str.splitlines splits on
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 (tab and ESC too), DEL and C1

_MSISDN = re.compile(r"[1-9][0-9]{7,14}")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_HEADER_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_HEADER_NAME - 1}}}")
_MESSAGE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_MESSAGE_ID}}}")
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
    """A string that is valid UTF-8, within `max_len` characters.

    `single_line`: no line or paragraph separators (CR, LF, VT, FF, NEL, U+2028, U+2029)
    and no other control characters (tabs, escapes, DEL, C1) either."""
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
    if single_line:
        _one_line(value, field)
    return value


def _one_line(value: str, field: str) -> None:
    if _LINE_BREAK.search(value):
        raise InvalidInput(field, "must be a single line (no line or paragraph separators)")
    if _CONTROL.search(value):
        raise InvalidInput(field, "must not contain control characters (such as tabs or escapes)")


def message_id(value: Any, field: str = "id") -> str:
    """A message id: 1 to 90 of `A-Z a-z 0-9 . _ : -` (a UUID is one)."""
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise InvalidInput(field, f"must be 1 to {MAX_MESSAGE_ID} of A-Z a-z 0-9 . _ : -")
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


def header_allowed(name: str) -> bool:
    """Whether a producer may set the email header `name` (case-insensitive)."""
    folded = name.lower()
    return folded in _SAFE_HEADERS or any(
        folded.startswith(prefix.lower()) and len(folded) > len(prefix) for prefix in SAFE_HEADER_PREFIXES
    )


def _header_name(name: Any, index: int, field: str) -> str:
    shown = name if isinstance(name, str) and re.fullmatch(r"[ -~]{1,40}", name) else None
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        if shown is not None:
            raise InvalidInput(f"{field}.{shown}", "is not a valid header name (A-Z a-z 0-9 - _ .)")
        raise InvalidInput(field, f"header {index + 1} has an invalid name (A-Z a-z 0-9 - _ .)")
    if not header_allowed(name):
        raise InvalidInput(
            f"{field}.{name}",
            "is not a custom header a send may set: the message's own fields and the provider "
            f"set the others (allowed: X-*, List-*, {', '.join(SAFE_HEADERS)})",
        )
    return name


def headers(value: Any, field: str) -> dict[str, str]:
    """Custom email headers as an object of name: value (see `header_pairs`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(field, "must be an object of name: value")
    return header_pairs(list(value.items()), field)


def header_pairs(pairs: list[tuple[Any, Any]], field: str) -> dict[str, str]:
    """Custom email headers: `X-*`, `List-*` and `SAFE_HEADERS`, each once (names are
    case-insensitive), with single-line values; at most `MAX_HEADERS`, `MAX_HEADERS_SIZE`
    characters together."""
    if len(pairs) > MAX_HEADERS:
        raise InvalidInput(field, f"has too many headers ({len(pairs)}, at most {MAX_HEADERS})")
    out: dict[str, str] = {}
    seen: set[str] = set()
    size = 0
    for index, (name, val) in enumerate(pairs):
        checked = _header_name(name, index, field)
        where = f"{field}.{checked}"
        if checked.lower() in seen:
            raise InvalidInput(where, "is given twice (header names are case-insensitive)")
        seen.add(checked.lower())
        out[checked] = text(val, where, max_len=MAX_HEADER_VALUE, allow_empty=True, single_line=True)
        size += len(checked) + len(out[checked])
        if size > MAX_HEADERS_SIZE:
            raise InvalidInput(field, f"are too large together (at most {MAX_HEADERS_SIZE} characters)")
    return out


def _bounded_list(value: Any, field: str, shape: str, limit: int, noun: str) -> list[Any]:
    """`value` as a list of at most `limit` items (none for None), or InvalidInput naming `field`."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidInput(field, f"must be {shape}")
    items = list(value)
    if len(items) > limit:
        raise InvalidInput(field, f"has too many {noun} ({len(items)}, at most {limit})")
    return items


def tags(value: Any, field: str, *, limit: int = MAX_TAGS + 2) -> list[str]:
    """A list of at most `limit` short single-line strings (by default room for the
    worker's own two besides a producer's `MAX_TAGS`)."""
    items = _bounded_list(value, field, "a list of strings", limit, "tags")
    return [text(tag, f"{field}[{i}]", max_len=MAX_TAG, single_line=True) for i, tag in enumerate(items)]


def own_tags(value: Any, field: str) -> list[str]:
    """A producer's tags: at most `MAX_TAGS`, none starting with `hudhud-` (in any case or
    width): the worker tags every Taifa email `hudhud-<message id>` to find it again."""
    out = tags(value, field, limit=MAX_TAGS)
    for index, tag in enumerate(out):
        if unicodedata.normalize("NFKC", tag).casefold().startswith(RESERVED_TAG_PREFIX):
            raise InvalidInput(
                f"{field}[{index}]", f"must not start with {RESERVED_TAG_PREFIX!r} (hudhud's own)"
            )
    return out


def filename(value: Any, field: str) -> str:
    """An attachment's file name, checked as a reader would see it (after NFKC, which turns
    the fullwidth U+FF0F, U+FF3C and U+FF0E into `/`, `\\` and `.`): one line without control
    characters, no path separator or look-alike, no bidirectional control, not `.` or `..`."""
    name = text(value, field, max_len=MAX_FILENAME, single_line=True)
    seen = unicodedata.normalize("NFKC", name)
    _one_line(seen, field)
    if any(ch in _PATH_SEPARATORS for ch in name + seen):
        raise InvalidInput(field, "must not contain a path separator ('/', '\\' or a look-alike)")
    if any(ch in _BIDI_CONTROLS for ch in name + seen):
        raise InvalidInput(field, "must not contain bidirectional controls (such as U+202E)")
    if not seen.strip(" ."):
        raise InvalidInput(field, "must be a file name, not '.' or '..'")
    return name


def base64_size(data: str) -> int:
    """The decoded size of a base64 string, without decoding it."""
    stripped = data.rstrip("=")
    return (len(stripped) * 3) // 4


def attachments(value: Any, field: str) -> list[dict[str, str]]:
    """Taifa attachment rules: base64 without `data:` prefix, safe names, 24 MiB each and total."""
    items = _bounded_list(
        value, field, "a list of {filename, content_base64, content_type}", MAX_ATTACHMENTS, "attachments"
    )
    total = 0
    out: list[dict[str, str]] = []
    for index, item in enumerate(items):
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
        name = filename(item.get("filename"), f"{where}.filename")
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


def span(length: timedelta) -> str:
    """`366 days`, `30 days`, `1 minute`, `90 seconds`: a limit in words."""
    seconds = int(length.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def example_time(now: datetime | None = None) -> str:
    """A time to show in a hint that is itself accepted: tomorrow at 09:00 in Riyadh."""
    riyadh = timezone(timedelta(hours=3))
    tomorrow = (now or datetime.now(UTC)).astimezone(riyadh) + timedelta(days=1)
    return tomorrow.replace(hour=9, minute=0, second=0, microsecond=0).isoformat()


def instant(value: Any, field: str) -> datetime:
    """An ISO 8601 time with an offset or `Z`, as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        raw = value.strip()
        try:
            moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
        except ValueError:
            raise InvalidInput(field, f"is not an ISO 8601 time (e.g. {example_time()})") from None
    else:
        raise InvalidInput(field, "must be an ISO 8601 time string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(field, f"needs an offset or Z (e.g. {example_time()})")
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
            field,
            "is in the past" if min_ahead == timedelta(0) else f"must be at least {span(min_ahead)} ahead",
        )
    if max_ahead is not None and moment > current + max_ahead:
        raise InvalidInput(field, f"must be at most {span(max_ahead)} ahead (e.g. {example_time()})")
    return moment
