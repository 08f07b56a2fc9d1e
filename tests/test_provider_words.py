"""Every documented provider error recognised by its words as well as by its number.

Pure mapping tests: replies are built in memory and handed to the mapping functions. The
rule that matters most: a balance or account fault (balance, token, IP, API access, account
state, Taifa's key, quota, plan and payment) is a `BalanceError` or `AccountError` whatever
the HTTP status and shape, so it holds a message and never ends it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from hudhud.worker.providers.errors import (
    AccountError,
    BalanceError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from hudhud.worker.providers.http import Reply
from hudhud.worker.providers.results import BatchResult, SendResult
from hudhud.worker.providers.taifa.failures import account_fault, refused_batch, refused_send, taifa_failure
from hudhud.worker.providers.taqnyat.failures import form_failure, rest_failure
from hudhud.worker.providers.taqnyat.salvage import decode as decode_body
from hudhud.worker.providers.taqnyat.words import diagnose, plain_words
from tests.test_provider_parsing import SEED1_ERRORS, SEED2_ERRORS

HOLD = (BalanceError, AccountError)


def reply(status: int, body: Any) -> Reply:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Reply(status, CaseInsensitiveDict({}), decode_body(text), text)


# --- the documented texts --------------------------------------------------------------

# (code, class, texts): the seeds' English and Arabic words of each code.
DOCUMENTED: list[tuple[int, type[ProviderError], list[str]]] = [
    (2, BalanceError, ["Your balance is 0", " Your balance is 0", "الرصيد = 0", " الرصيد = 0"]),
    (3, BalanceError, ["Your balance is not enough", " الرصيد غير كافي"]),
    (
        14,
        PermanentError,
        ["Invalid sender", " error From", "Invalid CallerId", " خطا في المرسل", "هوية المتصل غير صحيحة"],
    ),
    (
        15,
        PermanentError,
        [
            "Recipients are not specified or incorrect",
            " Email is not specified or incorrect",
            "Mobile(s) number(s) is not specified or incorrect",
            " البريد الالكتروني المرسل لها غير صحيحه أو فارغه",
            "الأرقام المرسل لها غير صحيحة أو فارغة",
        ],
    ),
    (16, PermanentError, [" error subject", " يوجد خطا في عنوان الرساله"]),
    (
        17,
        PermanentError,
        [
            " error msg",
            "error msg or error audio file",
            " يوجد خطا في الرساله",
            "يوجد خطأ في الارسال او الملف الصوتي",
        ],
    ),
    (101, AccountError, ["sending by API is disabled", "الارسال باستخدام بوابات الارسال معطل"]),
    (
        102,
        AccountError,
        [
            "this ip Not authorized to using the API",
            " this ip 10.0.0.1 Not authorized to using the API",
            " هذا الاي بي 10.0.0.1 غير مصرح له باستخدم بوابات الارسال",
            "هذا الاي بي غير مصرح له ",
        ],
    ),
    (104, AccountError, ["Invalid Bearer Tokens", "مفتاح الارسال غير صحيح"]),
]
TEXTS = [(code, kind, text) for code, kind, texts in DOCUMENTED for text in texts]
HOLD_TEXTS = [(code, kind, text) for code, kind, text in TEXTS if kind is not PermanentError]
INPUT_TEXTS = [(code, kind, text) for code, kind, text in TEXTS if kind is PermanentError]

# Sensible words that are not the seeds' own, with the code they stand for (None: no code).
VARIANTS: list[tuple[str, type[ProviderError], int | None]] = [
    ("insufficient balance", BalanceError, 3),
    ("Insufficient account balance", BalanceError, 3),
    ("not enough balance", BalanceError, 3),
    ("Balance not enough to send this message", BalanceError, 3),
    ("low balance", BalanceError, 3),
    ("not enough credit", BalanceError, 3),
    ("رصيدك لا يكفي", BalanceError, 3),
    ("balance is zero", BalanceError, 2),
    ("Balance = 0.000 SAR", BalanceError, 2),
    ("your balance: 0", BalanceError, 2),
    ("zero balance", BalanceError, 2),
    ("no balance", BalanceError, 2),
    ("You ran out of credit", BalanceError, 2),
    ("الرصيد صفر", BalanceError, 2),
    ("الرصيد = ٠", BalanceError, 2),
    ("لا يوجد رصيد", BalanceError, 2),
    ("please top up your account", BalanceError, None),
    ("balance error", BalanceError, None),
    ("token invalid", AccountError, 104),
    ("Invalid token", AccountError, 104),
    ("bearer token expired", AccountError, 104),
    ("Token is missing", AccountError, 104),
    ("wrong API key", AccountError, 104),
    ("unauthorized IP", AccountError, 102),
    ("IP address not whitelisted", AccountError, 102),
    ("ip blocked", AccountError, 102),
    ("Your IP (10.0.0.1) is not allowed", AccountError, 102),
    ("API disabled", AccountError, 101),
    ("API access is not enabled", AccountError, 101),
    ("sending is disabled", AccountError, 101),
    ("account suspended", AccountError, None),
    ("Account expired", AccountError, None),
    ("account inactive", AccountError, None),
    ("Your account is not active", AccountError, None),
    ("subscription expired", AccountError, None),
    ("الحساب موقوف", AccountError, None),
    ("invalid credentials information", AccountError, None),
    ("invalid credentials", AccountError, None),
    ("authentication failed", AccountError, None),
    ("Unauthorized", AccountError, None),
    ("Forbidden", AccountError, None),
    ("غير مصرح", AccountError, None),
    ("sender not approved", PermanentError, 14),
    ("invalid recipients", PermanentError, 15),
    ("invalid message", PermanentError, 17),
]

# Words that name no balance or account fault: they must not hold anything.
NOT_ACCOUNT = [
    "body is required",
    "sender is required",
    "scheduledDatetime is not valid, use YYYY-MM-DDTHH:mm",
    "request body must be a JSON object",
    "deleteId not found",
    "Method Not Allowed",
    "Not Found",
    "Deleted successfully",
]


def code_of(error: ProviderError | None) -> str | None:
    assert error is not None
    return error.code


# --- Taqnyat REST shapes ---------------------------------------------------------------


def rest_shapes(code: int, words: str) -> list[dict[str, Any]]:
    """Every shape the seeds, PROVIDERS.md and public clients show for one SMS error."""
    return [
        {"statusCode": 400, "message": str(code), "reason": words},
        {"statusCode": 400, "message": words},
        {"statusCode": 400, "reason": words},
        {"statusCode": 400, "message": "", "reason": words},
        {"message": str(code), "reason": words},
        {"message": code},
        {"statusCode": 400, "code": code},
        {"statusCode": 400, "errorCode": str(code), "message": words},
        {"statusCode": 400, "ErrorCode": f" {code} "},
        {"statusCode": 400, "error": {"code": code, "message": words}},
        {"statusCode": 400, "message": f"Error {code}: {words}"},
        {"statusCode": 400, "message": f"error code: {code}"},
    ]


@pytest.mark.parametrize(("code", "kind", "words"), TEXTS)
def test_taqnyat_rest_every_shape_names_the_code(code: int, kind: type, words: str) -> None:
    for body in rest_shapes(code, words):
        error = rest_failure(reply(400, body), channel="sms")
        assert type(error) is kind, body
        assert code_of(error) == str(code), body


@pytest.mark.parametrize(("code", "kind", "words"), HOLD_TEXTS)
@pytest.mark.parametrize("status", [200, 201, 400, 401, 403, 404, 409, 422, 500, 503])
def test_taqnyat_account_faults_hold_whatever_the_status(
    status: int, code: int, kind: type, words: str
) -> None:
    for body in rest_shapes(code, words):
        error = rest_failure(reply(status, body), channel="sms")
        assert type(error) is kind, (status, body)
        assert code_of(error) == str(code)


@pytest.mark.parametrize(("code", "kind", "words"), INPUT_TEXTS)
def test_taqnyat_input_faults_by_words_name_the_field(code: int, kind: type, words: str) -> None:
    error = rest_failure(reply(400, {"statusCode": 400, "message": words}), channel="sms")
    assert type(error) is PermanentError
    assert error.code == str(code)
    assert error.field == {14: "sender", 15: "recipients", 16: None, 17: "body"}[code]


@pytest.mark.parametrize(("words", "kind", "code"), VARIANTS)
def test_taqnyat_sensible_variants(words: str, kind: type, code: int | None) -> None:
    for body in ({"statusCode": 400, "message": words}, {"message": "", "reason": words}):
        error = rest_failure(reply(400, body), channel="sms")
        assert type(error) is kind, body
        assert code_of(error) == (None if code is None else str(code))


@pytest.mark.parametrize("words", NOT_ACCOUNT)
def test_taqnyat_ordinary_words_hold_nothing(words: str) -> None:
    error = rest_failure(reply(400, {"statusCode": 400, "message": words}), channel="sms")
    assert type(error) is PermanentError
    assert error.code is None


def test_taqnyat_balance_words_keep_code_2_apart_from_code_3() -> None:
    zero = rest_failure(reply(400, {"statusCode": 400, "message": "Your balance is 0"}))
    short = rest_failure(reply(400, {"statusCode": 400, "message": "Your balance is not enough"}))
    assert isinstance(zero, BalanceError) and isinstance(short, BalanceError)
    assert (zero.code, short.code) == ("2", "3")
    assert str(zero) == "taqnyat HTTP 400 code 2: Your balance is 0"


def test_taqnyat_balance_of_a_fraction_is_not_zero() -> None:
    error = rest_failure(reply(400, {"statusCode": 400, "message": "balance is 0.5"}))
    assert isinstance(error, BalanceError) and error.code != "2"


def test_taqnyat_account_words_beat_an_input_number() -> None:
    body = {"statusCode": 400, "message": "15", "reason": "Your balance is 0"}
    error = rest_failure(reply(400, body))
    assert type(error) is BalanceError and error.code == "2"
    body = {"statusCode": 400, "code": 14, "message": "invalid sender", "reason": "token invalid"}
    assert type(rest_failure(reply(400, body))) is AccountError


def test_taqnyat_a_number_decides_between_two_account_faults() -> None:
    # Seed 001 prints code 101 with the words of 104, and code 2 with the words of 3.
    body = {"message": "101", "reason": "Invalid Bearer Tokens"}
    assert code_of(rest_failure(reply(400, body))) == "101"
    body = {"message": "2", "reason": "Your balance is not enough"}
    assert code_of(rest_failure(reply(400, body))) == "2"


def test_taqnyat_input_number_under_401_is_an_account_error() -> None:
    error = rest_failure(reply(401, {"statusCode": 401, "message": "14"}))
    assert type(error) is AccountError


def test_taqnyat_success_replies_are_no_failure() -> None:
    sent = {
        "statusCode": 201,
        "messageId": 5452899970123,
        "cost": 0.026,
        "accepted": "[966500000000,]",
        "rejected": "[]",
    }
    assert rest_failure(reply(201, sent)) is None
    assert rest_failure(reply(201, {"statusCode": 201, "message": "Deleted successfully"})) is None
    assert (
        rest_failure(
            reply(200, {"statusCode": 200, "accountStatus": "active", "balance": "0.000", "currency": "SAR"})
        )
        is None
    )
    assert (
        rest_failure(
            reply(
                200,
                {
                    "statusCode": 200,
                    "status": {"service": "sms", "description": "sending by API is disabled for maintenance"},
                },
            )
        )
        is None
    )


def test_taqnyat_2xx_with_words_or_a_code_but_no_message_id_is_a_failure() -> None:
    error = rest_failure(reply(200, {"message": "Your balance is 0"}))
    assert type(error) is BalanceError and error.http_status == 200
    error = rest_failure(reply(201, {"statusCode": 201, "code": "104"}))
    assert type(error) is AccountError
    assert type(rest_failure(reply(200, {"ResponseStatus": "fail"}))) is PermanentError


def test_taqnyat_undocumented_number_keeps_the_status_class() -> None:
    error = rest_failure(reply(400, {"statusCode": 400, "message": "105"}))
    assert type(error) is PermanentError and error.code == "105"
    assert "error code 105" in str(error)
    error = rest_failure(reply(503, {"statusCode": 503, "message": "503"}), safe=True)
    assert type(error) is RetryableError


# --- Taqnyat form shapes (mailSend.php, voiceSend.php) ---------------------------------


def form_shapes(code: int, words: str) -> list[dict[str, Any]]:
    english = words if re.search(r"[a-z]", words, re.I) else ""
    arabic = "" if english else words
    return [
        {
            "status": 1,
            "ResponseStatus": "fail",
            "Data": None,
            "Error": {"ErrorCode": code, "MessageAr": arabic, "MessageEn": english},
        },
        {
            "status": 1,
            "ResponseStatus": "fail",
            "Data": None,
            "Error": {"MessageAr": arabic, "MessageEn": english},
        },
        {"ResponseStatus": "FAIL", "Error": {"ErrorCode": str(code)}},
        {"responseStatus": "fail", "error": {"errorCode": code, "messageEn": words}},
        {"ResponseStatus": "fail", "Error": {"MessageEn": f"  {words.upper()}!! "}},
    ]


@pytest.mark.parametrize(("code", "kind", "words"), TEXTS)
@pytest.mark.parametrize("status", [200, 201, 400])
def test_taqnyat_form_every_shape_names_the_code(status: int, code: int, kind: type, words: str) -> None:
    for body in form_shapes(code, words):
        error = form_failure(reply(status, body), channel="email")
        assert type(error) is kind, body
        assert code_of(error) == str(code), body


SEED_ERRORS = [("email", *case) for case in SEED1_ERRORS] + [("voice", *case) for case in SEED2_ERRORS]


@pytest.mark.parametrize(("channel", "text", "kind", "code", "words", "field"), SEED_ERRORS)
def test_taqnyat_seed_replies_without_their_error_code(
    channel: str, text: str, kind: type, code: str, words: str, field: str | None
) -> None:
    without = re.sub(r'^\s*"ErrorCode"\s*:\s*\d+\s*,\s*\n', "", text, flags=re.M)
    assert without != text
    error = form_failure(reply(400, without), channel=channel)
    assert type(error) is kind
    assert words in str(error)
    # Seed 001 shows "not enough" under ErrorCode 2: without the number, the words say 3.
    expected = "3" if "not enough" in words else code
    assert error.code == expected
    assert error.field == field


# --- property-based: decorations, statuses, arbitrary bodies ---------------------------

PUNCTUATION = st.text(alphabet=" \t\n.,;:!?-_*()[]\"'«»،؛", max_size=4)


@st.composite
def decorated(draw: st.DrawFn, words: str) -> str:
    """`words` in random letter case, with random whitespace between and punctuation around."""
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in words)
    spaced = re.sub(r" +", lambda _: draw(st.sampled_from([" ", "  ", "\t", " \n "])), cased)
    return draw(PUNCTUATION) + spaced + draw(PUNCTUATION)


DOCUMENTED_OR_VARIANT = [(text, kind, code) for code, kind, text in TEXTS] + VARIANTS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    case=st.sampled_from(DOCUMENTED_OR_VARIANT),
    key=st.sampled_from(["message", "reason", "Message", "REASON", "msg", "error"]),
)
def test_taqnyat_words_survive_case_whitespace_and_punctuation(
    data: st.DataObject, case: tuple[str, type, int | None], key: str
) -> None:
    words, kind, code = case
    text = data.draw(decorated(words))
    error = rest_failure(reply(400, {"statusCode": 400, key: text}), channel="sms")
    assert type(error) is kind, text
    assert code_of(error) == (None if code is None else str(code))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "statusCode",
        "message",
        "reason",
        "code",
        "errorCode",
        "ErrorCode",
        "ResponseStatus",
        "Error",
        "Data",
        "messageId",
        "detail",
        "status",
    ]
)
SHAPED_JSON = st.dictionaries(
    KEYS,
    JSON | st.sampled_from([2, "3", "104", "fail", "Your balance is 0", {"ErrorCode": 102}, None]),
    max_size=6,
)
STATUSES = st.sampled_from(
    [200, 201, 202, 204, 400, 401, 402, 403, 404, 405, 408, 409, 413, 422, 429, 500, 502, 503, 504]
) | st.integers(100, 599)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=JSON | SHAPED_JSON,
    status=STATUSES,
    safe=st.booleans(),
    channel=st.sampled_from(["sms", "email", "voice", "account"]),
)
def test_arbitrary_json_bodies_raise_nothing_but_the_hierarchy(
    body: Any, status: int, safe: bool, channel: str
) -> None:
    answer = reply(status, body)
    for error in (
        rest_failure(answer, channel=channel, safe=safe),
        form_failure(answer, channel=channel, safe=safe) if channel != "sms" else None,
        taifa_failure(answer, safe=safe),
    ):
        assert error is None or isinstance(error, ProviderError)
        if error is not None:
            assert str(error)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), status=STATUSES)
def test_arbitrary_reply_text_raises_nothing_but_the_hierarchy(text: str, status: int) -> None:
    answer = Reply(status, CaseInsensitiveDict({}), decode_body(text), text)
    for error in (rest_failure(answer), form_failure(answer, channel="voice"), taifa_failure(answer)):
        assert error is None or isinstance(error, ProviderError)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    case=st.sampled_from([(t, k, c) for t, k, c in DOCUMENTED_OR_VARIANT if k is not PermanentError]),
    status=STATUSES,
    extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k.lower() != "messageid"), JSON, max_size=4),
    number=st.sampled_from([None, 14, 15, 16, 17, "15", 999]),
)
def test_account_faults_hold_in_any_shape_and_status(
    data: st.DataObject, case: tuple[str, type, int | None], status: int, extra: dict[str, Any], number: Any
) -> None:
    words, _, _ = case
    body: dict[str, Any] = {"message": data.draw(decorated(words))}
    if number is not None:
        body["code"] = number
    body.update({k: v for k, v in extra.items() if k.lower() not in {"message", "code"}})
    error = rest_failure(reply(status, body), channel="sms")
    assert isinstance(error, HOLD), body


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_plain_words_is_idempotent_and_flat(text: str) -> None:
    once = plain_words(text)
    assert plain_words(once) == once
    assert "  " not in once and once == once.strip()


def test_diagnose_reads_nothing_from_nothing() -> None:
    assert diagnose(None) is None
    assert diagnose({}) is None
    assert diagnose({"statusCode": 400, "message": ""}) is None


# --- Taifa -----------------------------------------------------------------------------


def detail(code: str | None, message: str) -> dict[str, Any]:
    return {"detail": {"code": code, "message": message}} if code else {"detail": message}


TAIFA_HOLDS: list[tuple[str | None, str, type[ProviderError]]] = [
    ("unauthorized", "Missing or invalid API key", AccountError),
    (None, "Invalid API key", AccountError),
    (None, "API key revoked", AccountError),
    ("invalid_api_key", "The key is not valid", AccountError),
    (None, "Account suspended", AccountError),
    ("account_disabled", "This account is disabled", AccountError),
    ("plan_feature", "Batch sending is not available on the free plan", AccountError),
    ("send_limit_reached", "The send limit of this account is reached", AccountError),
    (None, "Monthly quota exceeded", AccountError),
    ("quota_exceeded", "", AccountError),
    (None, "You have exceeded your daily sending limit", AccountError),
    (None, "Upgrade your plan to send more", AccountError),
    ("payment_required", "Payment required", BalanceError),
    (None, "Insufficient credits", BalanceError),
    ("insufficient_balance", "", BalanceError),
]


@pytest.mark.parametrize(("code", "words", "kind"), TAIFA_HOLDS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 429, 500, 503])
def test_taifa_account_faults_hold_whatever_the_status(
    status: int, code: str | None, words: str, kind: type
) -> None:
    error = taifa_failure(reply(status, detail(code, words)))
    assert isinstance(error, HOLD)
    if status not in (401, 403) or kind is BalanceError:
        assert type(error) is kind
    assert error.http_status == status


@pytest.mark.parametrize("body", [{"detail": "Payment Required"}, {}, "", {"detail": {}}])
def test_taifa_402_is_a_spent_balance(body: Any) -> None:
    assert type(taifa_failure(reply(402, body))) is BalanceError


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, detail("batch_too_large", "batch is larger than your plan allows")),
        (400, detail(None, "batch size over the plan limit")),
        (400, detail("invalid_send_at", "send_at must be 1 minute to 30 days ahead")),
        (404, detail("not_found", "Email not found")),
        (409, detail("not_retryable", "Email with status 'queued' cannot be retried")),
        (422, {"detail": [{"loc": ["body", "from_"], "msg": "sender domain is not verified"}]}),
        (422, {"detail": [{"loc": ["body", "to", 0, "email"], "msg": "value is not a valid email"}]}),
    ],
)
def test_taifa_message_faults_stay_permanent(status: int, body: Any) -> None:
    assert type(taifa_failure(reply(status, body))) is PermanentError


def test_taifa_plain_rate_limit_stays_retryable() -> None:
    error = taifa_failure(reply(429, detail("rate_limited", "Too many requests")), safe=True)
    assert type(error) is RetryableError


@settings(max_examples=200, deadline=None)
@given(data=st.data(), case=st.sampled_from(TAIFA_HOLDS), status=STATUSES.filter(lambda s: s >= 300))
def test_taifa_account_words_hold_in_any_case_and_status(
    data: st.DataObject, case: tuple[str | None, str, type], status: int
) -> None:
    code, words, _ = case
    text = data.draw(decorated(words or (code or "").replace("_", " ")))
    bodies = [detail(code, text)]
    if account_fault(None, words or code, 400) is not None:  # the words alone tell
        bodies += [{"detail": text}, {"message": text}]
    for body in bodies:
        assert isinstance(taifa_failure(reply(status, body)), HOLD), (status, body)


def test_taifa_202_rejected_for_an_account_reason_is_held() -> None:
    suspended = SendResult(
        provider="taifa", provider_message_id=None, status="rejected", rejection_reason="account suspended"
    )
    assert type(refused_send(suspended)) is AccountError
    suppressed = SendResult(
        provider="taifa",
        provider_message_id="e1",
        status="rejected",
        rejection_reason="recipient is on the suppression list",
    )
    assert refused_send(suppressed) is None
    queued = SendResult(provider="taifa", provider_message_id="e1", status="queued")
    assert refused_send(queued) is None


def test_taifa_batch_refused_whole_for_the_send_limit_is_held() -> None:
    limit = SendResult(
        provider="taifa",
        provider_message_id=None,
        status="failed",
        rejection_reason="the send limit of this account is reached",
    )
    bad = SendResult(
        provider="taifa",
        provider_message_id=None,
        status="failed",
        rejection_reason="to.0.email: value is not a valid email address",
    )
    ok = SendResult(provider="taifa", provider_message_id="e1", status="queued")
    assert type(refused_batch(BatchResult(2, 0, 2, (bad, limit)))) is AccountError
    assert refused_batch(BatchResult(2, 1, 1, (ok, limit))) is None  # some were sent: no resend
    assert refused_batch(BatchResult(1, 0, 1, (bad,))) is None
    assert refused_batch(BatchResult(0, 0, 0, ())) is None


def test_taifa_account_fault_reads_codes_as_words() -> None:
    assert account_fault("send_limit_reached", None, 400) is AccountError
    assert account_fault("not_found", "Email not found", 404) is None
