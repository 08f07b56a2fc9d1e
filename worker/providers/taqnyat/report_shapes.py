"""Reading Taqnyat's delivery reports: every shape a call to `/webhooks/taqnyat` may take.

Taqnyat does not publish the report's payload, so this reads liberally:
- the body: a JSON object, a JSON list of reports, an object holding a list (`data`,
  `reports`, `results`, `messages`, `items`, `recipients`, ...), form fields
  (url-encoded or multipart), or an SMPP-style receipt text (`id:... stat:DELIVRD err:000`);
  the query string's fields count too (a GET carries only those);
- field names in any case and spelling (`messageId`, `message_id`, `MessageID` are one);
- the pass phrase under `passphrase`, `pass_phrase`, `passPhrase`, `pass`, `password`,
  `secret` or `token`, in the query, the body or a header.

What is kept of a report (`Report.raw`) has every number masked, the pass phrase and any
message text withheld, and at most `MAX_KEPT` values `MAX_DEPTH` deep: it becomes an event in
the ledger. A JSON body nested deeper than `MAX_BODY_DEPTH` is refused before it is parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl

from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers.base import Inbound
from hudhud.worker.providers.taqnyat import body_scan
from hudhud.worker.providers.taqnyat.body_scan import deeper_than
from hudhud.worker.redaction import MASK, Redactor

NUMBER_MASK = "<number>"
TEXT_MASK = "<text withheld>"
MAX_REPORTS = 10_000  # reports read from one call
MAX_DEPTH = 4  # levels of a report's objects read and kept
MAX_BODY_DEPTH = 12  # levels of a JSON body at most: deeper, it is refused unread
MAX_KEPT = 200  # values kept of one report
MAX_FIELDS = 100  # fields read of one object
NESTED_MASK = "<nested>"

ID_KEYS = ("messageid", "msgid", "messagesid", "requestid", "providermessageid", "mid", "dlrid", "id")
OWN_ID_KEYS = ("smsid", "clientmessageid", "clientmsgid", "clientid", "customid", "externalid")
NUMBER_KEYS = frozenset(
    {
        "mobile", "mobileno", "mobilenumber", "recipient", "recipients", "to", "number", "phone",
        "phonenumber", "msisdn", "destination", "destinationaddr", "destaddr", "dest", "receiver",
        "numbers", "mobiles", "phones", "msisdns",
    }
)  # fmt: skip
# The most specific first: `status` may also tell how the webhook call itself went.
STATUS_KEYS = (
    "dlrstatus", "deliverystatus", "deliverystate", "stat", "messagestatus", "smsstatus",
    "status", "state", "statusname", "dlr", "result",
)  # fmt: skip
DESCRIPTION_KEYS = (
    "statusdescription", "description", "errordescription", "errormessage", "errortext", "reason",
    "statusreason", "statusmessage", "error", "err", "errorcode", "detail", "details",
)  # fmt: skip
TIME_KEYS = (
    "deliveredat", "deliverytime", "deliverydate", "donedate", "donetime", "dlrtime", "statustime",
    "statusdate", "reportedat", "receivedat", "updatedat", "timestamp", "datetime", "time", "date", "at",
    "submitdate",
)  # fmt: skip
SMPP_TIME_KEYS = frozenset({"donedate", "submitdate"})  # yyMMddhhmm[ss], as SMPP receipts write it
# A report may echo the message's text: never kept.
TEXT_KEYS = frozenset(
    {"text", "body", "content", "msg", "msgtext", "message", "messagetext", "sms", "shortmessage"}
)
CONTAINER_KEYS = frozenset(
    {"data", "report", "reports", "results", "result", "messages", "items", "payload", "dlr", "dlrs",
     "deliveryreports", "statuses", "recipients", "numbers", "list"}
)  # fmt: skip
SECRET_NAMES = frozenset({"pass", "password", "secret", "token", "apikey", "bearertoken", "bearertokens"})

DELIVERED_WORDS = frozenset(
    {
        "delivrd", "delivered", "deliver", "dlvrd", "success", "successful", "succeeded", "succeed",
        "deliveredtohandset", "deliveredtophone", "deliveredtoterminal", "ok", "true", "1",
    }
)  # fmt: skip
FAILED_WORDS = frozenset(
    {
        "undeliv", "undelivered", "undeliverable", "undelivrd", "notdelivered", "failed", "fail",
        "failure", "deliveryfailed", "rejectd", "rejected", "reject", "expired", "expird", "deleted",
        "deletd", "error", "blocked", "blacklisted", "invalid", "nack", "false", "0",
    }
)  # fmt: skip
_SMPP_FIELD = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err):(\S*)", re.IGNORECASE)
_RECEIPT = re.compile(r"\bstat:\S", re.IGNORECASE)
_TIME_TEXT = re.compile(r"[0-9T:\-\s.+Z/]{1,40}")
_DIGITS = re.compile(r"\d{8,15}")


def norm(name: str) -> str:
    """A field name in one spelling: `Message_ID`, `messageId`, `message-id` -> `messageid`."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_secret_name(name: str) -> bool:
    key = norm(name).removeprefix("x").removeprefix("taqnyat")
    return "passphrase" in key or key in SECRET_NAMES or key.removeprefix("webhook") in SECRET_NAMES


