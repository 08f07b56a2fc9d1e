"""Checks of a Taifa Mail send body: FastAPI-style 422 field errors, then 400/413 problems."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from hudhud.worker.sandbox.bodies import is_unicode
from hudhud.worker.sandbox.clock import parse_iso
from hudhud.worker.sandbox.taifa_model import Address, SendRequest

MAX_ATTACHMENT_BYTES = 24 * 1024 * 1024
MIN_LEAD_SECONDS = 60.0
MAX_LEAD_SECONDS = 30 * 24 * 3600.0
UNVERIFIED_DOMAIN = "unverified.example"
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_SPACE = re.compile(r"\s+")
NOT_UNICODE = "Input should be a valid string, unable to parse raw data as a unicode string"

Loc = tuple[str | int, ...]


@dataclass
class Problem:
    """A refusal answered with `{"detail": {"code", "message"}}` (400, 403, 413)."""

    status: int
    code: str
    message: str
    field: str = "body"

    def body(self) -> dict[str, Any]:
        return {"detail": {"code": self.code, "message": self.message}}


@dataclass
class Checked:
    """The outcome of checking one send body."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    request: SendRequest | None = None

    def fail(self, loc: Loc, msg: str, kind: str = "value_error") -> None:
        self.errors.append({"type": kind, "loc": ["body", *loc], "msg": msg})

    def issues(self) -> list[dict[str, str]]:
        """Everything wrong, as the validate endpoint lists it."""
        listed = [
            {"field": ".".join(str(part) for part in error["loc"][1:]) or "body", "error": error["msg"]}
            for error in self.errors
        ]
        return listed + [{"field": problem.field, "error": problem.message} for problem in self.problems]

    def first_reason(self) -> str:
        """One line for a failed batch item."""
        issue = self.issues()[0]
        return f"{issue['field']}: {issue['error']}"


