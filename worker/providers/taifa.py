"""Taifa Mail (govconnect.ke/v1): a FastAPI-style REST API for email (seed 004).

What this module knows about Taifa's quirks:
- `POST /v1/emails/` needs its trailing slash (without it: a 307 to the slash path).
- Errors are `{"detail": {"code", "message"}}`, `{"detail": "..."}`, or FastAPI's 422
  `{"detail": [{"loc": ["body", "to", 0, "email"], "msg": "..."}]}`.
- 403 means a plan feature gate or the send limit: the account is at fault, not the message.
  So do an invalid API key, a suspended account, a reached quota or plan limit and 402
  (payment required, taken as a spent balance) under any status, and a 202 `rejected` for
  such a reason: they hold messages, never end them.
- A 202 may still carry `status: "rejected"` (suppression list): that is an answer, not an error.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from hudhud.worker import validation
from hudhud.worker.errors import InvalidInput
from hudhud.worker.providers.errors import AccountError, BalanceError, PermanentError, ProviderError
from hudhud.worker.providers.http import (
    NO_SECRETS,
    ProviderClient,
    Redactor,
    Reply,
    first_text,
    plain,
    status_retry_error,
    unreadable_reply,
)
from hudhud.worker.providers.results import (
    BatchResult,
    EmailStatus,
    Page,
    SendResult,
    TaifaEmail,
    TaifaEvent,
    Updates,
    Validation,
    ValidationIssue,
    exact_id,
    mapping,
    text_or_none,
    timestamp,
    whole_number,
)

PROVIDER = "taifa"

SEND_AT_MIN_AHEAD = timedelta(minutes=1)
SEND_AT_MAX_AHEAD = timedelta(days=30)
MAX_PAGE_LIMIT = 100

Address = str | Mapping[str, Any]

# The request field behind an error code that names none.
CODE_FIELDS = {
    "invalid_attachment": "attachments",
    "payload_too_large": "attachments",
    "invalid_send_at": "send_at",
}
_RETRY_STATUSES = frozenset({408, 425, 429})
_ACCOUNT_STATUSES = frozenset({401, 403})
_PAYMENT_STATUSES = frozenset({402})
_LOC_ROOTS = frozenset({"body", "query", "path", "header"})
_ECHOING_KEYS = frozenset({"input", "ctx"})  # FastAPI echoes the offending value there
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


# --- mapping failures ----------------------------------------------------------------


def loc_field(loc: Any) -> str | None:
    """FastAPI's `["body", "to", 0, "email"]` as `to[0].email`."""
    if not isinstance(loc, list | tuple):
        return None
    parts = builtins.list(loc)
    if parts and parts[0] in _LOC_ROOTS:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def read_detail(detail: Any) -> tuple[str | None, str | None, str | None]:
    """(code, words, field) of an error `detail`, whichever of its three shapes it has."""
    if isinstance(detail, str):
        return None, detail.strip() or None, None
    if isinstance(detail, Mapping):
        code = text_or_none(detail.get("code"))
        words = first_text(detail.get("message"), detail.get("msg"))
        field = loc_field(detail.get("loc")) or text_or_none(detail.get("field"))
        return code, words, field or CODE_FIELDS.get(code or "")
    if isinstance(detail, list) and detail:
        items = [mapping(item) for item in detail]
        fields = [loc_field(item.get("loc")) for item in items]
        texts = [first_text(item.get("msg"), item.get("message")) or "invalid" for item in items]
        if len(items) == 1:
            words = texts[0]
        else:
            words = "; ".join(f"{f}: {t}" if f else t for f, t in zip(fields, texts, strict=True))
        return text_or_none(items[0].get("type")), words, fields[0]
    return None, None, None


def scrubbed(value: Any) -> Any:
    """A reply without the values FastAPI echoes back (they may be recipients)."""
    if isinstance(value, Mapping):
        return {k: scrubbed(v) for k, v in value.items() if k not in _ECHOING_KEYS}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


