"""Taqnyat (api.taqnyat.sa): SMS over REST, email (`mailSend.php`) and voice (`voiceSend.php`).

What this module knows about Taqnyat's quirks (seeds 000-002, PROVIDERS.md):
- REST failures come as `{"statusCode":400,"message":"<code or text>","reason":"..."}`;
  401 `invalid credentials information` for a bad token. The SMS error shape is not
  documented: a code may come as its number (in `message` or a code field), as the code's
  words alone (`{"statusCode":400,"message":"Your balance is 0"}`), in English or Arabic.
  Words count as much as numbers, and a balance or account fault is never an input error.
- The form endpoints answer `{"ResponseStatus":"fail","Error":{"ErrorCode":N,...}}`, sometimes
  with HTTP 200/201: the body decides, not the status. Their documented replies are not
  valid JSON; the HTTP base salvages them.
- `accepted`/`rejected` are strings like "[966500000000,]"; `messageId` may exceed 32 bits;
  `cost` may be a string or a number.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hudhud.worker import validation
from hudhud.worker.providers.errors import (
    AccountError,
    BalanceError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from hudhud.worker.providers.http import (
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
from hudhud.worker.providers.results import (
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
)

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


# --- recognizing an error by its words -------------------------------------------------
#
# Taqnyat's SMS errors are not documented: the same fault comes as a number in `message`,
# as a number in some code field, or as the table's words alone, in English or Arabic. The
# words are matched after `plain_words` (case folded, punctuation gone, Arabic letters
# folded), balance and account faults first: those must hold a message, never end it.


@dataclass(frozen=True)
class Diagnosis:
    """What a reply's numbers or words name: the error class and Taqnyat's code, if any."""

    kind: type[ProviderError]
    code: int | None = None

    @property
    def holds(self) -> bool:
        """True for an account-level fault (balance, token, IP, API access, account)."""
        return self.kind is not PermanentError


def _kind_of(code: int) -> type[ProviderError]:
    if code in BALANCE_CODES:
        return BalanceError
    if code in ACCOUNT_CODES or code in ACCOUNT_STATUS_CODES:
        return AccountError
    return PermanentError


_ARABIC_FOLDS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ة": "ه",
        "ى": "ي",
        "ؤ": "و",
        "ئ": "ي",
        "ـ": None,  # tatweel
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Eastern Arabic-Indic digits
    }
)
_DECIMAL_POINT = re.compile(r"(?<=\d)[.,٫](?=\d)")
_KEEP = "\x00"


def plain_words(text: str) -> str:
    """`" Your balance is 0"",` -> `your balance is 0`; Arabic-Indic digits -> `0`-`9`.

    Lower case, Arabic letter variants folded, diacritics dropped, punctuation and symbols
    turned into single spaces; a decimal point between digits is kept (`0.000`, `10.0.0.1`).
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_ARABIC_FOLDS)
    text = _DECIMAL_POINT.sub(_KEEP, text.replace(_KEEP, " "))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Mn":
            continue  # Arabic harakat and other combining marks
        kept.append(" " if category[0] in "PSZC" and char != _KEEP else char)
    return " ".join("".join(kept).split()).replace(_KEEP, ".")


Rule = tuple[type[ProviderError], int | None, re.Pattern[str]]


def _rule(kind: type[ProviderError], code: int | None, *patterns: str) -> Rule:
    return kind, code, re.compile("|".join(f"(?:{p})" for p in patterns))


