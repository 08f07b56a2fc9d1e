"""Taqnyat (api.taqnyat.sa): SMS over REST, email (`mailSend.php`) and voice (`voiceSend.php`).

What this module knows about Taqnyat's quirks (seeds 000-002, PROVIDERS.md):
- REST failures come as `{"statusCode":400,"message":"<code or text>","reason":"..."}`;
  401 `invalid credentials information` for a bad token.
- The form endpoints answer `{"ResponseStatus":"fail","Error":{"ErrorCode":N,...}}`, sometimes
  with HTTP 200/201: the body decides, not the status. Their documented replies are not
  valid JSON; the HTTP base salvages them.
- `accepted`/`rejected` are strings like "[966500000000,]"; `messageId` may exceed 32 bits;
  `cost` may be a string or a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from worker import validation
from worker.providers.errors import (
    AccountError,
    BalanceError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from worker.providers.http import (
    NO_SECRETS,
    ProviderClient,
    Redactor,
    Reply,
    first_text,
    join_words,
    plain,
    status_retry_error,
    unreadable_reply,
)
from worker.providers.results import (
    Balance,
    Sender,
    SendResult,
    SystemStatus,
    day_first_date,
    exact_id,
    list_like,
    mapping,
    money,
    text_or_none,
    whole_number,
)

PROVIDER = "taqnyat"

# Saudi Arabia keeps UTC+3 all year. The documented `scheduledDatetime` is `YYYY-MM-DDTHH:mm`
# without a zone; we send Riyadh time WITH its offset, right whether the offset is read or
# the time is taken as Riyadh local time.
RIYADH = timezone(timedelta(hours=3))

BALANCE_CODES = frozenset({2, 3})
ACCOUNT_CODES = frozenset({101, 102, 104})
INPUT_CODES = frozenset({14, 15, 16, 17})

# The provider's field behind each input code, per channel.
CODE_FIELDS: dict[str, dict[int, str]] = {
    "sms": {14: "sender", 15: "recipients", 17: "body"},
    "email": {14: "from", 15: "to", 16: "subject", 17: "msg"},
    "voice": {14: "callerId", 15: "recipients", 17: "audioUrl"},
}

# Words for a code when the reply carries none (seed tables).
CODE_WORDS: dict[int, str] = {
    2: "Your balance is 0",
    3: "Your balance is not enough",
    14: "Invalid sender",
    15: "Recipients are not specified or incorrect",
    16: "error subject",
    17: "error msg",
    101: "sending by API is disabled",
    102: "this ip Not authorized to using the API",
    104: "Invalid Bearer Tokens",
}

_REST_FIELDS = frozenset({"body", "sender", "recipients", "scheduledDatetime", "deleteId", "smsId"})
_RETRY_STATUSES = frozenset({408, 425, 429})
_ACCOUNT_STATUSES = frozenset({401, 403})


# --- mapping failures ----------------------------------------------------------------


def error_for_code(
    code: int, words: str | None, *, channel: str, http_status: int | None, raw: Any = None
) -> ProviderError:
    """The error of one of Taqnyat's numbered codes (2, 3, 14-17, 101, 102, 104)."""
    message = words or CODE_WORDS.get(code, f"error code {code}")
    details: dict[str, Any] = {"http_status": http_status, "code": code, "raw": raw}
    if code in BALANCE_CODES:
        return BalanceError(PROVIDER, message, **details)
    if code in ACCOUNT_CODES:
        return AccountError(PROVIDER, message, **details)
    field = CODE_FIELDS.get(channel, {}).get(code)
    return PermanentError(PROVIDER, message, field=field, **details)