_QUALIFIED_LIMIT = (
    r"(?:send|sending|daily|monthly|hourly|weekly|plan|account|usage|email|emails|message|messages)"
    r" (?:limit|quota)"
)
_BALANCE_WORDS = re.compile(
    r"\bpayment required\b|\bbilling\b|\bpayment (?:failed|overdue|past due|declined|missing)\b"
    r"|\b(?:insufficient|not enough|no|out of) (?:\w+ )?(?:credits?|balance|funds)\b"
    r"|\b(?:credits?|balance|funds)\b(?: \w+){0,2}? (?:exhausted|depleted|insufficient|too low|used up)\b"
    r"|\b(?:unpaid|overdue) (?:invoice|bill|balance)\b"
)
# A batch over the plan's size is this request's fault: split it, nothing to hold.
_BATCH_SIZE_WORDS = re.compile(r"\bbatch\b.*\b(?:larger|too large|too big|too many|size|over|exceeds?)\b")
_ACCOUNT_WORDS = re.compile(
    r"\b(?:invalid|incorrect|wrong|unknown|expired|revoked|missing|bad|no) (?:\w+ )?api ?keys?\b"
    r"|\bapi ?keys?\b(?: \w+){0,2}? (?:invalid|incorrect|wrong|expired|revoked|missing|disabled|not found)\b"
    r"|\b(?:unauthori[sz]ed|unauthenticated|not authenticated|forbidden|access denied|permission denied)\b"
    r"|\b(?:account|user|subscription|organi[sz]ation|workspace|domain|sender)\b(?: \w+){0,3}?"
    r" (?:is |has been |was )?(?:suspended|disabled|inactive|deactivated|blocked|banned|locked|closed"
    r"|terminated|frozen|expired|on hold)\b"
    r"|\b(?:suspended|disabled|inactive|deactivated|blocked|banned|locked|closed) (?:\w+ )?account\b"
    r"|\bquotas?\b(?: \w+){0,3}? (?:is |has been )?(?:reached|exceeded|exhausted|used up|hit)\b"
    r"|\b(?:over|exceeded|exceeds|reached|hit) (?:the |your |its )?(?:\w+ )?quotas?\b"
    rf"|\b{_QUALIFIED_LIMIT}\b(?: \w+){{0,4}}? (?:is |has been )?(?:reached|exceeded|exhausted|hit)\b"
    rf"|\b(?:over|exceeded|exceeds|reached|hit) (?:the |your |its )?(?:\w+ )?{_QUALIFIED_LIMIT}\b"
    r"|\blimit of (?:this|your|the) account\b"
    r"|\bplan feature\b|\bpaid plan\b|\bupgrade (?:your |the )?(?:\w+ )?plan\b"
    r"|\bnot (?:available|included|allowed|supported) (?:on|in|with) (?:the |your )?(?:\w+ )?plan\b"
    r"|\bplan (?:does not|doesn t) (?:allow|include|support)\b"
)


def plain_words(text: str) -> str:
    """Taifa's words or code for matching: `send_limit_reached` -> `send limit reached`."""
    return " ".join(re.sub(r"[\W_]+", " ", text[:500].casefold()).split())


def account_fault(code: str | None, words: str | None, status: int) -> type[ProviderError] | None:
    """BalanceError or AccountError when the status, the code or the words name a fault of
    the account (key, suspension, quota, plan, payment), whatever the status; else None."""
    said = plain_words(" ".join(part for part in (code, words) if part))
    if status in _PAYMENT_STATUSES or _BALANCE_WORDS.search(said):
        return BalanceError
    if status in _ACCOUNT_STATUSES:
        return AccountError
    if _BATCH_SIZE_WORDS.search(said):
        return None
    return AccountError if _ACCOUNT_WORDS.search(said) else None