def is_email(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def check_send(body: Any, now: float) -> Checked:
    """Check a send body the way POST /v1/emails/ does, collecting every problem."""
    checked = Checked()
    if not isinstance(body, dict):
        checked.fail(
            (), "Input should be a valid dictionary or object to extract fields from", "model_attributes_type"
        )
        return checked
    sender = _address(checked, body, "from_", required=True)
    if sender is not None and sender.email.rpartition("@")[2].lower() == UNVERIFIED_DOMAIN:
        checked.fail(("from_", "email"), "sender domain is not verified")
    to = _address_list(checked, body, "to", required=True)
    subject = _string(checked, body, "subject", (), required=True)
    html = _string(checked, body, "html", ())
    text = _string(checked, body, "text", ())
    if not html and not text and not {"html", "text"} & _bad_keys(checked):
        checked.fail((), "Value error, at least one of html or text is required")
    request = SendRequest(
        from_=sender or Address(""),
        to=to,
        subject=subject or "",
        html=html,
        text=text,
        cc=_address_list(checked, body, "cc"),
        bcc=_address_list(checked, body, "bcc"),
        reply_to=_address(checked, body, "reply_to"),
        headers=_headers(checked, body),
        tags=_tags(checked, body),
    )
    attachments = _attachments(checked, body)
    send_at = _string(checked, body, "send_at", ())
    if checked.errors:
        return checked
    _check_attachments(checked, attachments)
    if send_at is not None:
        request.send_at = _check_send_at(checked, send_at, now)
    checked.request = request
    return checked


def _bad_keys(checked: Checked) -> set[str]:
    return {str(error["loc"][1]) for error in checked.errors if len(error["loc"]) > 1}


def _string(
    checked: Checked, obj: dict[str, Any], key: str, loc: Loc, *, required: bool = False
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            checked.fail((*loc, key), "Field required", "missing")
        return None
    if not isinstance(value, str):
        checked.fail((*loc, key), "Input should be a valid string", "string_type")
        return None
    if not is_unicode(value):
        checked.fail((*loc, key), NOT_UNICODE, "string_unicode")
        return None
    if required and not value.strip():
        checked.fail((*loc, key), "String should have at least 1 character", "string_too_short")
        return None
    return value


def _address_at(checked: Checked, value: Any, loc: Loc) -> Address | None:
    if not isinstance(value, dict):
        checked.fail(
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )
        return None
    email = _string(checked, value, "email", loc, required=True)
    name = _string(checked, value, "name", loc)
    if email is None:
        return None
    if not is_email(email.strip()):
        checked.fail((*loc, "email"), "value is not a valid email address")
        return None
    return Address(email.strip(), name)


def _address(checked: Checked, body: dict[str, Any], key: str, *, required: bool = False) -> Address | None:
    if body.get(key) is None:
        if required:
            checked.fail((key,), "Field required", "missing")
        return None
    return _address_at(checked, body[key], (key,))


def _address_list(
    checked: Checked, body: dict[str, Any], key: str, *, required: bool = False
) -> list[Address]:
    values = body.get(key)
    if values is None:
        if required:
            checked.fail((key,), "Field required", "missing")
        return []
    if not isinstance(values, list):
        checked.fail((key,), "Input should be a valid list", "list_type")
        return []
    if required and not values:
        checked.fail((key,), "List should have at least 1 item after validation, not 0", "too_short")
    found = [_address_at(checked, value, (key, index)) for index, value in enumerate(values)]
    return [address for address in found if address is not None]


def _headers(checked: Checked, body: dict[str, Any]) -> dict[str, str]:
    headers = body.get("headers")
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        checked.fail(("headers",), "Input should be a valid dictionary", "dict_type")
        return {}
    for name, value in headers.items():
        if not is_unicode(name):
            checked.fail(("headers", name, "[key]"), NOT_UNICODE, "string_unicode")
        elif not isinstance(value, str):
            checked.fail(("headers", name), "Input should be a valid string", "string_type")
        elif not is_unicode(value):
            checked.fail(("headers", name), NOT_UNICODE, "string_unicode")
    return headers


def _tags(checked: Checked, body: dict[str, Any]) -> list[str]:
    tags = body.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list):
        checked.fail(("tags",), "Input should be a valid list", "list_type")
        return []
    for index, tag in enumerate(tags):
        if not isinstance(tag, str):
            checked.fail(("tags", index), "Input should be a valid string", "string_type")
        elif not is_unicode(tag):
            checked.fail(("tags", index), NOT_UNICODE, "string_unicode")
    return [tag for tag in tags if isinstance(tag, str)]


def _attachments(checked: Checked, body: dict[str, Any]) -> list[tuple[str, str]]:
    values = body.get("attachments")
    if values is None:
        return []
    if not isinstance(values, list):
        checked.fail(("attachments",), "Input should be a valid list", "list_type")
        return []
    found: list[tuple[str, str]] = []
    for index, value in enumerate(values):
        loc: Loc = ("attachments", index)
        if not isinstance(value, dict):
            checked.fail(
                loc,
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )
            continue
        name = _string(checked, value, "filename", loc, required=True)
        content = _string(checked, value, "content_base64", loc, required=True)
        _string(checked, value, "content_type", loc)
        if name is not None and content is not None:
            found.append((name, content))
    return found


def _check_attachments(checked: Checked, attachments: list[tuple[str, str]]) -> None:
    total = 0
    for index, (name, content) in enumerate(attachments):
        field_name = f"attachments.{index}"
        if any(char in name for char in "/\\\x00"):
            checked.problems.append(
                Problem(
                    400,
                    "invalid_attachment",
                    f"attachment {name!r}: filename must not contain /, \\ or NUL",
                    field_name,
                )
            )
            continue
        if content.lstrip().lower().startswith("data:"):
            checked.problems.append(
                Problem(
                    400,
                    "invalid_attachment",
                    f"attachment {name!r}: content_base64 must not carry a data: URL prefix",
                    field_name,
                )
            )
            continue
        try:
            size = len(base64.b64decode(_SPACE.sub("", content), validate=True))
        except (binascii.Error, ValueError):
            checked.problems.append(
                Problem(
                    400,
                    "invalid_attachment",
                    f"attachment {name!r}: content_base64 is not valid base64",
                    field_name,
                )
            )
            continue
        if size > MAX_ATTACHMENT_BYTES:
            checked.problems.append(
                Problem(
                    413,
                    "payload_too_large",
                    f"attachment {name!r} is {size} bytes, over the 24 MiB cap",
                    field_name,
                )
            )
        total += size
    if total > MAX_ATTACHMENT_BYTES and not any(p.status == 413 for p in checked.problems):
        checked.problems.append(
            Problem(
                413,
                "payload_too_large",
                f"attachments total {total} bytes, over the 24 MiB cap",
                "attachments",
            )
        )


def _check_send_at(checked: Checked, value: str, now: float) -> float | None:
    moment = parse_iso(value)
    if moment is None:
        message = f"send_at {value!r} is not an ISO 8601 datetime"
    elif moment < now + MIN_LEAD_SECONDS:
        message = "send_at must be at least 1 minute in the future"
    elif moment > now + MAX_LEAD_SECONDS:
        message = "send_at must be at most 30 days in the future"
    else:
        return moment
    checked.problems.append(Problem(400, "invalid_send_at", message, "send_at"))
    return None


def refusal(checked: Checked) -> Problem | None:
    """The single answer a send gets for a body with problems (400 before 413)."""
    if not checked.problems:
        return None
    return min(checked.problems, key=lambda problem: problem.status)