def error_for_status(
    reply: Reply,
    words: str,
    *,
    safe: bool,
    field: str | None = None,
    status: int | None = None,
    raw: Any = None,
) -> ProviderError:
    """The error of an HTTP status without a numbered code."""
    status = status or reply.status
    details: dict[str, Any] = {"http_status": status, "raw": raw}
    if status in _ACCOUNT_STATUSES:
        return AccountError(PROVIDER, words, **details)
    if status >= 500 or status in _RETRY_STATUSES:
        return status_retry_error(PROVIDER, reply, words, safe=safe, raw=raw)
    return PermanentError(PROVIDER, words, field=field, **details)


def rest_failure(
    reply: Reply, *, channel: str = "sms", safe: bool = False, redact: Redactor = NO_SECRETS
) -> ProviderError | None:
    """The error of a REST reply (`/v1/...`, `/account/...`), or None for a success.

    `{"statusCode":400,"message":"15","reason":"..."}` carries a numbered code;
    `{"statusCode":400,"message":"body is required"}` carries words only. A `statusCode`
    of 400 or more inside a 2xx answer is a failure too.
    """
    data = mapping(reply.data)
    body_status = whole_number(data.get("statusCode"))
    failed_inside = reply.ok and body_status is not None and body_status >= 400
    if reply.ok and not failed_inside:
        return None
    status = body_status if failed_inside and body_status else reply.status
    message = first_text(data.get("message"))
    reason = first_text(data.get("reason"))
    raw = plain(reply.data)
    code = whole_number(message) if message and message.isdigit() else None
    if code is not None:
        words = redact(reason) if reason else None
        return error_for_code(code, words, channel=channel, http_status=status, raw=raw)
    words = redact(join_words([message or "", reason or ""]) or _no_words(reply))
    return error_for_status(reply, words, safe=safe, field=_field_named_in(message), status=status, raw=raw)


def form_failure(
    reply: Reply, *, channel: str, safe: bool = False, redact: Redactor = NO_SECRETS
) -> ProviderError | None:
    """The error of a `mailSend.php`/`voiceSend.php` reply, or None for a success.

    The body decides: `"ResponseStatus":"fail"` is a failure even under HTTP 200/201.
    """
    data = mapping(reply.data)
    verdict = str(data.get("ResponseStatus") or "").strip().lower()
    error = mapping(data.get("Error"))
    code = whole_number(error.get("ErrorCode"))
    if verdict == "success" or (not verdict and reply.ok and mapping(data.get("Data"))):
        return None
    if verdict == "fail" or code is not None:
        words = first_text(error.get("MessageEn"), error.get("MessageAr"))
        raw = plain(reply.data)
        if code is not None:
            return error_for_code(
                code, redact(words) if words else None, channel=channel, http_status=reply.status, raw=raw
            )
        status = reply.status if not reply.ok else 400
        return error_for_status(reply, redact(words or "send failed"), safe=safe, status=status, raw=raw)
    return rest_failure(reply, channel=channel, safe=safe, redact=redact) or unreadable_reply(
        PROVIDER, reply, safe=safe
    )


def _field_named_in(message: str | None) -> str | None:
    """`body is required` -> `body`; `deleteId not found` -> `deleteId`."""
    if not message:
        return None
    first = message.split()[0]
    return first if first in _REST_FIELDS else None


def _no_words(reply: Reply) -> str:
    return reply.summary() if reply.data is None else f"HTTP {reply.status}"


# --- reading successes ---------------------------------------------------------------


def parse_sms_sent(data: Any, recipients: Iterable[str] = ()) -> SendResult:
    """`{"messageId":5452899970123,"cost":0.026,"accepted":"[966500000000,]",...}`."""
    body = mapping(data)
    rejected = list_like(body.get("rejected"))
    if "accepted" in body:
        accepted = list_like(body.get("accepted"))
    else:
        accepted = tuple(r for r in recipients if r not in rejected)
    if not accepted and rejected:
        raise PermanentError(
            PROVIDER, "every recipient was rejected", code=15, field="recipients", raw=plain(data)
        )
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("messageId")),
        status="sent",
        cost=money(body.get("cost")),
        currency=text_or_none(body.get("currency")),
        accepted=accepted,
        rejected=rejected,
        raw=plain(body),
    )