def taifa_failure(reply: Reply, *, safe: bool = False, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a Taifa reply, or None for a 2xx."""
    if reply.ok:
        return None
    data = mapping(reply.data)
    code, words, field = read_detail(data.get("detail") if data else None)
    said = words or first_text(data.get("message"), data.get("error"))
    text = redact(said or _no_words(reply))
    raw = plain(scrubbed(reply.data))
    held = account_fault(code, said, reply.status)
    if held is not None:
        return held(PROVIDER, text, http_status=reply.status, code=code, raw=raw)
    if reply.status >= 500 or reply.status in _RETRY_STATUSES:
        return status_retry_error(PROVIDER, reply, text, safe=safe, code=code, raw=raw)
    return PermanentError(PROVIDER, text, http_status=reply.status, code=code, field=field, raw=raw)


def _no_words(reply: Reply) -> str:
    return reply.summary() if reply.data is None else f"HTTP {reply.status}"


def refused_send(result: SendResult, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a send answered 202 `rejected` for an account reason (a reached send
    limit, a suspended account): nothing was sent, and no other message would be either."""
    if result.status not in ("rejected", "failed"):
        return None
    held = account_fault(None, result.rejection_reason, 202)
    if held is None:
        return None
    return held(PROVIDER, redact(result.rejection_reason or result.status), raw=plain(scrubbed(result.raw)))


def refused_batch(result: BatchResult, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a batch of which Taifa accepted nothing, an item refused for an account
    reason among them: the whole batch can be held and sent again."""
    if not result.results or any(item.status not in ("rejected", "failed") for item in result.results):
        return None
    return next(filter(None, (refused_send(item, redact) for item in result.results)), None)


# --- reading successes ---------------------------------------------------------------


def parse_send(data: Any) -> SendResult:
    """`{"id","status","message_id","rejection_reason"}` (also a batch or retry item)."""
    body = mapping(data)
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("id")),
        status=text_or_none(body.get("status")) or "queued",
        rejection_reason=text_or_none(body.get("rejection_reason")),
        raw=plain(body),
    )


def parse_event(data: Any) -> TaifaEvent:
    body = mapping(data)
    return TaifaEvent(
        id=exact_id(body.get("id")),
        event_type=text_or_none(body.get("event_type") or body.get("type")) or "unknown",
        metadata=dict(plain(mapping(body.get("metadata")))),
        created_at=timestamp(body.get("created_at")),
    )


def parse_events(data: Any) -> tuple[TaifaEvent, ...]:
    """A bare list of events, or `{"events": [...]}`."""
    items = data if isinstance(data, list) else mapping(data).get("events")
    return tuple(parse_event(e) for e in items) if isinstance(items, list) else ()


def parse_email(data: Any) -> TaifaEmail:
    body = mapping(data)
    headers = mapping(body.get("headers"))
    return TaifaEmail(
        id=exact_id(body.get("id")) or "",
        status=text_or_none(body.get("status")) or "unknown",
        subject=text_or_none(body.get("subject")),
        from_address=_address_text(body.get("from_address") or body.get("from_")),
        to_addresses=tuple(a for a in map(_address_text, _as_list(body.get("to_addresses"))) if a),
        tags=tuple(str(t) for t in _as_list(body.get("tags"))),
        scheduled_at=timestamp(body.get("scheduled_at")),
        created_at=timestamp(body.get("created_at")),
        sent_at=timestamp(body.get("sent_at")),
        delivered_at=timestamp(body.get("delivered_at")),
        retry_of_id=exact_id(body.get("retry_of_id")),
        html=body.get("html") if isinstance(body.get("html"), str) else None,
        text=body.get("text") if isinstance(body.get("text"), str) else None,
        headers={str(k): str(v) for k, v in headers.items()},
        events=parse_events(body.get("events")),
        raw=plain(body),
    )


def parse_page(data: Any, read: Any, *, page: int, limit: int) -> Page[Any]:
    """`{"items": [...], "total", "page", "limit"}` (or `results` / `data` for `items`)."""
    body = mapping(data)
    items = next(
        (body[k] for k in ("items", "results", "data") if isinstance(body.get(k), list)),
        data if isinstance(data, list) else [],
    )
    parsed = tuple(read(item) for item in items)
    return Page(
        items=parsed,
        total=_int_or(body.get("total"), len(parsed)),
        page=_int_or(body.get("page"), page),
        limit=_int_or(body.get("limit"), limit),
    )


def parse_status(data: Any) -> EmailStatus:
    body = mapping(data)
    return EmailStatus(
        id=exact_id(body.get("id")) or "",
        status=text_or_none(body.get("status")) or "unknown",
        updated_at=timestamp(body.get("updated_at")),
    )


def parse_updates(data: Any) -> Updates:
    body = mapping(data)
    return Updates(
        items=tuple(parse_status(i) for i in _as_list(body.get("items"))),
        next_since=text_or_none(body.get("next_since")),
    )


def parse_batch(data: Any) -> BatchResult:
    body = mapping(data)
    results = tuple(parse_send(r) for r in _as_list(body.get("results")))
    sent = sum(1 for r in results if r.status not in ("failed", "rejected"))
    return BatchResult(
        total=_int_or(body.get("total"), len(results)),
        sent=_int_or(body.get("sent"), sent),
        failed=_int_or(body.get("failed"), len(results) - sent),
        results=results,
    )


def parse_validation(data: Any) -> Validation:
    body = mapping(data)
    issues = tuple(
        ValidationIssue(
            text_or_none(mapping(i).get("field")),
            text_or_none(mapping(i).get("error") or mapping(i).get("message")) or "invalid",
        )
        for i in _as_list(body.get("issues"))
    )
    valid = body.get("valid") is True
    return Validation(valid=valid, can_send=body.get("can_send", valid) is True, issues=issues)


def _as_list(value: Any) -> builtins.list[Any]:
    return value if isinstance(value, list) else []


def _int_or(value: Any, default: int) -> int:
    number = whole_number(value)
    return default if number is None else number


def _address_text(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return text_or_none(value.get("email"))
    return text_or_none(value)


# --- building requests ---------------------------------------------------------------


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


# --- the client ----------------------------------------------------------------------


class TaifaClient(ProviderClient):
    """Taifa Mail's REST API. Checks input before any request."""

    provider = PROVIDER
    base_url_setting = "taifa_base_url"
    secret_setting = "taifa_api_key"

    # -- sending ---------------------------------------------------------------------

    def send(
        self,
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
    ) -> SendResult:
        """POST /emails/. Answers Taifa's status: queued, scheduled, or rejected (with reason).

        Addresses are "a@b.c" strings or {"email", "name"} objects. `send_at` must be between
        1 minute and 30 days ahead; at least one of `html` and `text` is required.
        """
        payload = email_payload(
            from_,
            to,
            subject,
            html=html,
            text=text,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            headers=headers,
            tags=tags,
            send_at=send_at,
            attachments=attachments,
        )
        return self._accepted(parse_send(self._call("POST", "/emails/", safe=False, json_body=payload)))

    def validate(
        self,
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
    ) -> Validation:
        """POST /emails/validate: a dry run of `send` with the same arguments."""
        payload = email_payload(
            from_,
            to,
            subject,
            html=html,
            text=text,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            headers=headers,
            tags=tags,
            send_at=send_at,
            attachments=attachments,
        )
        return parse_validation(self._call("POST", "/emails/validate", safe=True, json_body=payload))

    def batch_send(self, messages: Iterable[Mapping[str, Any]]) -> BatchResult:
        """POST /emails/batch. An item Taifa refuses comes back with status "failed"."""
        payload = batch_payload(messages)
        result = parse_batch(self._call("POST", "/emails/batch", safe=False, json_body=payload))
        refusal = refused_batch(result, self.http.redact)
        if refusal is not None:
            raise refusal
        return result

    def retry(self, id: str) -> SendResult:
        """POST /emails/{id}/retry: a new email for a bounced, rejected or failed one."""
        return self._accepted(parse_send(self._call("POST", f"/emails/{email_id(id)}/retry", safe=False)))

    # -- scheduled -------------------------------------------------------------------

    def scheduled(self, page: int = 0, limit: int = 20) -> Page[TaifaEmail]:
        """GET /emails/scheduled."""
        params = page_params(page, limit)
        data = self._call("GET", "/emails/scheduled", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    def cancel_scheduled(self, id: str) -> EmailStatus:
        """DELETE /emails/scheduled/{id}."""
        data = self._call("DELETE", f"/emails/scheduled/{email_id(id)}", safe=False)
        return parse_status(data)

    def send_now(self, id: str) -> EmailStatus:
        """POST /emails/scheduled/{id}/send-now."""
        data = self._call("POST", f"/emails/scheduled/{email_id(id)}/send-now", safe=False)
        return parse_status(data)

    # -- reading ---------------------------------------------------------------------

    def get(self, id: str) -> TaifaEmail:
        """GET /emails/{id}: the email with its bodies, headers and events."""
        return parse_email(self._call("GET", f"/emails/{email_id(id)}", safe=True))

    def events(self, id: str) -> tuple[TaifaEvent, ...]:
        """GET /emails/{id}/events, oldest first as Taifa gives them."""
        return parse_events(self._call("GET", f"/emails/{email_id(id)}/events", safe=True))

    def search(
        self,
        q: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        page: int = 0,
        limit: int = 20,
    ) -> Page[TaifaEmail]:
        """GET /emails/search; `q` takes tokens like `to:`, `from:`, `status:`, `tag:`."""
        params: dict[str, Any] = page_params(page, limit)
        for name, value in (("q", q), ("status", status), ("tag", tag)):
            if value is not None:
                params[name] = validation.text(value, name, max_len=500, single_line=True, allow_empty=True)
        data = self._call("GET", "/emails/search", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    def reconcile(self, tag: str, *, pages: int = 20) -> dict[str, str]:
        """What Taifa holds of a send whose reply was lost: recipient address (lower case)
        -> email id, for every email carrying `tag`. Raises a ProviderError when Taifa
        cannot be asked now; an empty answer means Taifa has none of them."""
        found: dict[str, str] = {}
        for page in range(pages):
            result = self.search(tag=tag, page=page, limit=MAX_PAGE_LIMIT)
            for item in result.items:
                if item.status in ("rejected", "failed", "error", "cancelled"):
                    continue
                for address in item.to_addresses or ("",):
                    found.setdefault(address.strip().lower(), item.id)
            if not result.has_more:
                break
        return found

    def updates(self, since: datetime | str) -> Updates:
        """GET /emails/updates?since=...: status changes since then (50 at most, oldest
        first); call again with `next_since` to read on."""
        if isinstance(since, datetime):
            since_text = validation.instant(since, "since").isoformat().replace("+00:00", "Z")
        else:
            validation.instant(since, "since")
            since_text = since.strip()
        data = self._call("GET", "/emails/updates", safe=True, params={"since": since_text})
        return parse_updates(data)

    def list(self, status: str | None = None, page: int = 0, limit: int = 20) -> Page[TaifaEmail]:
        """GET /emails/, newest first."""
        params: dict[str, Any] = page_params(page, limit)
        if status is not None:
            params["status"] = validation.text(status, "status", max_len=50, single_line=True)
        data = self._call("GET", "/emails/", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    # -- plumbing --------------------------------------------------------------------

    def _accepted(self, result: SendResult) -> SendResult:
        """The result of a single send, raised instead when refused for an account reason."""
        refusal = refused_send(result, self.http.redact)
        if refusal is not None:
            raise refusal
        return result

    def _call(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        reply = self.http.request(method, path, safe=safe, json_body=json_body, params=params)
        failure = taifa_failure(reply, safe=safe, redact=self.http.redact)
        if failure is not None:
            raise failure
        if reply.data is None:
            raise unreadable_reply(PROVIDER, reply, safe=safe)
        return reply.data
