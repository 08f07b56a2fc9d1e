"""Taifa's webhook calls to `/webhooks/taifa`: the signature, the payload, and what it records.

Taifa posts `{"type": "email.delivered", "email_id": "...", "data": {...}}` with the headers
`X-TaifaMail-Event`, `X-TaifaMail-Delivery-ID` and `X-TaifaMail-Signature`, an HMAC-SHA256 of
the raw body with the endpoint's `whsec_...` secret; it sends a delivery again until it gets a
2xx. Its public docs say neither how the digest is written nor whether the key is the whole
`whsec_...` text or the bytes its base64 part stands for, so every such form is accepted: hex
or base64 (standard or URL-safe), with or without a `sha256=` prefix, keyed either way.

What a report does is the poller's meaning of Taifa's words (`tracking.meaning`), written
through the same calls, with `via: "webhook"`; a hard bounce or a complaint puts its
recipient on the suppression list (`suppressing`). A delivery is applied once: the delivery id is
not signed, so a body seen before is a duplicate whatever its delivery id. A report about a
message still being handed over is answered 503, so Taifa sends it again once it is `sent`.
What is kept of Taifa's data leaves out, at every depth, the fields that name a person or
carry the email's content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hudhud.worker.ledger.inbound import Appended, Deliveries, Delivery
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers.base import Inbound, InboundAnswer
from hudhud.worker.providers.taifa import suppressing, tracking
from hudhud.worker.providers.taifa.failures import PROVIDER
from hudhud.worker.providers.taifa.tracking import Meaning
from hudhud.worker.redaction import scrubbed

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger.tracking import Tracker

SECRET_VARIABLE = "TAIFA_WEBHOOK_SECRET"
SIGNATURE_HEADER = "x-taifamail-signature"
EVENT_HEADER = "x-taifamail-event"
DELIVERY_HEADER = "x-taifamail-delivery-id"
SECRET_PREFIX = "whsec_"
VIA = "webhook"
MAX_ID = 200
PERSONAL = frozenset(
    {"to", "to_addresses", "from", "from_", "from_address", "email", "recipient", "cc", "bcc", "reply_to"}
    | {"subject", "html", "text", "headers", "attachments"}
)
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SEPARATORS = re.compile(r"[\s,;]+")


# -- the signature ------------------------------------------------------------------------


def signing_keys(secret: str) -> list[bytes]:
    """The keys a `whsec_...` secret may stand for: its whole text, and the bytes its base64
    part decodes to (when it decodes)."""
    keys = [secret.encode()]
    if secret.startswith(SECRET_PREFIX):
        tail = secret.removeprefix(SECRET_PREFIX)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(tail + "=" * (-len(tail) % 4))
            except (binascii.Error, ValueError):
                continue
            if raw and raw not in keys:
                keys.append(raw)
    return keys


def digests_in(header: str) -> list[bytes]:
    """The 32-byte digests a signature header carries (one or several, each hex or base64,
    each with or without `sha256=`)."""
    found = []
    for part in _SEPARATORS.split(header.strip()):
        value = part.removeprefix("sha256=").removeprefix("SHA256=")
        if _HEX.fullmatch(value):
            found.append(bytes.fromhex(value))
            continue
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                continue
            if len(raw) == hashlib.sha256().digest_size:
                found.append(raw)
                break
    return found


def signed(body: bytes, header: str, secret: str) -> bool:
    """Whether `header` holds the HMAC-SHA256 of `body` under `secret` (compared in constant
    time with every key form)."""
    given = digests_in(header)
    expected = [hmac.new(key, body, hashlib.sha256).digest() for key in signing_keys(secret)]
    matched = False
    for candidate in given:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    return matched


# -- the payload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One webhook delivery: Taifa's event type, its email id, its data, and what tells it
    apart (its delivery id and body)."""

    kind: str
    email_id: str
    data: dict[str, Any]
    delivery: Delivery


def _bad(field: str, message: str) -> InboundAnswer:
    return InboundAnswer(400, {"error": {"field": field, "message": message}})