def parse_form_sent(data: Any, recipients: Iterable[str] = ()) -> SendResult:
    """A `ResponseStatus: success` reply of mailSend.php or voiceSend.php."""
    body = mapping(data)
    details = mapping(body.get("Data"))
    rejected = list_like(details.get("rejectedNumber"))
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("messageId")) or exact_id(details.get("msgId")),
        status="sent",
        cost=money(details.get("price")),
        currency=text_or_none(details.get("currency") or body.get("currency")),
        accepted=tuple(r for r in recipients if r not in rejected),
        rejected=rejected,
        raw=plain(body),
    )


def parse_balance(data: Any) -> Balance:
    """`{"balance":"2044.000","currency":"SAR","accountExpiryDate":"23-08-2031",...}`."""
    body = mapping(data)
    amount = money(body.get("balance"))
    if amount is None:
        raise RetryableError(PROVIDER, "balance reply without a readable balance", raw=plain(data))
    return Balance(
        provider=PROVIDER,
        balance=amount,
        currency=text_or_none(body.get("currency")),
        account_status=text_or_none(body.get("accountStatus")),
        expires_on=day_first_date(body.get("accountExpiryDate")),
        points=money(body.get("points")),
        raw=plain(body),
    )


def parse_senders(data: Any) -> tuple[Sender, ...]:
    body = mapping(data)
    items = body.get("senders") if body else data
    senders = []
    for item in items if isinstance(items, list) else []:
        entry = mapping(item)
        name = text_or_none(entry.get("senderName") or entry.get("name"))
        if name:
            senders.append(
                Sender(name, text_or_none(entry.get("status")), text_or_none(entry.get("destination")))
            )
    return tuple(senders)


def parse_system_status(data: Any) -> SystemStatus:
    """`{"status":{"service":"none","description":"All Services are Operational"}}`."""
    body = mapping(data)
    status = mapping(body.get("status"))
    service = (text_or_none(status.get("service")) or "none").lower()
    services = () if service == "none" else tuple(s.strip() for s in service.split(",") if s.strip())
    return SystemStatus(
        operational=not services,
        services=services,
        description=text_or_none(status.get("description")),
        raw=plain(body),
    )


def schedule_text(moment: datetime) -> str:
    """`scheduledDatetime` in Riyadh time, to the minute, rounded up (never early)."""
    local = moment.astimezone(RIYADH)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return local.strftime("%Y-%m-%dT%H:%M") + "+03:00"


# --- the client ----------------------------------------------------------------------


