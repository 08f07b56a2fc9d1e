"""Taqnyat's failures mapped to the error hierarchy: REST replies and the form endpoints'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hudhud.worker.providers.decoding import first_text, join_words, plain
from hudhud.worker.providers.errors import AccountError, PermanentError, ProviderError
from hudhud.worker.providers.http import Reply, status_retry_error, unreadable_reply
from hudhud.worker.providers.results import mapping
from hudhud.worker.providers.taqnyat.codes import (
    _ACCOUNT_STATUSES,
    _FAIL_VERDICTS,
    _REST_FIELDS,
    _RETRY_STATUSES,
    CODE_FIELDS,
    CODE_WORDS,
    PROVIDER,
)
from hudhud.worker.providers.taqnyat.words import (
    Diagnosis,
    _first_number,
    _kind_of,
    clues,
    diagnose,
    small_number,
)
from hudhud.worker.redaction import NO_SECRETS, Redactor


def error_for_code(
    code: int, words: str | None, *, channel: str, http_status: int | None, raw: Any = None
) -> ProviderError:
    """The error of one of Taqnyat's numbered codes (2, 3, 14-17, 101, 102, 104)."""
    return error_of(Diagnosis(_kind_of(code), code), words, channel=channel, http_status=http_status, raw=raw)


def error_of(
    diagnosis: Diagnosis, words: str | None, *, channel: str, http_status: int | None, raw: Any = None
) -> ProviderError:
    """The error of a diagnosis. An input fault under HTTP 401/403 is an account error."""
    code = diagnosis.code
    message = words or (CODE_WORDS.get(code, f"error code {code}") if code is not None else "refused")
    details: dict[str, Any] = {"http_status": http_status, "code": code, "raw": raw}
    if diagnosis.holds:
        return diagnosis.kind(PROVIDER, message, **details)
    if http_status in _ACCOUNT_STATUSES:
        return AccountError(PROVIDER, message, **details)
    field = CODE_FIELDS.get(channel, {}).get(code) if code is not None else None
    return PermanentError(PROVIDER, message, field=field, **details)


def error_for_status(
    reply: Reply,
    words: str,
    *,
    safe: bool,
    field: str | None = None,
    status: int | None = None,
    code: int | None = None,
    raw: Any = None,
) -> ProviderError:
    """The error of an HTTP status without a documented code (`code`: an undocumented one)."""
    status = status or reply.status
    details: dict[str, Any] = {"http_status": status, "code": code, "raw": raw}
    if status in _ACCOUNT_STATUSES:
        return AccountError(PROVIDER, words, **details)
    if status >= 500 or status in _RETRY_STATUSES:
        return status_retry_error(PROVIDER, reply, words, safe=safe, code=code, raw=raw)
    return PermanentError(PROVIDER, words, field=field, **details)


def rest_failure(
    reply: Reply, *, channel: str = "sms", safe: bool = False, redact: Redactor = NO_SECRETS
) -> ProviderError | None:
    """The error of a REST reply (`/v1/...`, `/account/...`), or None for a success.

    `{"statusCode":400,"message":"15","reason":"..."}` carries a numbered code;
    `{"statusCode":400,"message":"Your balance is 0"}` only the code's words, which count
    the same. A 2xx answer is a failure too when its body says so: a `statusCode` of 400
    or more, `"ResponseStatus":"fail"`, or (without a `messageId`) a documented code or
    its words.
    """
    data = mapping(reply.data)
    body_status = small_number(_get(data, "statusCode"))
    failed_inside = reply.ok and body_status is not None and body_status >= 400
    if reply.ok and not failed_inside and not _says_failed(reply.data):
        return None
    status = body_status if failed_inside and body_status else reply.status
    raw = plain(reply.data)
    found = diagnose(reply.data)
    texts = clues(reply.data).texts
    words = redact(join_words(texts[:3])) if texts else None
    if found is not None:
        return error_of(found, words, channel=channel, http_status=status, raw=raw)
    message = first_text(_get(data, "message"))
    number = _first_number(reply.data)
    return error_for_status(
        reply,
        words or (f"error code {number}" if number is not None else _no_words(reply)),
        safe=safe,
        field=_field_named_in(message),
        status=status,
        code=number,
        raw=raw,
    )


def _says_failed(data: Any) -> bool:
    """A 2xx body that reports a failure without a failing `statusCode`."""
    body = mapping(data)
    if str(_get(body, "ResponseStatus") or "").strip().lower() in _FAIL_VERDICTS:
        return True
    return _get(body, "messageId") is None and diagnose(data) is not None


def form_failure(
    reply: Reply, *, channel: str, safe: bool = False, redact: Redactor = NO_SECRETS
) -> ProviderError | None:
    """The error of a `mailSend.php`/`voiceSend.php` reply, or None for a success.

    The body decides: `"ResponseStatus":"fail"` is a failure even under HTTP 200/201.
    """
    data = mapping(reply.data)
    verdict = str(_get(data, "ResponseStatus") or "").strip().lower()
    error = mapping(_get(data, "Error"))
    code = small_number(_get(error, "ErrorCode"))
    if verdict == "success" or (not verdict and reply.ok and mapping(_get(data, "Data"))):
        return None
    if verdict in _FAIL_VERDICTS or code is not None:
        raw = plain(reply.data)
        texts = clues(reply.data).texts
        words = first_text(_get(error, "MessageEn"), _get(error, "MessageAr")) or join_words(texts[:3])
        found = diagnose(reply.data)
        if found is not None:
            return error_of(
                found, redact(words) if words else None, channel=channel, http_status=reply.status, raw=raw
            )
        status = reply.status if not reply.ok else 400
        return error_for_status(
            reply, redact(words or "send failed"), safe=safe, status=status, code=code, raw=raw
        )
    return rest_failure(reply, channel=channel, safe=safe, redact=redact) or unreadable_reply(
        PROVIDER, reply, safe=safe
    )


def _get(body: Mapping[str, Any], name: str) -> Any:
    """`body[name]`, the name matched in any letter case (`errorCode`, `ErrorCode`)."""
    if name in body:
        return body[name]
    folded = name.lower()
    return next((value for key, value in body.items() if str(key).lower() == folded), None)


def _field_named_in(message: str | None) -> str | None:
    """`body is required` -> `body`; `deleteId not found` -> `deleteId`."""
    if not message:
        return None
    first = message.split()[0]
    return first if first in _REST_FIELDS else None


def _no_words(reply: Reply) -> str:
    return reply.summary() if reply.data is None else f"HTTP {reply.status}"