_BAL = r"(?:balance|credit|credits|funds|points)"
_NOT_ENOUGH = (
    r"(?:not enough|no enough|not sufficient|insufficient|too low|low|lower than|less than"
    r"|does not cover|doesn t cover|not cover)"
)
_EMPTY = r"(?:zero|empty|nil|null|none|finished|exhausted|consumed|depleted|used up|run out|ran out)"
_REFUSED = (
    r"(?:not authori[sz]ed|unauthori[sz]ed|not allowed|not permitted|not whitelisted"
    r"|not white listed|not in (?:the )?white ?list|blocked|denied|forbidden|restricted|rejected|banned)"
)
_OFF = r"(?:disabled|deactivated|turned off|switched off|not enabled|not activated|stopped)"
_BAD = r"(?:invalid|incorrect|wrong|not valid|unknown|malformed|bad)"
_TOKEN = r"(?:bearer|bearer tokens?|tokens?|api ?keys?|access keys?|access tokens?|auth tokens?|secret)"
_ACCOUNT = r"(?:account|user|subscription|customer|client|membership)"
_ACCOUNT_STATE = (
    r"(?:suspended|expired|inactive|not active|deactivated|disabled|blocked|locked|closed"
    r"|terminated|banned|frozen|on hold|not activated)"
)
_AR_WRONG = r"(?:غير صحيح|غير صالح|خاطي|خطا)"

