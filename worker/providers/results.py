"""Small typed results of provider calls, and the helpers that read the providers' values.

Reprs leave out recipients, bodies and raw replies: results travel into logs.
`raw` keeps the provider's reply in JSON-native types (for the record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_QUOTES = "\"' "


# --- value helpers -------------------------------------------------------------------


def exact_id(value: Any) -> str | None:
    """An id as exact text: 5452899970123 stays 5452899970123, however large."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return str(value)
    if isinstance(value, float):
        raise TypeError("ids must not be parsed as float: decode JSON with exact integers")
    text = str(value).strip()
    return text or None


def list_like(value: Any) -> tuple[str, ...]:
    """Recipients from a list or from a string that looks like one: "[966500000000,]"."""
    if value is None or value == "" or value == "null":
        return ()
    if isinstance(value, list | tuple):
        items: Sequence[Any] = value
    elif isinstance(value, str):
        items = value.strip().strip("[]").split(",")
    else:
        items = [value]
    out = []
    for item in items:
        text = exact_id(item.strip(_QUOTES) if isinstance(item, str) else item)
        if text:
            out.append(text)
    return tuple(out)


def money(value: Any) -> Decimal | None:
    """A price as Decimal, from a string ("0.026") or a number (0.026)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def whole_number(value: Any) -> int | None:
    """An integer from an int, an integral Decimal or a digit string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive counts as UTC); None if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        raw = value.strip()
        try:
            moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
        except ValueError:
            return None
    else:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def day_first_date(value: Any) -> date | None:
    """Taqnyat's `accountExpiryDate` ("23-08-2031"); ISO dates too."""
    if not isinstance(value, str):
        return None
    for layout in ("%d-%m-%Y", "%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value.strip(), layout).date()
        except ValueError:
            continue
    return None


def text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """An accepted (or, for Taifa, possibly rejected) send.

    `status` is "sent" for a Taqnyat send the provider accepted, and Taifa's own status
    ("queued", "scheduled", "rejected", or "failed" for a batch item) as given.
    """

    provider: str
    provider_message_id: str | None
    status: str
    cost: Decimal | None = None
    currency: str | None = None
    accepted: tuple[str, ...] = field(default=(), repr=False)
    rejected: tuple[str, ...] = field(default=(), repr=False)
    rejection_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)
    # a batch of separate emails: the provider's id for each accepted recipient
    item_ids: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class Balance:
    provider: str
    balance: Decimal
    currency: str | None
    account_status: str | None = None
    expires_on: date | None = None
    points: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class Sender:
    name: str
    status: str | None = None
    destination: str | None = None

    @property
    def active(self) -> bool:
        return (self.status or "").lower() == "active"


@dataclass(frozen=True)
class SystemStatus:
    """Taqnyat's `/system/status`: `service` "none" means everything is up."""

    operational: bool
    services: tuple[str, ...]
    description: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class TaifaEvent:
    id: str | None
    event_type: str
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class TaifaEmail:
    """A Taifa email as listed (bodies, headers and events only from `get`)."""

    id: str
    status: str
    subject: str | None = field(default=None, repr=False)
    from_address: str | None = field(default=None, repr=False)
    to_addresses: tuple[str, ...] = field(default=(), repr=False)
    tags: tuple[str, ...] = ()
    scheduled_at: datetime | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    retry_of_id: str | None = None
    html: str | None = field(default=None, repr=False)
    text: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)
    events: tuple[TaifaEvent, ...] = field(default=(), repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class EmailStatus:
    """A status change: cancel, send-now, or one row of `updates`."""

    id: str
    status: str
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Updates:
    items: tuple[EmailStatus, ...]
    next_since: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    total: int
    page: int
    limit: int

    @property
    def has_more(self) -> bool:
        return (self.page + 1) * self.limit < self.total


@dataclass(frozen=True)
class BatchResult:
    total: int
    sent: int
    failed: int
    results: tuple[SendResult, ...]


@dataclass(frozen=True)
class ValidationIssue:
    field: str | None
    error: str


@dataclass(frozen=True)
class Validation:
    valid: bool
    can_send: bool
    issues: tuple[ValidationIssue, ...] = ()


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}
