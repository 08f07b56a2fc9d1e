"""The sandbox answers the Taqnyat examples of seeds 000-002 (and PROVIDERS.md) over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.helpers import SANDBOX_TAQNYAT_TOKEN, SMS_201_FIELDS, Sandbox

AUTH = {"Authorization": f"Bearer {SANDBOX_TAQNYAT_TOKEN}"}
SMS = {"recipients": ["966500000000"], "body": "hello", "sender": "HUDHUD"}
MAIL = {
    "campaignName": "welcome",
    "subject": "Hello",
    "from": "noreply@hudhud.example",
    "to": ["one@example.com"],
    "msg": "<html><body><b>test</b></body></html>",
}
VOICE = {
    "audioUrl": "https://cdn.example.com/hello.mp3",
    "callerId": "966500000001",
    "recipients": ["966500000000"],
}


def sms(sandbox: Sandbox, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/v1/messages", json=body, headers=AUTH if headers is None else headers, timeout=10
    )


def mail(sandbox: Sandbox, fields: dict[str, Any], token: str = SANDBOX_TAQNYAT_TOKEN) -> requests.Response:
    return requests.post(f"{sandbox.url}/mailSend.php", json={**fields, "bearerTokens": token}, timeout=10)


def voice(sandbox: Sandbox, fields: dict[str, Any], token: str = SANDBOX_TAQNYAT_TOKEN) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/voiceSend.php", json=fields, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def balance(sandbox: Sandbox) -> str:
    reply = requests.get(f"{sandbox.url}/account/balance", headers=AUTH, timeout=10)
    return str(reply.json()["balance"])


# system status (seed 002)


@pytest.mark.parametrize("path", ["/system/status", "/system/status/"])
def test_system_status(fresh_sandbox: Sandbox, path: str) -> None:
    reply = requests.get(fresh_sandbox.url + path, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {
        "statusCode": 200,
        "status": {"service": "none", "description": "All Services are Operational"},
    }


def test_system_status_wrong_method_is_405(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(f"{fresh_sandbox.url}/system/status", timeout=10)
    assert reply.status_code == 405
    assert reply.json() == {"statusCode": 405, "message": "Method Not Allowed"}


# SMS


def test_sms_201_shape(fresh_sandbox: Sandbox) -> None:
    reply = sms(fresh_sandbox, SMS)
    assert reply.status_code == 201
    body = reply.json()
    assert set(body) == SMS_201_FIELDS
    assert body["statusCode"] == 201
    assert isinstance(body["messageId"], int) and body["messageId"] > 2**32
    assert body["cost"] == 0.026 and body["currency"] == "SAR"
    assert body["totalCount"] == 1 and body["msgLength"] == 1
    assert body["accepted"] == "[966500000000,]"
    assert body["rejected"] == "[]"
    assert balance(fresh_sandbox) == "2043.974"


def test_sms_rejects_bad_and_unassigned_numbers(fresh_sandbox: Sandbox) -> None:
    numbers = ["966500000000", "966500000001", "999500000000", "12345"]
    body = sms(fresh_sandbox, {**SMS, "recipients": numbers}).json()
    assert body["accepted"] == "[966500000000,966500000001,]"
    assert body["rejected"] == "[999500000000,12345,]"
    assert body["totalCount"] == 2 and body["cost"] == 0.052


def test_sms_without_valid_recipient_is_code_15(fresh_sandbox: Sandbox) -> None:
    reply = sms(fresh_sandbox, {**SMS, "recipients": ["999500000000", "+966500000000"]})
    assert reply.status_code == 400
    assert reply.json() == {
        "statusCode": 400,
        "message": "15",
        "reason": "Mobile(s) number(s) is not specified or incorrect",
    }


def test_sms_long_arabic_body_counts_parts(fresh_sandbox: Sandbox) -> None:
    assert sms(fresh_sandbox, {**SMS, "body": "مرحبا" * 20}).json()["msgLength"] == 2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_sms_bad_token_is_401(fresh_sandbox: Sandbox, headers: dict[str, str]) -> None:
    reply = sms(fresh_sandbox, SMS, headers)
    assert reply.status_code == 401
    assert reply.json() == {"statusCode": 401, "message": "invalid credentials information"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": ""}, "body is required"),
        ({"body": None}, "body is required"),
        ({"sender": ""}, "sender is required"),
    ],
)
def test_sms_missing_fields(fresh_sandbox: Sandbox, change: dict[str, Any], message: str) -> None:
    reply = sms(fresh_sandbox, {**SMS, **change})
    assert reply.status_code == 400
    assert reply.json() == {"statusCode": 400, "message": message}


def test_sms_unknown_sender_is_code_14(fresh_sandbox: Sandbox) -> None:
    reply = sms(fresh_sandbox, {**SMS, "sender": "NOBODY"})
    assert reply.json() == {"statusCode": 400, "message": "14", "reason": "Invalid sender"}


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        ("sandbox-api-disabled", "101", "sending by API is disabled"),
        ("sandbox-ip-blocked", "102", "this ip Not authorized to using the API"),
    ],
)
def test_sms_special_tokens(fresh_sandbox: Sandbox, token: str, code: str, reason: str) -> None:
    reply = sms(fresh_sandbox, SMS, {"Authorization": f"Bearer {token}"})
    assert reply.status_code == 400
    assert reply.json() == {"statusCode": 400, "message": code, "reason": reason}


def test_sms_api_disabled_knob(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(api_disabled=True)
    assert sms(fresh_sandbox, SMS).json()["message"] == "101"


def test_sms_balance_codes(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(balance="0.030")
    assert sms(fresh_sandbox, {**SMS, "recipients": ["966500000000", "966500000001"]}).json() == {
        "statusCode": 400,
        "message": "3",
        "reason": "Your balance is not enough",
    }
    assert sms(fresh_sandbox, SMS).status_code == 201
    fresh_sandbox.knobs(balance=0)
    reply = sms(fresh_sandbox, SMS)
    assert reply.status_code == 400
    assert reply.json() == {"statusCode": 400, "message": "2", "reason": "Your balance is 0"}


def test_sms_cost_as_string_and_price(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(cost_as_string=True, price_sms=0.05)
    assert sms(fresh_sandbox, SMS).json()["cost"] == "0.050"


def test_scheduled_sms_delete_refunds(fresh_sandbox: Sandbox) -> None:
    body = {**SMS, "scheduledDatetime": "2099-01-01T10:30", "deleteId": "d-1", "smsId": "s-1"}
    assert sms(fresh_sandbox, body).status_code == 201
    assert balance(fresh_sandbox) == "2043.974"
    reply = requests.delete(
        f"{fresh_sandbox.url}/v1/messages/delete", params={"deleteId": "d-1"}, headers=AUTH, timeout=10
    )
    assert reply.status_code == 201
    assert reply.json() == {"statusCode": 201, "message": "Deleted successfully"}
    assert balance(fresh_sandbox) == "2044.000"
    again = requests.delete(
        f"{fresh_sandbox.url}/v1/messages/delete", params={"deleteId": "d-1"}, headers=AUTH, timeout=10
    )
    assert again.status_code == 422
    assert again.json() == {"statusCode": 422, "message": "deleteId not found"}
    entry = fresh_sandbox.sends()[0]
    assert entry["delete_id"] == "d-1" and entry["sms_id"] == "s-1"


def test_scheduled_sms_delete_with_json_body(fresh_sandbox: Sandbox) -> None:
    body = {**SMS, "scheduledDatetime": "2099-01-01T10:30:00+03:00", "deleteId": 77}
    sms(fresh_sandbox, body)
    reply = requests.delete(
        f"{fresh_sandbox.url}/v1/messages", json={"deleteId": 77}, headers=AUTH, timeout=10
    )
    assert reply.status_code == 201


def test_sent_sms_cannot_be_deleted(fresh_sandbox: Sandbox) -> None:
    sms(fresh_sandbox, {**SMS, "deleteId": "now"})
    reply = requests.delete(
        f"{fresh_sandbox.url}/v1/messages/delete", params={"deleteId": "now"}, headers=AUTH, timeout=10
    )
    assert reply.status_code == 422


def test_account_balance(fresh_sandbox: Sandbox) -> None:
    reply = requests.get(f"{fresh_sandbox.url}/account/balance", headers=AUTH, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {
        "statusCode": 200,
        "accountStatus": "active",
        "accountExpiryDate": "23-08-2031",
        "balance": "2044.000",
        "currency": "SAR",
        "points": 0,
    }
    assert requests.get(f"{fresh_sandbox.url}/account/balance", timeout=10).status_code == 401


def test_senders(fresh_sandbox: Sandbox) -> None:
    reply = requests.get(f"{fresh_sandbox.url}/v1/messages/senders", headers=AUTH, timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body["statusCode"] == 200
    assert {"senderName": "HUDHUD", "status": "active", "destination": "local"} in body["senders"]
    assert "Taqnyat" in [sender["senderName"] for sender in body["senders"]]


def test_sms_is_recorded(fresh_sandbox: Sandbox) -> None:
    message_id = sms(fresh_sandbox, {**SMS, "smsId": "abc"}).json()["messageId"]
    [entry] = fresh_sandbox.sends()
    assert entry["provider"] == "taqnyat" and entry["channel"] == "sms"
    assert entry["provider_message_id"] == message_id
    assert entry["recipients"] == ["966500000000"] and entry["body"] == "hello"
    assert entry["sms_id"] == "abc"


# mailSend.php (seeds 000 and 001)


def assert_mail_success(reply: requests.Response, price: str = "0.010") -> None:
    assert reply.status_code == 201
    body = reply.json()
    assert body["status"] == 1 and body["ResponseStatus"] == "success" and body["Error"] is None
    data = body["Data"]
    assert isinstance(data["msgId"], int) and data["result"] == 1
    assert data["MessageAr"] == "تم الإرسال" and data["MessageEn"] == "sent successfully"
    assert data["price"] == price


def test_mail_send_json(fresh_sandbox: Sandbox) -> None:
    assert_mail_success(mail(fresh_sandbox, MAIL))
    [entry] = fresh_sandbox.sends()
    assert entry["channel"] == "email" and entry["subject"] == "Hello"
    assert entry["recipients"] == ["one@example.com"]


def test_mail_send_form(fresh_sandbox: Sandbox) -> None:
    form = {**MAIL, "to": "one@example.com,two@example.com", "bearerTokens": SANDBOX_TAQNYAT_TOKEN}
    reply = requests.post(f"{fresh_sandbox.url}/mailSend.php", data=form, timeout=10)
    assert_mail_success(reply, "0.020")


def test_mail_send_query_string(fresh_sandbox: Sandbox) -> None:
    query = (
        f"bearerTokens={SANDBOX_TAQNYAT_TOKEN}&campaignName=your campain name"
        "&subject= youe email subject&from=mail@example.com"
        "&to=mail1@example.com,mail2@example.com&msg=<html><body><b>test</b></body></html>"
    )
    reply = requests.get(f"{fresh_sandbox.url}/mailSend.php?{query}", timeout=10)
    assert_mail_success(reply, "0.020")
    assert fresh_sandbox.sends()[0]["recipients"] == ["mail1@example.com", "mail2@example.com"]


def test_mail_send_header_token(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(f"{fresh_sandbox.url}/mailSend.php/", json=MAIL, headers=AUTH, timeout=10)
    assert_mail_success(reply)


MAIL_CASES: list[tuple[int, dict[str, Any], str, str, str]] = [
    (2, {}, "0", " الرصيد = 0", " Your balance is 0"),
    (3, {}, "0.005", " الرصيد غير كافي", " Your balance is not enough"),
    (14, {"from": "not-an-address"}, "", " خطا في المرسل", " error From"),
    (14, {"from": "news@unverified.example"}, "", " خطا في المرسل", " error From"),
    (
        15,
        {"to": []},
        "",
        " البريد الالكتروني المرسل لها غير صحيحه أو فارغه",
        " Email is not specified or incorrect",
    ),
    (
        15,
        {"to": ["ok@example.com", "broken"]},
        "",
        " البريد الالكتروني المرسل لها غير صحيحه أو فارغه",
        " Email is not specified or incorrect",
    ),
    (16, {"subject": " "}, "", " يوجد خطا في عنوان الرساله", " error subject"),
    (17, {"msg": ""}, "", " يوجد خطا في الرساله", " error msg"),
]


def assert_form_error(reply: requests.Response, code: int, arabic: str, english: str) -> None:
    """Taqnyat's mail and voice endpoints answer a bad form with one shape."""
    assert reply.status_code == 400
    assert reply.json() == {
        "status": 1,
        "ResponseStatus": "fail",
        "Data": None,
        "Error": {"ErrorCode": code, "MessageAr": arabic, "MessageEn": english},
    }


