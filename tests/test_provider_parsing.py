"""Parsing of the providers' replies, from the literal replies printed in the seeds.

No server: every test feeds a reply text to the decoding and parsing functions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from hudhud.worker.errors import InvalidInput
from hudhud.worker.providers.errors import (
    AccountError,
    BalanceError,
    PermanentError,
    ProviderError,
)
from hudhud.worker.providers.http import Reply, page_summary, parse_retry_after, plain
from hudhud.worker.providers.results import exact_id, list_like, money, timestamp
from hudhud.worker.providers.taifa.failures import loc_field
from hudhud.worker.providers.taifa.replies import (
    parse_batch,
    parse_email,
    parse_events,
    parse_page,
    parse_send,
    parse_updates,
    parse_validation,
)
from hudhud.worker.providers.taifa.requests import send_at_text
from hudhud.worker.providers.taqnyat.failures import form_failure, rest_failure
from hudhud.worker.providers.taqnyat.replies import (
    parse_balance,
    parse_form_sent,
    parse_senders,
    parse_sms_sent,
    parse_system_status,
    schedule_text,
)
from hudhud.worker.providers.taqnyat.salvage import decode as decode_body


def reply(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, CaseInsensitiveDict(headers or {}), decode_body(text), text)


# --- the seeds' replies, exactly as printed ------------------------------------------
# Seed 001 (Taqnyat email, mailSend.php) and seed 002 (Taqnyat voice, voiceSend.php).
# Most are not valid JSON: bare words, trailing commas, doubled quotes, missing braces.

SEED1_SYSTEM_STATUS = """\
{
statusCode: 200,
status: {
service: "none",
description: "All Services are Operational"
}
}
"""

SEED1_METHOD_NOT_ALLOWED = """\
{
"statusCode": 405,
"message": "Method Not Allowed"
}
"""

SEED1_EMAIL_SENT = """\
{
"status": 1,
"ResponseStatus":"success",
"Data": {
"msgId":202,
"result":1,
"MessageAr":"تم الإرسال",
"MessageEn":"sent successfully",
"price":"0",
}
"Error":null,
}
"""

SEED1_EMAIL_CODE_2 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":2,
"MessageAr":" الرصيد = 0",
"MessageEn":" Your balance is 0"",
}
}
"""

SEED1_EMAIL_CODE_3 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":2,
"MessageAr":" الرصيد غير كافي",
"MessageEn":" Your balance is not enough"",
}
}
"""

SEED1_EMAIL_CODE_14 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":14,
"MessageAr":" خطا في المرسل",
"MessageEn":" error From"",
}
}
"""

SEED1_EMAIL_CODE_15 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":15,
"MessageAr":" البريد الالكتروني المرسل لها غير صحيحه أو فارغه",
"MessageEn":" Email is not specified or incorrect"",
}
}
"""

SEED1_EMAIL_CODE_16 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":16,
"MessageAr":" يوجد خطا في عنوان الرساله",
"MessageEn":" error subject"",
}
}
"""

SEED1_EMAIL_CODE_17 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":17,
"MessageAr":" يوجد خطا في الرساله",
"MessageEn":" error msg"",
}
}
"""

SEED1_EMAIL_CODE_101 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":101,
"MessageAr":" الارسال باستخدام بوابات الارسال معطل",
"MessageEn":"Invalid Bearer Tokens",
}
}
"""