# In order: the first rule whose pattern is found in the words decides.
_WORD_RULES: tuple[Rule, ...] = (
    _rule(
        BalanceError,
        3,
        rf"\b{_BAL}\b(?: \w+){{0,3}}? (?:is |are )?{_NOT_ENOUGH}\b",
        rf"\b{_NOT_ENOUGH}(?: \w+){{0,2}}? {_BAL}\b",
        r"رصيد\w*(?: \w+){0,2}? (?:غير كاف|لا يكفي|لايكفي|ناقص|منخفض)",
    ),
    _rule(
        BalanceError,
        2,
        rf"\b{_BAL} (?:is |= |equals |of |now )?(?:0+(?:\.0+)?(?![.\d])|{_EMPTY}\b)",
        rf"\b(?:no|zero|empty|out of|without) (?:\w+ )?{_BAL}\b",
        r"رصيد\w* (?:يساوي |هو )?(?:0+(?:\.0+)?(?![.\d])|صفر|منتهي|نفد|فارغ)",
        r"(?:لا يوجد|لايوجد|نفاد|نفد|نفاذ|انتهى|انتهاء) (?:\w+ )?\w*رصيد",
    ),
    _rule(
        AccountError,
        102,
        rf"\bip\b(?: address)?(?: [\w.]+){{0,3}}? (?:is |are |has been )?{_REFUSED}\b",
        rf"\b(?:{_REFUSED}|untrusted|unknown|invalid|disallowed) (?:source )?ip\b",
        r"\bip (?:address )?(?:white ?list|restriction)",
        r"(?:الاي بي|اي بي|الايبي|\bip\b)(?: [\w.]+){0,3}? (?:غير مصرح|محظور|ممنوع)",
    ),
    _rule(
        AccountError,
        104,
        rf"\b{_TOKEN}\b(?: \w+){{0,3}}? (?:is |are )?(?:{_BAD}|expired|revoked|missing|not found"
        r"|not recognized|required|empty)\b",
        rf"\b(?:{_BAD}|expired|revoked|missing|no) (?:\w+ ){{0,2}}?{_TOKEN}\b",
        rf"(?:مفتاح|التوكن|توكن)\w*(?: \w+){{0,3}}? (?:{_AR_WRONG}|منتهي)",
    ),
    _rule(
        AccountError,
        101,
        rf"\bapi\b(?: \w+){{0,4}}? (?:{_OFF}|not active|inactive|suspended|blocked|off)\b",
        r"\b(?:disabled|deactivated|inactive|suspended|blocked) (?:\w+ )?api\b",
        rf"\bsending\b(?: \w+){{0,3}}? {_OFF}\b",
        r"(?:الارسال|ارسال)(?: \w+){0,4}? (?:معطل|موقوف|غير مفعل)",
        r"(?:الربط|الواجهه|\bapi\b)(?: \w+){0,2}? (?:معطل|موقوف|غير مفعل)",
    ),
    _rule(
        AccountError,
        None,
        rf"\b{_ACCOUNT}\b(?: \w+){{0,3}}? (?:is |has been |was )?{_ACCOUNT_STATE}\b",
        rf"\b{_ACCOUNT_STATE} (?:\w+ )?{_ACCOUNT}\b",
        r"(?:الحساب|حساب)\w*(?: \w+){0,2}? (?:موقوف|معلق|منتهي|غير نشط|غير مفعل|معطل|محظور|مغلق)",
    ),
    _rule(
        AccountError,
        None,
        rf"\b(?:{_BAD}|expired|missing|no) (?:\w+ )?(?:credentials?|login|username|user name|password"
        r"|authentication|authorization)\b",
        r"\b(?:credentials?|authentication|authorization|login)\b(?: \w+){0,2}? (?:invalid|incorrect"
        r"|wrong|failed|failure|required|missing|expired|denied)\b",
        r"\b(?:unauthenticated|not authenticated)\b",
        r"بيانات (?:الدخول|الاعتماد)(?: \w+)? غير صحيح",
    ),
    _rule(
        PermanentError,
        14,
        r"\b(?:invalid|incorrect|wrong|unknown|unapproved|unregistered|bad) (?:sender|caller ?id|from)\b",
        r"\berror from\b",
        r"\b(?:sender|sender name|caller ?id)\b(?: \w+){0,3}? (?:is )?(?:invalid|incorrect|wrong"
        r"|not approved|not active|inactive|not found|unknown|not registered|not valid|rejected"
        r"|not allowed|not authori[sz]ed|unauthori[sz]ed|blocked|pending|disabled|expired)\b",
        r"خطا في المرسل\b",
        r"(?:اسم المرسل|هويه المتصل|المرسل) غير (?:صحيح|صالح|مفعل|معتمد)",
    ),
    _rule(
        AccountError,
        None,
        r"\b(?:unauthori[sz]ed|forbidden|access denied|permission denied|no permission|not authori[sz]ed)\b",
        r"غير مصرح",
    ),
    _rule(
        PermanentError,
        15,
        r"\b(?:recipients?|mobiles?|mobile s|numbers?|number s|phones?|phone numbers?|emails?"
        r"|email address(?:es)?|destinations?)\b(?: \w+){0,4}? (?:is |are )?(?:not specified"
        r"|incorrect|invalid|not valid|wrong)\b",
        r"\b(?:invalid|incorrect|wrong) (?:recipients?|mobiles?|numbers?|phones?|emails?|destinations?)\b",
        r"المرسل لها (?:\w+ )?غير صحيح",
        r"(?:الارقام|الرقم|ارقام|البريد الالكتروني)(?: \w+){0,3}? غير صحيح",
    ),
    _rule(
        PermanentError,
        16,
        r"\berror subject\b",
        rf"\b{_BAD} subject\b",
        r"\bsubject\b(?: \w+){0,2}? (?:invalid|incorrect|wrong|error|not valid|too long)\b",
        r"خطا في عنوان",
    ),
    _rule(
        PermanentError,
        17,
        r"\berror (?:msg|audio)\b",
        rf"\b{_BAD} (?:message|msg|body|audio|audio file|text|content)\b",
        r"\b(?:message|msg|audio file|content)\b(?: \w+){0,2}? (?:invalid|incorrect|not valid|too long"
        r"|not found)\b",
        r"خطا في (?:الرساله|الارسال او الملف|الملف)",
        r"الملف الصوتي",
    ),
    _rule(
        BalanceError,
        None,
        r"\bbalance\b",
        r"\b(?:top ?up|recharge)\b",
        r"رصيد",
    ),
)