class TaqnyatClient(ProviderClient):
    """Taqnyat's SMS, email and voice API. Checks input before any request."""

    provider = PROVIDER
    base_url_setting = "taqnyat_base_url"
    secret_setting = "taqnyat_token"

    # -- SMS -------------------------------------------------------------------------

    def send_sms(
        self,
        recipients: Iterable[str],
        body: str,
        sender: str,
        *,
        scheduled_at: datetime | str | None = None,
        delete_id: str | None = None,
        sms_id: str | None = None,
    ) -> SendResult:
        """POST /v1/messages. A scheduled SMS is charged now and deletable by `delete_id`."""
        numbers = validation.recipients(recipients, "recipients", validation.msisdn)
        payload: dict[str, Any] = {
            "recipients": numbers,
            "body": validation.text(body, "body", max_len=validation.MAX_SMS_BODY),
            "sender": validation.sender_name(sender, "sender"),
        }
        if scheduled_at is not None:
            moment = validation.future_instant(scheduled_at, "scheduled_at")
            payload["scheduledDatetime"] = schedule_text(moment)
        if delete_id is not None:
            payload["deleteId"] = _key(delete_id, "delete_id")
        if sms_id is not None:
            payload["smsId"] = _key(sms_id, "sms_id")
        reply = self.http.request("POST", "/v1/messages", safe=False, json_body=payload)
        self._raise_rest(reply, channel="sms", safe=False)
        if not isinstance(reply.data, Mapping):
            raise unreadable_reply(PROVIDER, reply, safe=False)
        return parse_sms_sent(reply.data, numbers)

    def delete_scheduled_sms(self, delete_id: str) -> None:
        """DELETE /v1/messages/delete?deleteId=... : cancels (and refunds) a scheduled SMS."""
        key = _key(delete_id, "delete_id")
        reply = self.http.request("DELETE", "/v1/messages/delete", safe=False, params={"deleteId": key})
        self._raise_rest(reply, channel="sms", safe=False)

    # -- account ---------------------------------------------------------------------

    def balance(self) -> Balance:
        """GET /account/balance."""
        return parse_balance(self._read("/account/balance"))

    def senders(self) -> tuple[Sender, ...]:
        """GET /v1/messages/senders (answered 200, sometimes 201)."""
        return parse_senders(self._read("/v1/messages/senders"))

    def system_status(self) -> SystemStatus:
        """GET /system/status (no authentication)."""
        return parse_system_status(self._read("/system/status", auth=False))

    # -- email and voice -------------------------------------------------------------

    def send_email(
        self,
        to: Iterable[str],
        subject: str,
        body: str,
        *,
        sender_email: str,
        campaign_name: str,
        html: bool = False,
    ) -> SendResult:
        """POST mailSend.php. `msg` carries text or HTML alike; `html` only states which."""
        addresses = validation.recipients(to, "to", validation.email)
        limit = validation.MAX_EMAIL_BODY
        payload = {
            "bearerTokens": self._secret,
            "campaignName": validation.text(campaign_name, "campaign_name", max_len=100, single_line=True),
            "subject": validation.text(subject, "subject", max_len=validation.MAX_SUBJECT, single_line=True),
            "from": validation.email(sender_email, "sender_email"),
            "to": addresses,
            "msg": validation.text(body, "body", max_len=limit),
        }
        return self._send_form("/mailSend.php", payload, channel="email", recipients=addresses)

    def send_voice(self, recipients: Iterable[str], audio_url: str, caller_id: str) -> SendResult:
        """POST voiceSend.php: plays `audio_url` (mp3/wav) to each recipient."""
        numbers = validation.recipients(recipients, "recipients", validation.msisdn)
        payload = {
            "bearerTokens": self._secret,
            "audioUrl": validation.url(audio_url, "audio_url"),
            "callerId": validation.msisdn(caller_id, "caller_id"),
            "recipients": numbers,
        }
        return self._send_form("/voiceSend.php", payload, channel="voice", recipients=numbers)

    # -- plumbing --------------------------------------------------------------------

    def _read(self, path: str, *, auth: bool = True) -> Mapping[str, Any]:
        reply = self.http.request("GET", path, safe=True, auth=auth)
        self._raise_rest(reply, channel="account", safe=True)
        if not isinstance(reply.data, Mapping):
            raise unreadable_reply(PROVIDER, reply, safe=True)
        return reply.data

    def _raise_rest(self, reply: Reply, *, channel: str, safe: bool) -> None:
        failure = rest_failure(reply, channel=channel, safe=safe, redact=self.http.redact)
        if failure is not None:
            raise failure

    def _send_form(
        self, path: str, payload: dict[str, Any], *, channel: str, recipients: list[str]
    ) -> SendResult:
        reply = self.http.request("POST", path, safe=False, json_body=payload)
        failure = form_failure(reply, channel=channel, safe=False, redact=self.http.redact)
        if failure is not None:
            raise failure
        return parse_form_sent(reply.data, recipients)


def _key(value: Any, field: str) -> str:
    """A caller's own key (deleteId, smsId): short single-line text or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return validation.text(value, field, max_len=100, single_line=True).strip()