SEED1_EMAIL_CODE_102 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":102,
"MessageAr":" هذا الاي بي 10.0.0.1 غير مصرح له باستخدم بوابات الارسال",
"MessageEn":" this ip 10.0.0.1 Not authorized to using the API"",
}
}
"""

SEED1_EMAIL_CODE_104 = """\
{
"status": 1,
"ResponseStatus":"fail",
"Data":null,
"Error": {
"ErrorCode":104,
"MessageAr":" مفتاح الارسال غير صحيح",
"MessageEn":"Invalid Bearer Tokens",
}
}
"""

SEED2_SYSTEM_STATUS = """\
            statusCode: 200,
            status: {
                service: "none",
                description: "All Services are Operational"
"""

SEED2_METHOD_NOT_ALLOWED = """\
            "statusCode": 405,
            "message": "Method Not Allowed"
"""

SEED2_VOICE_SENT = """\
            "status": 1,
            "ResponseStatus": success,
            "messageId": 5452899970,
            "Data": {
                "msgId": "V-8",
                "result": "1",
                "MessageAr": "تم الارسال",
                "MessageEn": "sent successfully",
                "duration": 3,
                "dtmfTimeout": "0",
                "connectionFee": 3,
                "price": "0.216",
                "rejectedNumber": "[]",
                "Error": "null",
"""

SEED2_VOICE_CODE_2 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 2,
                    "MessageAr": "الرصيد = 0",
                    "MessageEn": "Your balance is 0",
"""

SEED2_VOICE_CODE_3 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 3,
                    "MessageAr": "الرصيد غير كافي",
                    "MessageEn": "Your balance is not enough",
"""

SEED2_VOICE_CODE_14 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 14,
                    "MessageAr": "هوية المتصل غير صحيحة",
                    "MessageEn": "Invalid CallerId",
"""

SEED2_VOICE_CODE_15 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 15,
                    "MessageAr": "الأرقام المرسل لها غير صحيحة أو فارغة",
                    "MessageEn": "Mobile(s) number(s) is not specified or incorrect",
"""

SEED2_VOICE_CODE_17 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 17,
                    "MessageAr": "يوجد خطأ في الارسال او الملف الصوتي",
                    "MessageEn": "error msg or error audio file",
"""

SEED2_VOICE_CODE_101 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 101,
                    "MessageAr": "الارسال باستخدام بوابات الارسال معطل",
                    "MessageEn": "sending by API is disabled",
"""

SEED2_VOICE_CODE_102 = """\
                "status": 1,
                "ResponseStatus": fail,
                "Data": null,
                "Error": {
                    "ErrorCode": 102,
                    "MessageAr": "هذا الاي بي غير مصرح له ",
                    "MessageEn": "MessageEn":" this ip Not authorized to using the API",
"""

SEED2_VOICE_CODE_104 = """\
                    "status": 1,
                    "ResponseStatus": fail,
                    "Data": null,
                    "Error": {
                        "ErrorCode": 104,
                        "MessageAr": "مفتاح الارسال غير صحيح",
                        "MessageEn": "Invalid Bearer Tokens",
"""


# --- salvaging the seeds -------------------------------------------------------------

SEED1_ERRORS = [
    (SEED1_EMAIL_CODE_2, BalanceError, "2", "Your balance is 0", None),
    # Seed 001 prints ErrorCode 2 under "ErrorCode 3": the words tell, the class is the same.
    (SEED1_EMAIL_CODE_3, BalanceError, "2", "Your balance is not enough", None),
    (SEED1_EMAIL_CODE_14, PermanentError, "14", "error From", "from"),
    (SEED1_EMAIL_CODE_15, PermanentError, "15", "Email is not specified or incorrect", "to"),
    (SEED1_EMAIL_CODE_16, PermanentError, "16", "error subject", "subject"),
    (SEED1_EMAIL_CODE_17, PermanentError, "17", "error msg", "msg"),
    (SEED1_EMAIL_CODE_101, AccountError, "101", "Invalid Bearer Tokens", None),
    (SEED1_EMAIL_CODE_102, AccountError, "102", "this ip 10.0.0.1 Not authorized", None),
    (SEED1_EMAIL_CODE_104, AccountError, "104", "Invalid Bearer Tokens", None),
]

SEED2_ERRORS = [
    (SEED2_VOICE_CODE_2, BalanceError, "2", "Your balance is 0", None),
    (SEED2_VOICE_CODE_3, BalanceError, "3", "Your balance is not enough", None),
    (SEED2_VOICE_CODE_14, PermanentError, "14", "Invalid CallerId", "callerId"),
    (SEED2_VOICE_CODE_15, PermanentError, "15", "Mobile(s) number(s) is not specified", "recipients"),
    (SEED2_VOICE_CODE_17, PermanentError, "17", "error msg or error audio file", "audioUrl"),
    (SEED2_VOICE_CODE_101, AccountError, "101", "sending by API is disabled", None),
    (SEED2_VOICE_CODE_102, AccountError, "102", "this ip Not authorized to using the API", None),
    (SEED2_VOICE_CODE_104, AccountError, "104", "Invalid Bearer Tokens", None),
]


@pytest.mark.parametrize(
    "text", [block for block, *_ in SEED1_ERRORS + SEED2_ERRORS] + [SEED1_EMAIL_SENT, SEED2_VOICE_SENT]
)
def test_every_seed_reply_is_invalid_json_yet_salvaged_into_an_object(text: str) -> None:
    import json

    with pytest.raises(ValueError):
        json.loads(text)
    data = decode_body(text)
    assert isinstance(data, dict)
    assert data["ResponseStatus"] in ("success", "fail")


@pytest.mark.parametrize(("text", "kind", "code", "words", "field"), SEED1_ERRORS)
def test_seed_001_email_failures_map_to_their_class_with_the_providers_words(
    text: str, kind: type, code: str, words: str, field: str | None
) -> None:
    # The seed's failures come with HTTP 400; the same body under 200 is a failure too.
    for status in (400, 200, 201):
        error = form_failure(reply(status, text), channel="email")
        assert isinstance(error, ProviderError)
        assert type(error) is kind
        assert error.code == code
        assert words in str(error)
        assert error.field == field


@pytest.mark.parametrize(("text", "kind", "code", "words", "field"), SEED2_ERRORS)
def test_seed_002_voice_failures_map_to_their_class_with_the_providers_words(
    text: str, kind: type, code: str, words: str, field: str | None
) -> None:
    error = form_failure(reply(400, text), channel="voice")
    assert isinstance(error, ProviderError)
    assert type(error) is kind
    assert error.code == code
    assert words in str(error)
    assert error.field == field


def test_seed_002_repeated_message_key_keeps_the_real_words() -> None:
    data = decode_body(SEED2_VOICE_CODE_102)
    assert data["Error"]["MessageEn"].strip() == "this ip Not authorized to using the API"


def test_seed_001_email_success_is_read_despite_the_missing_comma_and_trailing_commas() -> None:
    sent = reply(201, SEED1_EMAIL_SENT)
    assert form_failure(sent, channel="email") is None
    result = parse_form_sent(sent.data, ["a@example.com"])
    assert result.provider == "taqnyat"
    assert result.status == "sent"
    assert result.provider_message_id == "202"
    assert result.cost == Decimal("0")
    assert result.accepted == ("a@example.com",)
    assert result.raw["Data"]["MessageEn"] == "sent successfully"


def test_seed_002_voice_success_without_braces_is_read() -> None:
    sent = reply(201, SEED2_VOICE_SENT)
    assert form_failure(sent, channel="voice") is None
    result = parse_form_sent(sent.data, ["966500000000"])
    assert result.provider_message_id == "5452899970"
    assert result.cost == Decimal("0.216")
    assert result.rejected == ()
    assert result.accepted == ("966500000000",)
    assert result.raw["Data"]["msgId"] == "V-8"


@pytest.mark.parametrize("text", [SEED1_SYSTEM_STATUS, SEED2_SYSTEM_STATUS])
def test_seed_system_status_with_unquoted_keys_is_operational(text: str) -> None:
    status = parse_system_status(decode_body(text))
    assert status.operational is True
    assert status.services == ()
    assert status.description == "All Services are Operational"


@pytest.mark.parametrize("text", [SEED1_METHOD_NOT_ALLOWED, SEED2_METHOD_NOT_ALLOWED])
def test_seed_method_not_allowed_is_a_permanent_error(text: str) -> None:
    error = rest_failure(reply(405, text))
    assert isinstance(error, PermanentError)
    assert error.http_status == 405
    assert "Method Not Allowed" in str(error)


def test_salvage_falls_back_to_picking_known_fields_from_garbage() -> None:
    text = 'garbage {"ResponseStatus": fail ;; "ErrorCode": 104 ;; "MessageEn": "Invalid Bearer'
    text += ' Tokens" ]]] {{'
    data = decode_body(text)
    assert data["ResponseStatus"] == "fail"
    assert data["Error"] == {"ErrorCode": 104, "MessageEn": "Invalid Bearer Tokens"}
    assert isinstance(form_failure(reply(200, text), channel="email"), AccountError)


def test_salvage_keeps_an_empty_string_empty() -> None:
    data = decode_body('{"MessageAr":"", "MessageEn":" error msg"", "ErrorCode":17,}')
    assert data == {"MessageAr": "", "MessageEn": " error msg", "ErrorCode": 17}


# --- SMS replies (JSON, with quirks) -------------------------------------------------

SMS_SENT = (
    '{"statusCode":201,"messageId":5452899970123,"cost":0.026,"currency":"SAR",'
    '"totalCount":1,"msgLength":1,"accepted":"[966500000000,]","rejected":"[]"}'
)


def test_sms_reply_keeps_a_message_id_above_32_bits_exact() -> None:
    result = parse_sms_sent(decode_body(SMS_SENT))
    assert result.provider_message_id == "5452899970123"
    assert result.cost == Decimal("0.026")
    assert result.currency == "SAR"
    assert result.accepted == ("966500000000",)
    assert result.rejected == ()
    assert result.status == "sent"


def test_sms_reply_keeps_an_id_beyond_64_bits_exact() -> None:
    big = 2**70 + 1
    result = parse_sms_sent(decode_body(SMS_SENT.replace("5452899970123", str(big))))
    assert result.provider_message_id == str(big)


@pytest.mark.parametrize("cost", ['"0.026"', "0.026", "2.6e-2", '" 0.026 "'])
def test_sms_cost_as_string_or_number_is_the_same_decimal(cost: str) -> None:
    result = parse_sms_sent(decode_body(SMS_SENT.replace("0.026", cost, 1)))
    assert result.cost == Decimal("0.026")


def test_sms_reply_with_real_lists_and_string_id_is_read_alike() -> None:
    text = (
        '{"statusCode":201,"messageId":"5452899970123","cost":"0.052",'
        '"accepted":[966500000000,"966500000001"],"rejected":["999500000000"]}'
    )
    result = parse_sms_sent(decode_body(text))
    assert result.provider_message_id == "5452899970123"
    assert result.accepted == ("966500000000", "966500000001")
    assert result.rejected == ("999500000000",)


def test_sms_reply_rejecting_every_recipient_is_a_permanent_error() -> None:
    text = '{"statusCode":201,"messageId":1,"accepted":"[]","rejected":"[999500000000,]"}'
    with pytest.raises(PermanentError) as caught:
        parse_sms_sent(decode_body(text))
    assert caught.value.field == "recipients"
    assert "999500000000" not in str(caught.value)


def test_raw_record_is_json_native() -> None:
    import json

    result = parse_sms_sent(decode_body(SMS_SENT))
    assert json.loads(json.dumps(result.raw))["cost"] == 0.026
    assert plain({"a": [Decimal("1.5")]}) == {"a": [1.5]}


def test_result_repr_shows_no_recipients() -> None:
    result = parse_sms_sent(decode_body(SMS_SENT))
    assert "966500000000" not in repr(result)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[966500000000,]", ("966500000000",)),
        ("[966500000000,966500000001,]", ("966500000000", "966500000001")),
        ('["966500000000", "966500000001"]', ("966500000000", "966500000001")),
        ("[ ]", ()),
        ("[]", ()),
        ("", ()),
        (None, ()),
        ("966500000000", ("966500000000",)),
        ([966500000000, "966500000001"], ("966500000000", "966500000001")),
        (966500000000, ("966500000000",)),
    ],
)
def test_list_like_strings_with_trailing_commas(value: object, expected: tuple[str, ...]) -> None:
    assert list_like(value) == expected


@given(st.lists(st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True), max_size=20), st.booleans())
def test_list_like_reads_back_any_list_it_was_printed_from(numbers: list[str], trailing: bool) -> None:
    printed = "[" + ",".join(numbers) + ("," if trailing and numbers else "") + "]"
    assert list_like(printed) == tuple(numbers)


@given(st.integers(min_value=0, max_value=2**128))
def test_ids_of_any_size_survive_decoding_exactly(number: int) -> None:
    assert exact_id(decode_body(f'{{"messageId": {number}}}')["messageId"]) == str(number)


def test_exact_id_refuses_floats() -> None:
    with pytest.raises(TypeError):
        exact_id(5452899970123.0)
    assert exact_id(Decimal("5452899970123")) == "5452899970123"
    assert exact_id(" abc ") == "abc"
    assert exact_id("") is None
    assert exact_id(True) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.026", Decimal("0.026")),
        (0.026, Decimal("0.026")),
        (Decimal("0.026"), Decimal("0.026")),
        ("2044.000", Decimal("2044.000")),
        (3, Decimal(3)),
        ("1,234.5", Decimal("1234.5")),
        ("abc", None),
        ("NaN", None),
        (None, None),
        (True, None),
    ],
)
def test_money_from_strings_and_numbers(value: object, expected: Decimal | None) -> None:
    assert money(value) == expected


@given(st.text(max_size=300))
def test_decoding_never_raises_on_any_text(text: str) -> None:
    decode_body(text)


# --- non-JSON bodies -----------------------------------------------------------------

PROXY_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"
NGINX_PAGE = """<html>
<head><title>504 Gateway Time-out</title></head>
<body>
<center><h1>504 Gateway Time-out</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@pytest.mark.parametrize(
    ("page", "words"), [(PROXY_PAGE, "502 Bad Gateway"), (NGINX_PAGE, "504 Gateway Time-out")]
)
def test_proxy_pages_decode_to_nothing_and_are_summarised(page: str, words: str) -> None:
    answer = reply(502, page)
    assert answer.data is None
    assert answer.summary() == words


def test_empty_and_plain_text_bodies_decode_to_nothing() -> None:
    assert decode_body("") is None
    assert decode_body("   ") is None
    assert decode_body("Service Unavailable") is None
    assert page_summary("x" * 500, limit=10) == "x" * 10 + "..."


# --- Retry-After ---------------------------------------------------------------------

NOW = datetime(2030, 1, 31, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("-4", 0.0),
        ("Thu, 31 Jan 2030 09:00:30 GMT", 30.0),
        ("Thu, 31 Jan 2030 08:59:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_reply_reads_retry_after_whatever_the_header_case() -> None:
    assert reply(429, "{}", {"retry-after": "2"}).retry_after == 2.0


# --- Taqnyat account replies ---------------------------------------------------------


def test_balance_reply_keeps_three_decimals_and_reads_the_day_first_expiry() -> None:
    balance = parse_balance(
        decode_body(
            '{"statusCode":200,"accountStatus":"active","accountExpiryDate":"23-08-2031",'
            '"balance":"2044.000","currency":"SAR","points":0}'
        )
    )
    assert balance.balance == Decimal("2044.000")
    assert str(balance.balance) == "2044.000"
    assert balance.currency == "SAR"
    assert balance.account_status == "active"
    assert balance.expires_on == date(2031, 8, 23)
    assert balance.points == Decimal(0)


def test_senders_reply() -> None:
    senders = parse_senders(
        decode_body(
            '{"statusCode":201,"senders":[{"senderName":"HUDHUD","status":"active",'
            '"destination":"local"},{"senderName":"Old","status":"inactive"}]}'
        )
    )
    assert [s.name for s in senders] == ["HUDHUD", "Old"]
    assert senders[0].active and not senders[1].active
    assert senders[0].destination == "local"


def test_system_status_outage_lists_the_services_down() -> None:
    status = parse_system_status(
        decode_body('{"statusCode":200,"status":{"service":"sms,email, voice","description":"Maintenance"}}')
    )
    assert status.operational is False
    assert status.services == ("sms", "email", "voice")
    assert status.description == "Maintenance"


def test_scheduled_datetime_is_riyadh_time_with_its_offset_rounded_up_to_the_minute() -> None:
    assert schedule_text(datetime(2030, 1, 31, 6, 0, tzinfo=UTC)) == "2030-01-31T09:00+03:00"
    assert schedule_text(datetime(2030, 1, 31, 6, 0, 1, tzinfo=UTC)) == "2030-01-31T09:01+03:00"
    assert schedule_text(datetime(2030, 1, 31, 22, 59, 30, tzinfo=UTC)) == "2030-02-01T02:00+03:00"


# --- Taifa replies -------------------------------------------------------------------

EMAIL_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_taifa_send_reply_as_given() -> None:
    result = parse_send(
        decode_body(
            f'{{"id":"{EMAIL_ID}","status":"queued","message_id":"<x@govconnect.ke>",'
            '"rejection_reason":null}'
        )
    )
    assert (result.provider, result.provider_message_id, result.status) == ("taifa", EMAIL_ID, "queued")
    assert result.rejection_reason is None
    rejected = parse_send(
        {"id": EMAIL_ID, "status": "rejected", "rejection_reason": "recipient is on the suppression list"}
    )
    assert rejected.status == "rejected"
    assert rejected.rejection_reason == "recipient is on the suppression list"


def test_taifa_batch_reply() -> None:
    batch = parse_batch(
        decode_body(
            f'{{"total":2,"sent":1,"failed":1,"results":[{{"id":"{EMAIL_ID}","status":"queued",'
            '"rejection_reason":null},{"id":null,"status":"failed","rejection_reason":"bad to"}]}'
        )
    )
    assert (batch.total, batch.sent, batch.failed) == (2, 1, 1)
    assert batch.results[1].provider_message_id is None
    assert batch.results[1].rejection_reason == "bad to"


ITEM = {
    "id": EMAIL_ID,
    "from_address": "no-reply@govconnect.ke",
    "to_addresses": ["a@example.com", {"email": "b@example.com", "name": "B"}],
    "subject": "Hi",
    "status": "delivered",
    "tags": ["otp"],
    "scheduled_at": None,
    "created_at": "2030-01-31T09:00:00.123456Z",
    "sent_at": "2030-01-31T09:00:01+00:00",
    "delivered_at": "2030-01-31T09:00:02",
    "retry_of_id": None,
}


@pytest.mark.parametrize("key", ["items", "results", "data"])
def test_taifa_page_reply_under_any_of_its_keys(key: str) -> None:
    page = parse_page({key: [ITEM], "total": 41, "page": 2, "limit": 20}, parse_email, page=0, limit=20)
    assert (page.total, page.page, page.limit, page.has_more) == (41, 2, 20, False)
    email = page.items[0]
    assert email.to_addresses == ("a@example.com", "b@example.com")
    assert email.created_at == datetime(2030, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)
    assert email.delivered_at == datetime(2030, 1, 31, 9, 0, 2, tzinfo=UTC)
    assert email.tags == ("otp",)
    assert "a@example.com" not in repr(email)


def test_taifa_events_as_a_bare_list_or_under_events() -> None:
    event = {
        "id": "e1",
        "event_type": "delivered",
        "metadata": {"smtp": "250"},
        "created_at": "2030-01-31T09:00:02Z",
    }
    assert parse_events([event]) == parse_events({"events": [event]})
    (read,) = parse_events([event])
    assert (read.event_type, read.metadata, read.created_at) == (
        "delivered",
        {"smtp": "250"},
        timestamp("2030-01-31T09:00:02Z"),
    )


def test_taifa_validation_and_updates_replies() -> None:
    check = parse_validation(
        {"valid": False, "can_send": False, "issues": [{"field": "from_.email", "error": "not verified"}]}
    )
    assert not check.valid and not check.can_send
    assert check.issues[0].field == "from_.email"
    updates = parse_updates(
        {
            "items": [{"id": EMAIL_ID, "status": "sent", "updated_at": "2030-01-31T09:00:01Z"}],
            "next_since": "2030-01-31T09:00:01.000001Z",
        }
    )
    assert updates.items[0].status == "sent"
    assert updates.next_since == "2030-01-31T09:00:01.000001Z"


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (["body", "to", 0, "email"], "to[0].email"),
        (["body", "from_", "email"], "from_.email"),
        (["query", "limit"], "limit"),
        (["body"], None),
        ("to", None),
    ],
)
def test_fastapi_loc_names_the_field(loc: object, field: str | None) -> None:
    assert loc_field(loc) == field


def test_send_at_must_be_one_minute_to_thirty_days_ahead() -> None:
    assert send_at_text(NOW + timedelta(minutes=2), now=NOW) == "2030-01-31T09:02:00Z"
    assert send_at_text("2030-01-31T12:05:00+03:00", now=NOW) == "2030-01-31T09:05:00Z"
    for bad in (NOW + timedelta(seconds=30), NOW + timedelta(days=31), "tomorrow", "2030-02-01T09:00:00"):
        with pytest.raises(InvalidInput) as caught:
            send_at_text(bad, now=NOW)
        assert caught.value.field == "send_at"
