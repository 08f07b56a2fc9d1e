"""Taqnyat's numbered codes, the fields behind them and their words (seed tables)."""

from __future__ import annotations

from datetime import timedelta, timezone

PROVIDER = "taqnyat"
ACCOUNT_CURRENCY = "SAR"

# Saudi Arabia keeps UTC+3 all year. The documented `scheduledDatetime` is `YYYY-MM-DDTHH:mm`
# without a zone; we send Riyadh time WITH its offset, right whether the offset is read or
# the time is taken as Riyadh local time.
RIYADH = timezone(timedelta(hours=3))

BALANCE_CODES = frozenset({2, 3})
ACCOUNT_CODES = frozenset({101, 102, 104})
INPUT_CODES = frozenset({14, 15, 16, 17})
# 401/403 also come as numbers in `message` or a code field, not only as HTTP statuses.
ACCOUNT_STATUS_CODES = frozenset({401, 403})
KNOWN_CODES = BALANCE_CODES | ACCOUNT_CODES | INPUT_CODES | ACCOUNT_STATUS_CODES

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
    401: "invalid credentials information",
    403: "Forbidden",
}

_REST_FIELDS = frozenset({"body", "sender", "recipients", "scheduledDatetime", "deleteId", "smsId"})
_RETRY_STATUSES = frozenset({408, 425, 429})
_ACCOUNT_STATUSES = frozenset({401, 403})
_FAIL_VERDICTS = frozenset({"fail", "failed", "failure", "error"})
