"""The checked JSON bodies and parameters of Taifa's requests (InvalidInput on bad input)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hudhud.worker.errors import InvalidInput
from hudhud.worker.producer import validation

SEND_AT_MIN_AHEAD = timedelta(minutes=1)
SEND_AT_MAX_AHEAD = timedelta(days=30)
MAX_PAGE_LIMIT = 100

Address = str | Mapping[str, Any]

_SEND_FIELDS = frozenset(
    {
        "from_",
        "to",
        "subject",
        "html",
        "text",
        "cc",
        "bcc",
        "reply_to",
        "headers",
        "tags",
        "send_at",
        "attachments",
    }
)


def address(value: Any, field: str) -> dict[str, str]:
    """An address as Taifa wants it: `{"email", "name"?}` from "a@b.c" or such a dict."""
    if isinstance(value, str):
        return {"email": validation.email(value, field)}
    if not isinstance(value, Mapping):
        raise InvalidInput(field, 'must be an email address or {"email", "name"}')
    unknown = set(value) - {"email", "name"}
    if unknown:
        raise InvalidInput(f"{field}.{sorted(map(str, unknown))[0]}", "is not a known field")
    out = {"email": validation.email(value.get("email"), f"{field}.email")}
    if value.get("name") not in (None, ""):
        out["name"] = validation.text(value["name"], f"{field}.name", max_len=200, single_line=True)
    return out


def address_list(values: Any, field: str, *, required: bool) -> builtins.list[dict[str, str]]:
    """A list of addresses (a single one is taken as a list of one), duplicates removed."""
    if values is None:
        values = []
    if isinstance(values, str | Mapping):
        values = [values]
    if not isinstance(values, Iterable):
        raise InvalidInput(field, "must be a list of addresses")
    items = builtins.list(values)
    if required and not items:
        raise InvalidInput(field, "needs at least one recipient")
    if len(items) > validation.MAX_RECIPIENTS:
        raise InvalidInput(field, f"has too many recipients (at most {validation.MAX_RECIPIENTS})")
    seen: dict[str, dict[str, str]] = {}
    for index, item in enumerate(items):
        entry = address(item, f"{field}[{index}]")
        seen.setdefault(entry["email"].lower(), entry)
    return builtins.list(seen.values())


def send_at_text(value: datetime | str, field: str = "send_at", now: datetime | None = None) -> str:
    """`send_at` between 1 minute and 30 days ahead, as ISO 8601 UTC."""
    moment = validation.future_instant(
        value, field, now=now, min_ahead=SEND_AT_MIN_AHEAD, max_ahead=SEND_AT_MAX_AHEAD, grace=timedelta(0)
    )
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def email_payload(
    from_: Address,
    to: Address | Iterable[Address],
    subject: str,
    *,
    html: str | None = None,
    text: str | None = None,
    cc: Iterable[Address] | None = None,
    bcc: Iterable[Address] | None = None,
    reply_to: Address | None = None,
    headers: Mapping[str, str] | None = None,
    tags: Iterable[str] | None = None,
    send_at: datetime | str | None = None,
    attachments: Iterable[Mapping[str, str]] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """The checked JSON body of a send; InvalidInput (naming the field) on bad input."""
    if html is None and text is None:
        raise InvalidInput(f"{prefix}html", "at least one of html or text is required")
    payload: dict[str, Any] = {
        "from_": address(from_, f"{prefix}from_"),
        "to": address_list(to, f"{prefix}to", required=True),
        "subject": validation.text(
            subject, f"{prefix}subject", max_len=validation.MAX_SUBJECT, single_line=True
        ),
    }
    for name, body in (("html", html), ("text", text)):
        if body is not None:
            payload[name] = validation.text(body, f"{prefix}{name}", max_len=validation.MAX_EMAIL_BODY)
    optional: dict[str, Any] = {
        "cc": address_list(cc, f"{prefix}cc", required=False),
        "bcc": address_list(bcc, f"{prefix}bcc", required=False),
        "reply_to": address(reply_to, f"{prefix}reply_to") if reply_to is not None else None,
        "headers": validation.headers(headers, f"{prefix}headers"),
        "tags": validation.tags(tags, f"{prefix}tags"),
        "send_at": send_at_text(send_at, f"{prefix}send_at") if send_at is not None else None,
        "attachments": validation.attachments(attachments, f"{prefix}attachments"),
    }
    payload.update({k: v for k, v in optional.items() if v})
    return payload


def batch_payload(messages: Iterable[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
    """Each message as `send()` takes it (`from_`, `to`, `subject`, ...), checked."""
    if isinstance(messages, str | Mapping) or not isinstance(messages, Iterable):
        raise InvalidInput("messages", "must be a list of send objects")
    out = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]."
        if not isinstance(message, Mapping):
            raise InvalidInput(where[:-1], "must be an object of send fields")
        unknown = set(message) - _SEND_FIELDS
        if unknown:
            raise InvalidInput(f"{where}{sorted(map(str, unknown))[0]}", "is not a known field")
        for needed in ("from_", "to", "subject"):
            if needed not in message:
                raise InvalidInput(f"{where}{needed}", "is required")
        fields = dict(message)
        out.append(
            email_payload(
                fields.pop("from_"), fields.pop("to"), fields.pop("subject"), prefix=where, **fields
            )
        )
    if not out:
        raise InvalidInput("messages", "needs at least one message")
    return out


def email_id(value: Any, field: str = "id") -> str:
    """An email id, safe inside a URL path."""
    text = validation.text(
        str(value) if isinstance(value, int) else value, field, max_len=100, single_line=True
    ).strip()
    return quote(text, safe="")


def page_params(page: int, limit: int) -> dict[str, int]:
    if isinstance(page, bool) or not isinstance(page, int) or page < 0:
        raise InvalidInput("page", "must be an integer of 0 or more")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidInput("limit", f"must be an integer from 1 to {MAX_PAGE_LIMIT}")
    return {"page": page, "limit": limit}