_BARE_NUMBER = re.compile(r"\d{1,6}")
_NAMED_NUMBER = re.compile(
    r"\b(?:error ?code|err ?code|error no|error number|error|code|err)(?: no)? (\d{1,6})\b"
)
_CODE_KEYS = frozenset(
    {"code", "errorcode", "errcode", "errorno", "errornumber", "errno", "errnum", "codeerror"}
)
_TEXT_KEYS = frozenset(
    {
        "message",
        "reason",
        "messageen",
        "messagear",
        "error",
        "errors",
        "description",
        "detail",
        "details",
        "msg",
        "errormessage",
        "errormsg",
        "errordescription",
        "errortext",
        "statusmessage",
        "statustext",
    }
)
# Containers that hold a success's data, not an error's words.
_SUCCESS_KEYS = frozenset({"data", "status", "senders", "accepted", "rejected"})
_MAX_DEPTH = 4
_MAX_LEAVES = 64
_MAX_TEXT = 500


def words_diagnosis(text: str) -> Diagnosis | None:
    """The documented error a text names, by its words alone (English or Arabic)."""
    words = plain_words(text[:_MAX_TEXT])
    if not words:
        return None
    for kind, code, pattern in _WORD_RULES:
        if pattern.search(words):
            return Diagnosis(kind, code)
    return None


def small_number(value: Any) -> int | None:
    """A code given as an int, an integral number or a digit string (at most 6 digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        small = finite and -1_000_000 < value < 1_000_000
        return int(value) if small and value == int(value) else None
    if isinstance(value, str):
        digits = plain_words(value[:_MAX_TEXT])
        return int(digits) if _BARE_NUMBER.fullmatch(digits) else None
    return None


@dataclass
class Clues:
    """The numbers and words an error reply carries, wherever they are."""

    numbers: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def clues(data: Any) -> Clues:
    """Numbers from code fields and bare-number messages, words from message-like fields."""
    found = Clues()
    leaves = 0

    def walk(value: Any, key: str, depth: int) -> None:
        nonlocal leaves
        if leaves >= _MAX_LEAVES or depth > _MAX_DEPTH:
            return
        if isinstance(value, Mapping):
            for name, item in value.items():
                name_key = re.sub(r"[^a-z]", "", str(name).lower())
                if not (name_key in _SUCCESS_KEYS and isinstance(item, Mapping | list)):
                    walk(item, name_key, depth + 1)
            return
        if isinstance(value, list):
            for item in value:
                walk(item, key, depth + 1)
            return
        leaves += 1
        if key in _CODE_KEYS:
            number = small_number(value)
            if number is not None:
                found.numbers.append(number)
        elif key in _TEXT_KEYS or depth == 0:
            _read_text(value, found)

    walk(data, "", 0)
    return found


def _read_text(value: Any, found: Clues) -> None:
    number = small_number(value)
    if number is not None:
        found.numbers.append(number)
        return
    if not isinstance(value, str) or not value.strip():
        return
    named = _NAMED_NUMBER.search(plain_words(value[:_MAX_TEXT]))
    if named and int(named.group(1)) in KNOWN_CODES:
        found.numbers.append(int(named.group(1)))
    found.texts.append(value.strip())


def diagnose(data: Any) -> Diagnosis | None:
    """The documented error a reply names, by number or by words; None when it names none.

    A documented number decides, except that words naming a balance or account fault win
    over a number of an input fault: an account-level fault must never end a message."""
    found = clues(data)
    numbered = [Diagnosis(_kind_of(n), n) for n in found.numbers if n in KNOWN_CODES]
    by_number = next((d for d in numbered if d.holds), numbered[0] if numbered else None)
    named = [d for d in map(words_diagnosis, found.texts) if d is not None]
    by_words = next((d for d in named if d.holds), named[0] if named else None)
    if by_words is not None and by_words.holds and not (by_number is not None and by_number.holds):
        return by_words
    return by_number or by_words


def _first_number(data: Any) -> int | None:
    numbers = clues(data).numbers
    return numbers[0] if numbers else None


# --- mapping failures ----------------------------------------------------------------


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
        currency=text_or_none(body.get("currency")) or ACCOUNT_CURRENCY,
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
        # mailSend.php and voiceSend.php name no currency: Taqnyat's account is kept in SAR
        currency=text_or_none(details.get("currency") or body.get("currency")) or ACCOUNT_CURRENCY,
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