@dataclass(frozen=True)
class Report:
    """One report: what was recognized in it, and what is kept of it (`raw`, masked)."""

    provider_id: str | None = None
    own_id: str | None = None
    number: str | None = None
    word: str | None = None
    description: str | None = None
    reported_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status | None:
        """delivered, failed, or None for a word that is not final (sent, enroute) or unknown."""
        return outcome(self.word)

    @property
    def reports_anything(self) -> bool:
        return any((self.provider_id, self.own_id, self.number, self.word))


@dataclass(frozen=True)
class Call:
    """A call to the webhook, read: its reports."""

    reports: list[Report]
    readable: bool = True


class TooDeep(ValueError):
    """A JSON body nested deeper than `MAX_BODY_DEPTH`."""


def outcome(word: str | None) -> Status | None:
    if word is None:
        return None
    key = norm(word)
    if key in FAILED_WORDS or key.startswith(("undeliv", "notdeliv")) or "fail" in key:
        return Status.FAILED
    if key in DELIVERED_WORDS or key.startswith("deliv"):
        return Status.DELIVERED
    return None


def number_of(value: Any) -> str | None:
    """A recipient's number as the ledger keeps it: digits, international, no `+` or `00`."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    digits = re.sub(r"[\s\-().]", "", str(value)).removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    return digits if _DIGITS.fullmatch(digits) else None


def id_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 100 and "\n" not in value:
        return value.strip()
    return None


def time_of(value: Any) -> str | None:
    """A report's time in the ledger's format when it reads as one, else its text (short)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            return iso(value / 1000 if value > 1e11 else value)
        except (OverflowError, ValueError, OSError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return time_of(int(text))
    try:
        moment = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        return text[:40] if _TIME_TEXT.fullmatch(text) else None
    return iso((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


# --- the call's body ------------------------------------------------------------------------


def read(inbound: Inbound, secret: str) -> Call:
    """The reports of a call (query and body); TooDeep for a body nested too deep."""
    body, readable = decode_body(inbound)
    query = {k: v for k, v in inbound.query.items() if not is_secret_name(k)}
    if body is None:
        items: list[dict[str, Any]] = [query] if query else []
    else:
        items = []
        for item in _items(body, query, 0):
            items.append(item)
            if len(items) >= MAX_REPORTS:
                break
    redact = Redactor(secrets=(secret,))
    return Call([report_of(item, redact) for item in items], readable)


def decode_body(inbound: Inbound) -> tuple[Any, bool]:
    """The body as JSON, form fields or receipt text; (None, True) when empty, (None, False)
    when it reads as none of them."""
    raw = inbound.body
    if not raw.strip():
        return None, True
    content_type = inbound.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        fields = multipart_fields(content_type, raw)
        return fields, fields is not None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, False
    if kind == "application/x-www-form-urlencoded":
        return form_fields(text), True
    if text[:1] in "{[":
        if deeper_than(text, MAX_BODY_DEPTH):
            raise TooDeep(f"nests deeper than {MAX_BODY_DEPTH} levels")
        try:
            return json.loads(text), True
        except (ValueError, RecursionError):
            return None, False
    if _RECEIPT.search(text):
        return text, True
    if "=" in text and not any(c.isspace() for c in text):
        return form_fields(text), True
    return None, False


def form_fields(text: str) -> dict[str, Any]:
    """Url-encoded fields; a name given more than once holds the list of its values."""
    fields: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        if name in fields:
            held = fields[name]
            fields[name] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            fields[name] = value
    return fields


def multipart_fields(content_type: str, raw: bytes) -> dict[str, Any] | None:
    fields = body_scan.multipart_fields(content_type, raw)
    return None if fields is None else dict(islice(fields, MAX_REPORTS))


def _items(value: Any, around: Mapping[str, Any], depth: int) -> Iterator[dict[str, Any]]:
    """Each report in `value` as one flat mapping (the names as given), holding the fields of
    the objects around it too (a list of recipients under one `messageId`)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list):
        for item in value:
            yield from _items(item, around, depth + 1)
        return
    if isinstance(value, str) and _RECEIPT.search(value):
        value = smpp_fields(value)
    if not isinstance(value, Mapping):
        return
    fields = {str(k): v for k, v in islice(value.items(), MAX_FIELDS)}
    inner = {k: v for k, v in fields.items() if norm(k) in CONTAINER_KEYS and _nested(v)}
    merged = {**around, **{k: v for k, v in fields.items() if k not in inner}}
    for key, v in fields.items():
        if isinstance(v, str) and norm(str(key)) not in TEXT_KEYS and _RECEIPT.search(v):
            merged = {**smpp_fields(v), **merged}
    found = False
    for held in inner.values():
        for item in _items(held, merged, depth + 1):
            found = True
            yield item
    if not found:
        yield from _per_number(merged)


def _nested(value: Any) -> bool:
    """An object, or a list holding objects, lists or receipts (not a list of numbers)."""
    if isinstance(value, Mapping):
        return True
    return isinstance(value, list) and any(
        isinstance(v, Mapping | list) or (isinstance(v, str) and bool(_RECEIPT.search(v))) for v in value
    )


def _per_number(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One report per number where a number field holds a list of them."""
    for key, value in item.items():
        if norm(key) in NUMBER_KEYS and isinstance(value, list):
            for number in value[:MAX_REPORTS]:
                yield {**item, key: number}
            return
    yield item


def smpp_fields(text: str) -> dict[str, str]:
    """The fields of an SMPP receipt (`id:.. sub:.. dlvrd:.. submit date:.. done date:..
    stat:DELIVRD err:000 text:..`), its `text` left out."""
    return {name.lower(): value for name, value in _SMPP_FIELD.findall(text)}


# --- one report -----------------------------------------------------------------------------


def report_of(item: Mapping[str, Any], redact: Redactor) -> Report:
    by_name: dict[str, Any] = {}
    for key, value in item.items():
        by_name.setdefault(norm(key), value)

    def first(keys: Any, read: Any) -> Any:
        return next((found for k in keys if (found := read(by_name.get(k))) is not None), None)

    return Report(
        provider_id=first(ID_KEYS, id_of),
        own_id=first(OWN_ID_KEYS, id_of),
        number=first(sorted(NUMBER_KEYS & by_name.keys()), number_of),
        word=first(STATUS_KEYS, _word),
        description=first(DESCRIPTION_KEYS, lambda v: _description(v, redact)),
        reported_at=_reported_at(by_name),
        raw=masked(dict(item), redact),
    )


def _reported_at(by_name: Mapping[str, Any]) -> str | None:
    for key in TIME_KEYS:
        value = by_name.get(key)
        found = smpp_time(value) if key in SMPP_TIME_KEYS else time_of(value)
        if found is not None:
            return found
    return None


def smpp_time(value: Any) -> str | None:
    text = str(value).strip() if isinstance(value, str | int) else ""
    layout = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(text))
    if layout is None or not text.isdigit():
        return None
    try:
        return iso(datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


def _word(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value.strip()) <= 60:
        return value.strip()
    return None


def _description(value: Any, redact: Redactor) -> str | None:
    word = _word(value)
    return None if word is None else redact(word)


@dataclass
class _Budget:
    """How many more values `masked` keeps of one report."""

    left: int = MAX_KEPT

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def masked(
    value: Any, redact: Redactor, name: str = "", depth: int = 0, budget: _Budget | None = None
) -> Any:
    """`value` fit for the ledger: numbers masked, the pass phrase and message text withheld,
    every other text without numbers, addresses or the pass phrase; objects deeper than
    `MAX_DEPTH` withheld, and no more than `MAX_KEPT` values in all."""
    budget = budget if budget is not None else _Budget()
    if name and is_secret_name(name):
        return MASK
    if isinstance(value, Mapping | list) and depth >= MAX_DEPTH:
        return NESTED_MASK
    if isinstance(value, Mapping):
        kept: dict[str, Any] = {}
        for k, v in value.items():
            if not budget.take():
                break
            kept[str(k)] = masked(v, redact, str(k), depth + 1, budget)
        return kept
    if isinstance(value, list):
        items: list[Any] = []
        for v in value:
            if not budget.take():
                break
            items.append(masked(v, redact, name, depth + 1, budget))
        return items
    return _masked_scalar(value, redact, norm(name))


def _masked_scalar(value: Any, redact: Redactor, key: str) -> Any:
    if value is None or isinstance(value, bool | float):
        return value
    if key in TEXT_KEYS:
        return TEXT_MASK
    if key in NUMBER_KEYS:
        return NUMBER_MASK
    kept_as_is = key in ID_KEYS or key in OWN_ID_KEYS or key in TIME_KEYS
    if isinstance(value, int):
        return value if kept_as_is or len(str(abs(value))) < 8 else NUMBER_MASK
    if kept_as_is and id_of(value) is not None and MASK not in redact(str(value)):
        return value
    return redact(_without_text(str(value)))[:500]


def _without_text(value: str) -> str:
    """A receipt's `text:` (the message's first characters) cut off."""
    if not _RECEIPT.search(value):
        return value
    parts = re.split(r"\btext:", value, maxsplit=1, flags=re.IGNORECASE)
    return parts[0].rstrip() + (f" text:{TEXT_MASK}" if len(parts) > 1 else "")