def _text_field(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= MAX_ID and value.isprintable():
        return value.strip()
    return None


def parse(inbound: Inbound) -> Report | InboundAnswer:
    """The report a signed body carries, or the 400 that names what is wrong with it."""
    try:
        body = json.loads(inbound.body)
    except (UnicodeDecodeError, ValueError):
        return _bad("body", "is not JSON")
    if not isinstance(body, dict):
        return _bad("body", "must be a JSON object")
    kind = _text_field(body.get("type")) or _text_field(inbound.headers.get(EVENT_HEADER))
    if kind is None:
        return _bad("type", "is missing (nor is there an X-TaifaMail-Event header)")
    email_id = _text_field(body.get("email_id"))
    if email_id is None:
        return _bad("email_id", "is missing or not an id")
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        return _bad("data", "must be an object")
    # Without a delivery id, the body itself tells a delivery sent again.
    given = _text_field(inbound.headers.get(DELIVERY_HEADER))
    delivery_id = given or hashlib.sha256(inbound.body).hexdigest()
    return Report(kind, email_id, data or {}, Delivery(delivery_id, inbound.body))


def _metadata(data: dict[str, Any]) -> Any:
    """What Taifa said about the event: its `metadata` when it nests one, else the data;
    either without the fields that would name a person or carry the email's content (at
    every depth), and with long numbers masked."""
    said = data["metadata"] if isinstance(data.get("metadata"), dict) else data
    return scrubbed(said, drop=PERSONAL)


def _moment(data: dict[str, Any]) -> datetime | None:
    raw = data.get("created_at") or data.get("timestamp")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        return None


# -- applying -------------------------------------------------------------------------------


def receive(inbound: Inbound, tracker: Tracker, settings: Settings, now: float) -> InboundAnswer:
    secret = settings.taifa_webhook_secret
    if secret is None or not secret.get_secret_value():
        message = f"is not set: set {SECRET_VARIABLE} to the webhook's whsec_ secret"
        return InboundAnswer(503, {"error": {"field": SECRET_VARIABLE, "message": message}})
    header = inbound.headers.get(SIGNATURE_HEADER, "")
    if not header or not signed(inbound.body, header, secret.get_secret_value()):
        return InboundAnswer(401, {"error": {"field": "X-TaifaMail-Signature", "message": "does not match"}})
    report = parse(inbound)
    if isinstance(report, InboundAnswer):
        return report
    deliveries = Deliveries(tracker.ledger, PROVIDER)
    return apply(report, tracker, deliveries, now, suppress_on=settings.suppress_on)


def apply(
    report: Report, tracker: Tracker, deliveries: Deliveries, now: float, *, suppress_on: str = ""
) -> InboundAnswer:
    """Record what `report` says (once per delivery id and body), a hard bounce or a
    complaint putting its recipient on the suppression list as `suppress_on` asks; Redis
    errors propagate (no 2xx)."""
    if deliveries.seen(report.delivery):
        return InboundAnswer(200, {"duplicate": True})
    owner = tracker.owners([report.email_id])[0]
    if owner is None:
        return InboundAnswer(200, {"ignored": True})
    if tracker.ledger.field(owner[0], "status") == Status.SENDING:
        message = "is still being handed over: send the report again"
        return InboundAnswer(503, {"error": {"field": "email_id", "message": message}})
    suppressing.suppress(tracker, owner, report.kind, report.data, on=suppress_on, now=now)
    kind, status = tracking.meaning(report.kind)
    if kind is Meaning.FINISH and status is not None:
        why = tracking.reason(report.kind, _metadata(report.data))
        if owner[1]:
            tracking.finish_recipient(tracker, owner, report.email_id, status, why, now=now)
        else:
            tracking.finish_message(tracker, owner[0], status, why, now=now, via=VIA)
        deliveries.remember(report.delivery)  # only once the change is recorded
        return InboundAnswer(200, {"recorded": True})
    return _append(report, owner, deliveries, now)


def _append(report: Report, owner: tuple[str, str], deliveries: Deliveries, now: float) -> InboundAnswer:
    batch, recipient = owner
    entry = tracking.report(report.kind, _metadata(report.data), _moment(report.data), now, via=VIA)
    if recipient:
        entry["recipient"] = recipient  # a campaign recipient, by its fingerprint
    outcome = deliveries.append_event(report.delivery, batch, json.dumps(entry, default=str))
    if outcome is Appended.DUPLICATE:
        return InboundAnswer(200, {"duplicate": True})
    if outcome is Appended.MISSING:
        return InboundAnswer(200, {"ignored": True})
    return InboundAnswer(200, {"recorded": True})
