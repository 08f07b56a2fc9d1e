"""Turn the fields of a send (from the CLI, the Python API or a task) into a checked request.

Every check happens here, before anything is recorded: a bad field raises `InvalidInput`
naming it. The result carries the payload the worker will hand to the provider.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hudhud.config.settings import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.status import Lane
from hudhud.worker.producer import targets
from hudhud.worker.producer import validation as v
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Provider

CHANNELS = ("sms", "email", "voice")
EMAIL_PROVIDERS = registry.Serving("email")
MAX_AHEAD = timedelta(days=366)

_COMMON = {"to", "at", "key", "reference", "callback_url", "lane", "ttl", "expires_at"}
MAX_TTL = MAX_AHEAD.total_seconds()
SMS_FIELDS = _COMMON | {"body", "sender"}
VOICE_FIELDS = _COMMON | {"audio_url", "caller_id"}
EMAIL_FIELDS = _COMMON | {
    "subject",
    "text",
    "html",
    "from",
    "from_",
    "provider",
    "cc",
    "bcc",
    "reply_to",
    "tags",
    "tag",
    "headers",
    "header",
    "attachments",
    "campaign",
}


@dataclass(frozen=True)
class SendRequest:
    """A checked send: channel, provider, what the provider needs, and when."""

    channel: str
    provider: str
    payload: dict[str, Any]
    due: datetime | None = None
    key: str | None = None
    reference: str | None = None  # the producer's own id, echoed in status and callbacks
    callback_url: str | None = None  # where this message's status callbacks go
    lane: Lane = Lane.TRANSACTIONAL
    expires: datetime | None = None  # not handed over by then: it ends `expired`
    expiry: str | None = None  # the expiry as given (`ttl=30`, or the ISO time), for the hash
    pinned: bool = False  # its provider was named: email failover never moves it

    @property
    def request_hash(self) -> str:
        """Identifies the request for idempotency: same fields, same hash."""
        canonical = json.dumps(
            {
                "channel": self.channel,
                "provider": self.provider,
                "payload": self.payload,
                "due": self.due.isoformat() if self.due else None,
                **({"reference": self.reference} if self.reference else {}),
                **({"callback_url": self.callback_url} if self.callback_url else {}),
                **({"lane": self.lane} if self.lane != Lane.TRANSACTIONAL else {}),
                **({"expiry": self.expiry} if self.expiry else {}),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _known(fields: Mapping[str, Any], allowed: set[str]) -> None:
    for index, name in enumerate(fields):
        if name not in allowed:
            shown = v.field_name(name)
            if shown is None:
                raise InvalidInput("fields", f"field {index + 1} has a name that is not a known field")
            raise InvalidInput(shown, "is not a known field")


def _given(value: Any) -> bool:
    """Whether an optional field was given: None, "" and [] mean "not given"."""
    return not (value is None or (isinstance(value, str | list | tuple) and len(value) == 0))


def _present(fields: Mapping[str, Any], name: str) -> Any:
    value = fields.get(name)
    if not _given(value):
        raise InvalidInput(name, "is required")
    return value


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _due(fields: Mapping[str, Any], now: datetime) -> datetime | None:
    if not _given(fields.get("at")):
        return None
    moment = v.future_instant(fields["at"], "at", now=now, max_ahead=MAX_AHEAD)
    return moment if moment > now else None


def _key(fields: Mapping[str, Any]) -> str | None:
    key = fields.get("key")
    if not _given(key):
        return None
    return v.text(key, "key", max_len=200, single_line=True)


def _default(value: Any, setting: str | None, field: str, variable: str) -> Any:
    if _given(value):
        return value
    if setting:
        return setting
    raise InvalidInput(field, f"is required (not given, and {variable} is not set)")


def _routed(channel: str, settings: Settings) -> type[Provider]:
    """The provider a send on `channel` goes to (its setting names a registered one)."""
    return registry.get(registry.for_channel(channel, settings))


def _sender(provider: type[Provider], channel: str, given: Any, settings: Settings, field: str) -> Any:
    configured, variable = provider.default_sender(channel, settings)
    return _default(given, configured, field, variable)


def _reference(fields: Mapping[str, Any]) -> str | None:
    if not _given(fields.get("reference")):
        return None
    return v.text(fields["reference"], "reference", max_len=200, single_line=True)


def _callback_url(fields: Mapping[str, Any], settings: Settings) -> str | None:
    if not _given(fields.get("callback_url")):
        return None
    return targets.callback_url(fields["callback_url"], "callback_url", settings)


def _lane(fields: Mapping[str, Any]) -> Lane:
    value = fields.get("lane")
    if not _given(value):
        return Lane.TRANSACTIONAL
    if value not in (Lane.TRANSACTIONAL, Lane.BULK):
        raise InvalidInput("lane", "must be transactional or bulk")
    return Lane(value)


def _ttl(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput("ttl", "must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidInput("ttl", "must be a number of seconds") from None
    if not seconds > 0 or seconds > MAX_TTL:
        raise InvalidInput("ttl", f"must be more than 0 and at most {int(MAX_TTL)} seconds")
    return seconds


def _expiry(
    fields: Mapping[str, Any], due: datetime | None, lane: Lane, now: datetime, settings: Settings
) -> tuple[datetime | None, str | None]:
    """When the message expires, and the expiry as given (None: a lane's default or none).
    `ttl` counts from the due time (`at`, or now)."""
    start = due or now
    if _given(fields.get("ttl")) and _given(fields.get("expires_at")):
        raise InvalidInput("expires_at", "give expires_at or ttl, not both")
    if _given(fields.get("ttl")):
        seconds = _ttl(fields["ttl"])
        return start + timedelta(seconds=seconds), f"ttl={seconds!r}"
    if _given(fields.get("expires_at")):
        moment = v.future_instant(fields["expires_at"], "expires_at", now=now, max_ahead=MAX_AHEAD * 2)
        if moment <= start:
            raise InvalidInput("expires_at", "must be after the send's time (at)")
        return moment, moment.isoformat()
    default = settings.ttl_bulk if lane == Lane.BULK else settings.ttl_transactional
    return (start + timedelta(seconds=default) if default > 0 else None), None


def _request(
    channel: str,
    provider: type[Provider],
    payload: dict[str, Any],
    fields: Mapping[str, Any],
    now: datetime,
    settings: Settings,
) -> SendRequest:
    due = _due(fields, now)
    lane = _lane(fields)
    expires, expiry = _expiry(fields, due, lane, now, settings)
    return SendRequest(
        channel,
        provider.name,
        payload,
        due,
        _key(fields),
        reference=_reference(fields),
        callback_url=_callback_url(fields, settings),
        lane=lane,
        expires=expires,
        expiry=expiry,
    )


def _phones(
    channel: str, fields: Mapping[str, Any], allowed: set[str], settings: Settings
) -> tuple[type[Provider], list[str]]:
    """The provider of a send to phone numbers, and its checked recipients (one call's worth)."""
    _known(fields, allowed)
    provider = _routed(channel, settings)
    recipients = v.recipients(_listify(_present(fields, "to")), "to", v.msisdn)
    _within_one_send({"to": recipients}, *provider.batch_limit(settings))
    return provider, recipients


def sms(fields: Mapping[str, Any], settings: Settings, now: datetime | None = None) -> SendRequest:
    provider, recipients = _phones("sms", fields, SMS_FIELDS, settings)
    body = v.text(_present(fields, "body"), "body", max_len=v.MAX_SMS_BODY)
    sender = v.sender_name(_sender(provider, "sms", fields.get("sender"), settings, "sender"), "sender")
    payload = {"to": recipients, "body": body, "sender": sender}
    return _request("sms", provider, payload, fields, now or datetime.now(UTC), settings)


def voice(fields: Mapping[str, Any], settings: Settings, now: datetime | None = None) -> SendRequest:
    provider, recipients = _phones("voice", fields, VOICE_FIELDS, settings)
    audio = v.url(_present(fields, "audio_url"), "audio_url")
    caller = v.msisdn(_sender(provider, "voice", fields.get("caller_id"), settings, "caller_id"), "caller_id")
    payload = {"to": recipients, "audio_url": audio, "caller_id": caller}
    return _request("voice", provider, payload, fields, now or datetime.now(UTC), settings)


def _header_pairs(fields: Mapping[str, Any]) -> dict[str, str]:
    """`header` (a list of NAME=VALUE, as the CLI gives them) and `headers` (an object)
    together: a name given twice, in either, is refused."""
    given: list[tuple[Any, Any]] = []
    pairs = _listify(fields.get("header")) if _given(fields.get("header")) else []
    if isinstance(pairs, bytes | Mapping) or not isinstance(pairs, Iterable):
        raise InvalidInput("header", "must be a list of NAME=VALUE")
    for index, item in enumerate(pairs):
        if not isinstance(item, str) or "=" not in item:
            raise InvalidInput(f"header[{index}]", "must be NAME=VALUE")
        name, _, value = item.partition("=")
        given.append((name.strip(), value))
    if fields.get("headers") is not None:
        if not isinstance(fields["headers"], Mapping):
            raise InvalidInput("headers", "must be an object of name: value")
        given += list(fields["headers"].items())
    return v.header_pairs(given, "headers")


def _within_one_send(lists: Mapping[str, list[str]], limit: int, variable: str) -> None:
    """One send is one provider call: more recipients than its batch size take a campaign."""
    count = 0
    for name, recipients in lists.items():
        count += len(recipients)
        if count > limit:
            together = "" if count == len(recipients) else f" ({' + '.join(lists)} together)"
            raise InvalidInput(
                name,
                f"has {count} recipients{together}, more than one send takes ({variable}={limit}): "
                "send to many recipients as a campaign (send_campaign)",
            )


def email(fields: Mapping[str, Any], settings: Settings, now: datetime | None = None) -> SendRequest:
    current = now or datetime.now(UTC)
    _known(fields, EMAIL_FIELDS)
    name = fields["provider"] if _given(fields.get("provider")) else settings.email_provider
    if name not in EMAIL_PROVIDERS:
        raise InvalidInput("provider", f"must be {' or '.join(EMAIL_PROVIDERS)}")
    provider = registry.get(name)
    to = v.recipients(_listify(_present(fields, "to")), "to", v.email)
    subject = v.text(_present(fields, "subject"), "subject", max_len=v.MAX_SUBJECT, single_line=True)
    text_body, html_body = fields.get("text"), fields.get("html")
    if not _given(text_body) and not _given(html_body):
        raise InvalidInput("text", "one of text or html is required")
    payload: dict[str, Any] = {"to": to, "subject": subject}
    if _given(text_body):
        payload["text"] = v.text(text_body, "text", max_len=v.MAX_EMAIL_BODY)
    if _given(html_body):
        payload["html"] = v.text(html_body, "html", max_len=v.MAX_EMAIL_BODY)
    sender = fields.get("from") if _given(fields.get("from")) else fields.get("from_")
    payload["from"] = v.email(_sender(provider, "email", sender, settings, "from"), "from")
    if _given(fields.get("campaign")):
        payload["campaign"] = v.text(fields["campaign"], "campaign", max_len=100, single_line=True)
    tags = fields.get("tags") if _given(fields.get("tags")) else fields.get("tag")
    cc = v.recipients(_listify(fields["cc"]), "cc", v.email) if _given(fields.get("cc")) else []
    bcc = v.recipients(_listify(fields["bcc"]), "bcc", v.email) if _given(fields.get("bcc")) else []
    extras = {
        "cc": cc,
        "bcc": bcc,
        "reply_to": v.email(fields["reply_to"], "reply_to") if _given(fields.get("reply_to")) else None,
        "headers": _header_pairs(fields),
        "tags": v.own_tags(_listify(tags), "tags"),
        "attachments": v.attachments(fields.get("attachments"), "attachments"),
    }
    for field, value in extras.items():
        if not value:
            continue
        if field in provider.unsupported_fields("email"):
            raise InvalidInput(field, f"is not supported by the {provider.name} email provider")
        payload[field] = value
    _within_one_send({"to": to, "cc": cc, "bcc": bcc}, *provider.batch_limit(settings))
    request = _request("email", provider, payload, fields, current, settings)
    return replace(request, pinned=True) if _given(fields.get("provider")) else request


BUILDERS = {"sms": sms, "email": email, "voice": voice}


def build(
    channel: str, fields: Mapping[str, Any], settings: Settings, now: datetime | None = None
) -> SendRequest:
    """Check the fields of a send on `channel`."""
    if channel not in BUILDERS:
        raise InvalidInput("channel", "must be sms, email or voice")
    if not isinstance(fields, Mapping):
        raise InvalidInput("fields", "must be an object")
    return BUILDERS[channel](fields, settings, now)


def build_many(
    channel: str, items: Iterable[Mapping[str, Any]], settings: Settings, now: datetime | None = None
) -> list[SendRequest]:
    """Check every item of a bulk send (None values mean "not given"); the first bad item
    raises `InvalidInput` naming it, e.g. `items[3].to[0]`, so nothing of the batch is recorded."""
    if channel not in BUILDERS:
        raise InvalidInput("channel", "must be sms, email or voice")
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise InvalidInput("items", "must be a list of objects")
    current = now or datetime.now(UTC)
    requests: list[SendRequest] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"items[{index}]", "must be an object")
        fields = {name: value for name, value in item.items() if value is not None}
        try:
            requests.append(BUILDERS[channel](fields, settings, current))
        except InvalidInput as exc:
            raise InvalidInput(f"items[{index}].{exc.field}", exc.message) from None
    return requests