@pytest.mark.parametrize(("code", "change", "balance_value", "arabic", "english"), MAIL_CASES)
def test_mail_error_codes(
    fresh_sandbox: Sandbox, code: int, change: dict[str, Any], balance_value: str, arabic: str, english: str
) -> None:
    if balance_value:
        fresh_sandbox.knobs(balance=balance_value)
    reply = mail(fresh_sandbox, {**MAIL, **change})
    assert_form_error(reply, code, arabic, english)
    assert fresh_sandbox.sends() == []


@pytest.mark.parametrize(
    ("token", "code", "english"),
    [
        ("sandbox-api-disabled", 101, "Invalid Bearer Tokens"),
        ("sandbox-ip-blocked", 102, " this ip 10.0.0.1 Not authorized to using the API"),
        ("wrong-token", 104, "Invalid Bearer Tokens"),
        ("", 104, "Invalid Bearer Tokens"),
    ],
)
def test_mail_token_codes(fresh_sandbox: Sandbox, token: str, code: int, english: str) -> None:
    reply = mail(fresh_sandbox, MAIL, token)
    assert reply.status_code == 400
    error = reply.json()["Error"]
    assert error["ErrorCode"] == code and error["MessageEn"] == english


def test_mail_fail_inside_200(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(form_fail_http_status=200)
    reply = mail(fresh_sandbox, {**MAIL, "subject": ""})
    assert reply.status_code == 200
    assert reply.json()["ResponseStatus"] == "fail"


# voiceSend.php (seed 002)


def test_voice_success(fresh_sandbox: Sandbox) -> None:
    reply = voice(fresh_sandbox, VOICE)
    assert reply.status_code == 201
    body = reply.json()
    assert body["status"] == 1 and body["ResponseStatus"] == "success"
    assert isinstance(body["messageId"], int) and body["messageId"] > 2**32
    data = body["Data"]
    assert data["msgId"].startswith("V-") and data["result"] == "1"
    assert data["MessageAr"] == "تم الارسال" and data["MessageEn"] == "sent successfully"
    assert data["duration"] == 3 and data["dtmfTimeout"] == "0" and data["connectionFee"] == 3
    assert data["price"] == "0.216" and data["rejectedNumber"] == "[]" and data["Error"] == "null"
    assert fresh_sandbox.sends()[0]["channel"] == "voice"


def test_voice_form_and_rejected_number(fresh_sandbox: Sandbox) -> None:
    form = {**VOICE, "recipients": "966500000000,999500000000", "bearerTokens": SANDBOX_TAQNYAT_TOKEN}
    reply = requests.post(f"{fresh_sandbox.url}/voiceSend.php", data=form, timeout=10)
    assert reply.status_code == 201
    assert reply.json()["Data"]["rejectedNumber"] == "[999500000000,]"


VOICE_CASES: list[tuple[int, dict[str, Any], str, str, str]] = [
    (2, {}, "0", "الرصيد = 0", "Your balance is 0"),
    (3, {}, "0.1", "الرصيد غير كافي", "Your balance is not enough"),
    (14, {"callerId": "+9665"}, "", "هوية المتصل غير صحيحة", "Invalid CallerId"),
    (
        15,
        {"recipients": []},
        "",
        "الأرقام المرسل لها غير صحيحة أو فارغة",
        "Mobile(s) number(s) is not specified or incorrect",
    ),
    (
        15,
        {"recipients": ["966500000000", "12"]},
        "",
        "الأرقام المرسل لها غير صحيحة أو فارغة",
        "Mobile(s) number(s) is not specified or incorrect",
    ),
    (
        17,
        {"audioUrl": "ftp://cdn.example.com/a.mp3"},
        "",
        "يوجد خطأ في الارسال او الملف الصوتي",
        "error msg or error audio file",
    ),
    (
        17,
        {"audioUrl": "https://cdn.example.com/a.ogg"},
        "",
        "يوجد خطأ في الارسال او الملف الصوتي",
        "error msg or error audio file",
    ),
]


@pytest.mark.parametrize(("code", "change", "balance_value", "arabic", "english"), VOICE_CASES)
def test_voice_error_codes(
    fresh_sandbox: Sandbox, code: int, change: dict[str, Any], balance_value: str, arabic: str, english: str
) -> None:
    if balance_value:
        fresh_sandbox.knobs(balance=balance_value)
    reply = voice(fresh_sandbox, {**VOICE, **change})
    assert_form_error(reply, code, arabic, english)


@pytest.mark.parametrize(
    ("token", "code", "english"),
    [
        ("sandbox-api-disabled", 101, "sending by API is disabled"),
        ("sandbox-ip-blocked", 102, "this ip Not authorized to using the API"),
        ("wrong-token", 104, "Invalid Bearer Tokens"),
    ],
)
def test_voice_token_codes(fresh_sandbox: Sandbox, token: str, code: int, english: str) -> None:
    error = voice(fresh_sandbox, VOICE, token).json()["Error"]
    assert error["ErrorCode"] == code and error["MessageEn"] == english


def test_voice_query_string(fresh_sandbox: Sandbox) -> None:
    params = {**VOICE, "recipients": "966500000000", "bearerTokens": SANDBOX_TAQNYAT_TOKEN}
    reply = requests.get(f"{fresh_sandbox.url}/voiceSend.php", params=params, timeout=10)
    assert reply.status_code == 201


def test_unknown_path_is_json_404(fresh_sandbox: Sandbox) -> None:
    reply = requests.get(f"{fresh_sandbox.url}/v1/nothing", headers=AUTH, timeout=10)
    assert reply.status_code == 404
    assert reply.json() == {"statusCode": 404, "message": "Not Found"}


def test_mail_send_php_style_list(fresh_sandbox: Sandbox) -> None:
    form = [
        ("bearerTokens", SANDBOX_TAQNYAT_TOKEN),
        ("campaignName", "c"),
        ("subject", "s"),
        ("from", "mail@example.com"),
        ("to[]", "a@example.com"),
        ("to[]", "b@example.com"),
        ("msg", "hi"),
    ]
    reply = requests.post(f"{fresh_sandbox.url}/mailSend.php", data=form, timeout=10)
    assert_mail_success(reply, "0.020")


# the knob sms_error_shape

SMS_ERROR_CASES = [
    # (knobs, request change, headers, code, words)
    ({"balance": 0}, {}, None, "2", "Your balance is 0"),
    (
        {"balance": "0.030"},
        {"recipients": ["966500000000", "966500000001"]},
        None,
        "3",
        "Your balance is not enough",
    ),
    ({}, {"sender": "NOBODY"}, None, "14", "Invalid sender"),
    ({}, {"recipients": ["999500000000"]}, None, "15", "Mobile(s) number(s) is not specified or incorrect"),
    ({"api_disabled": True}, {}, None, "101", "sending by API is disabled"),
    (
        {},
        {},
        {"Authorization": "Bearer sandbox-ip-blocked"},
        "102",
        "this ip Not authorized to using the API",
    ),
]


@pytest.mark.parametrize(("knobs", "change", "headers", "code", "words"), SMS_ERROR_CASES)
@pytest.mark.parametrize("shape", ["code", "words", "reason"])
def test_sms_error_shape_knob(
    fresh_sandbox: Sandbox,
    shape: str,
    knobs: dict[str, Any],
    change: dict[str, Any],
    headers: dict[str, str] | None,
    code: str,
    words: str,
) -> None:
    fresh_sandbox.knobs(sms_error_shape=shape, **knobs)
    reply = sms(fresh_sandbox, {**SMS, **change}, headers)
    assert reply.status_code == 400
    expected = {
        "code": {"statusCode": 400, "message": code, "reason": words},
        "words": {"statusCode": 400, "message": words},
        "reason": {"message": code, "reason": words},
    }[shape]
    assert reply.json() == expected
    assert fresh_sandbox.sends() == []


def test_sms_error_shape_defaults_to_code_and_comes_back_on_reset(fresh_sandbox: Sandbox) -> None:
    assert fresh_sandbox.knobs()["sms_error_shape"] == "code"
    fresh_sandbox.knobs(sms_error_shape="words")
    fresh_sandbox.reset()
    assert fresh_sandbox.knobs()["sms_error_shape"] == "code"


@pytest.mark.parametrize("value", ["text", "", None, 1, True])
def test_sms_error_shape_refuses_other_values(fresh_sandbox: Sandbox, value: object) -> None:
    reply = requests.post(f"{fresh_sandbox.url}/_sandbox/knobs", json={"sms_error_shape": value}, timeout=10)
    assert reply.status_code == 400
    assert "sms_error_shape" in reply.json()["error"]
    assert fresh_sandbox.knobs()["sms_error_shape"] == "code"


def test_sms_error_shape_leaves_unnumbered_errors_and_sends_alone(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(sms_error_shape="words")
    assert sms(fresh_sandbox, {**SMS, "body": ""}).json() == {
        "statusCode": 400,
        "message": "body is required",
    }
    assert sms(fresh_sandbox, SMS, {}).json() == {
        "statusCode": 401,
        "message": "invalid credentials information",
    }
    assert sms(fresh_sandbox, SMS).status_code == 201
