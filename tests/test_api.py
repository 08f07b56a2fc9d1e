"""The HTTP API against a real `hudhud api` process and a real redis-server: keys, every
call's answers, bad input named and nothing recorded, the body size limit, the OpenAPI
document. No worker runs here: what a send records is read from the ledger."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import pytest
import requests

from hudhud.worker.ledger import keys
from tests.helpers import free_port
from tests.stack import Stack, idle_stack

APP_KEY = "k-app-6f1c2e0b9d4a"
OPS_KEY = "k-ops-93b7d5a1c8e2"
KEYS = f"shop:{APP_KEY},ops:{OPS_KEY}"
SMALL_LIMIT = 4 * 1024 * 1024
NUMBER = "966500000321"
BODY_TEXT = "your code is 6614"
ADDRESS = "amina.api@example.com"


class Api(requests.Session):
    """A client of one `hudhud api` process: paths are relative to its base URL."""

    def __init__(self, base: str, key: str | None) -> None:
        super().__init__()
        self.base = base
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        target = url.decode() if isinstance(url, bytes) else url
        kwargs.setdefault("timeout", 30)
        return super().request(
            method, self.base + target if target.startswith("/") else target, *args, **kwargs
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with idle_stack(tmp_path_factory.mktemp("api")) as made:
        yield made


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    env = {"HUDHUD_API_KEYS": KEYS, "HUDHUD_CALLBACK_HOSTS": "hooks.example.com"}
    with Api(stack.start_api(extra_env=env), APP_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def small(stack: Stack) -> Iterator[Api]:
    """An API process whose body limit is SMALL_LIMIT."""
    env = {"HUDHUD_API_KEYS": KEYS, "HUDHUD_API_MAX_BODY": str(SMALL_LIMIT)}
    with Api(stack.start_api("api-small", extra_env=env), APP_KEY) as client:
        yield client


def url(api: Api, path: str) -> str:
    return api.base + path


def records(stack: Stack) -> int:
    return sum(1 for _ in stack.redis.scan_iter(keys.msg_key("*"), count=1000))


def error_of(answer: requests.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "message"}, body
    return dict(body["error"])


# --- keys ------------------------------------------------------------------------------------


def test_a_call_needs_one_of_the_configured_keys(stack: Stack, api: Api) -> None:
    sms = {"to": [NUMBER], "body": BODY_TEXT}
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {APP_KEY}x"},
        {"Authorization": f"Basic {base64.b64encode(f'shop:{APP_KEY}'.encode()).decode()}"},
        {"Authorization": f"Token {APP_KEY}"},
    ):
        before = records(stack)
        answer = requests.post(url(api, "/v1/messages/sms"), json=sms, headers=headers, timeout=10)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert error_of(answer)["field"] == "authorization"
        assert records(stack) == before, "nothing recorded"
    assert requests.get(url(api, "/v1/messages/x"), timeout=10).status_code == 401
    for key in (APP_KEY, OPS_KEY):
        answer = requests.post(
            url(api, "/v1/messages/sms"), json=sms, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert answer.status_code == 202, answer.text


def test_health_documents_and_webhooks_need_no_key(stack: Stack, api: Api) -> None:
    assert requests.get(url(api, "/healthz"), timeout=10).json() == {"status": "ok"}
    assert requests.get(url(api, "/readyz"), timeout=10).status_code == 200
    assert requests.get(url(api, "/openapi.json"), timeout=10).status_code == 200
    docs = requests.get(url(api, "/docs"), timeout=10)
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "/openapi.json" in docs.text
    unknown = requests.post(url(api, "/webhooks/nobody"), data=b"{}", timeout=10)
    assert unknown.status_code == 404 and error_of(unknown)["field"] == "provider"


def test_no_configured_key_refuses_every_call(stack: Stack) -> None:
    base = stack.start_api("api-open", extra_env={"HUDHUD_API_KEYS": ""})
    answer = requests.post(
        f"{base}/v1/messages/sms",
        json={"to": [NUMBER], "body": BODY_TEXT},
        headers={"Authorization": "Bearer "},
        timeout=10,
    )
    assert answer.status_code == 401 and error_of(answer)["field"] == "authorization"
    assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
    log = stack.log("api-open").read_text()
    assert log.count("HUDHUD_API_KEYS is not set") == 1, log


def test_a_wrong_keys_setting_stops_the_api_naming_the_variable(stack: Stack) -> None:
    stack.env["HUDHUD_API_KEYS"] = "shop:fine-key-1,just-a-key-without-a-name"
    try:
        proc = stack._spawn("api-bad", ["api", "--host", "127.0.0.1", "--port", str(free_port())])
    finally:
        del stack.env["HUDHUD_API_KEYS"]
    assert proc.wait(timeout=60) != 0
    log = stack.log("api-bad").read_text()
    assert "HUDHUD_API_KEYS is invalid: entry 2 is not name:key" in log, log
    assert "just-a-key-without-a-name" not in log and "fine-key-1" not in log


# --- sends -----------------------------------------------------------------------------------


def test_a_send_on_each_channel_is_recorded_and_readable(stack: Stack, api: Api) -> None:
    attachment = {"filename": "r.txt", "content_base64": base64.b64encode(b"receipt").decode()}
    sends = {
        "sms": {"to": [NUMBER], "body": BODY_TEXT, "reference": "order-81"},
        "voice": {"to": NUMBER, "audio_url": "https://example.com/a.mp3"},
        "email": {
            "to": [ADDRESS],
            "subject": "Your receipt",
            "text": "thanks",
            "html": "<p>thanks</p>",
            "from": "shop@example.com",
            "cc": ["cc.api@example.com"],
            "tags": ["receipts"],
            "headers": {"X-Order": "81"},
            "attachments": [attachment],
        },
    }
    for channel, fields in sends.items():
        answer = api.post(f"/v1/messages/{channel}", json=fields, timeout=10)
        assert answer.status_code == 202, answer.text
        receipt = answer.json()
        assert set(receipt) == {"id", "status"} and receipt["status"] == "queued"
        assert "Idempotency-Replay" not in answer.headers
        shown = api.get(f"/v1/messages/{receipt['id']}", timeout=10)
        assert shown.status_code == 200
        record = shown.json()
        assert record == json.loads(json.dumps(stack.hudhud.status(receipt["id"]))), "as status --json"
        assert record["channel"] == channel and record["status"] == "queued"
        for secret in (NUMBER, BODY_TEXT, ADDRESS):
            assert secret not in shown.text, "the record shows no recipient or body"
    assert stack.ledger.get(receipt["id"])["channel"] == "email"


def test_a_scheduled_send_is_cancelled_once(stack: Stack, api: Api) -> None:
    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    sent = api.post(
        url(api, "/v1/messages/sms"), json={"to": [NUMBER], "body": "later", "at": at}, timeout=10
    )
    assert sent.status_code == 202 and sent.json()["status"] == "scheduled"
    message_id = sent.json()["id"]
    cancelled = api.post(f"/v1/messages/{message_id}/cancel", timeout=10)
    assert cancelled.status_code == 200 and cancelled.json() == {"id": message_id, "status": "cancelled"}
    again = api.post(f"/v1/messages/{message_id}/cancel", timeout=10)
    assert again.status_code == 409
    assert error_of(again) == {
        "field": "id",
        "message": f"message {message_id} is cancelled: only scheduled or queued messages can be cancelled",
    }
    assert api.get(f"/v1/messages/{message_id}", timeout=10).json()["status"] == "cancelled"


def test_an_unknown_message_is_404_and_a_bad_id_422(stack: Stack, api: Api) -> None:
    for call in ("", "/cancel", "/retry"):
        method = api.get if call == "" else api.post
        missing = method(f"/v1/messages/no-such-message{call}", timeout=10)
        assert missing.status_code == 404, call
        assert error_of(missing) == {"field": "id", "message": "no message with id no-such-message"}
        bad = method(f"/v1/messages/a%20b{call}", timeout=10)
        assert bad.status_code == 422 and error_of(bad)["field"] == "id"


def test_only_an_email_its_provider_can_retry_is_retried(stack: Stack, api: Api) -> None:
    sent = api.post("/v1/messages/sms", json={"to": [NUMBER], "body": BODY_TEXT}, timeout=10)
    refused = api.post(f"/v1/messages/{sent.json()['id']}/retry", timeout=10)
    assert refused.status_code == 409
    assert "only those can be retried" in error_of(refused)["message"]


BAD_SENDS = [
    ("sms", {"to": ["12"], "body": BODY_TEXT}, "to[0]"),
    ("sms", {"to": [NUMBER, "+966500000000"], "body": BODY_TEXT}, "to[1]"),
    ("sms", {"to": [NUMBER]}, "body"),
    ("sms", {"body": BODY_TEXT}, "to"),
    ("sms", {"to": [NUMBER], "body": BODY_TEXT, "colour": "red"}, "colour"),
    ("sms", {"to": [NUMBER], "body": BODY_TEXT, "at": "2026-01-01T10:00:00"}, "at"),
    ("sms", {"to": [NUMBER], "body": BODY_TEXT, "reference": "two\nlines"}, "reference"),
    ("sms", {"to": [NUMBER], "body": BODY_TEXT, "callback_url": "https://evil.example/x"}, "callback_url"),
    ("email", {"to": ["not-an-address"], "subject": "s", "text": "t"}, "to[0]"),
    ("email", {"to": [ADDRESS], "subject": "s"}, "text"),
    ("email", {"to": [ADDRESS], "subject": "s", "text": "t", "cc": ["x@"]}, "cc[0]"),
    (
        "email",
        {
            "to": [ADDRESS],
            "subject": "s",
            "text": "t",
            "attachments": [{"filename": "a", "content_base64": "%%"}],
        },
        "attachments[0].content_base64",
    ),
    ("voice", {"to": [NUMBER], "audio_url": "not a url"}, "audio_url"),
]


@pytest.mark.parametrize(("channel", "fields", "field"), BAD_SENDS)
def test_bad_input_is_422_naming_the_field_and_records_nothing(
    stack: Stack, api: Api, channel: str, fields: dict[str, Any], field: str
) -> None:
    before = records(stack)
    answer = api.post(f"/v1/messages/{channel}", json=fields, timeout=10)
    assert answer.status_code == 422, answer.text
    problem = error_of(answer)
    assert problem["field"] == field
    for secret in (NUMBER, ADDRESS, BODY_TEXT, "+966500000000", "not-an-address"):
        assert secret not in problem["message"]
    assert records(stack) == before, "nothing recorded"


def test_a_body_that_is_not_a_json_object_is_refused(stack: Stack, api: Api) -> None:
    before = records(stack)
    target = url(api, "/v1/messages/sms")
    json_type = {"Content-Type": "application/json"}
    for raw, message in (
        (b"{not json", "is not valid JSON"),
        (b'{"to": ["966500000321"], "body": NaN}', "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"", "is not valid JSON"),
        (b'["966500000321"]', "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ):
        answer = api.post(target, data=raw, headers=json_type, timeout=10)
        assert answer.status_code == 422 and error_of(answer) == {"field": "body", "message": message}, raw
    body = json.dumps({"to": [NUMBER], "body": BODY_TEXT})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        answer = api.post(target, data=body.encode(), headers=headers, timeout=10)
        assert answer.status_code == 415, content_type
        assert error_of(answer) == {"field": "content-type", "message": "must be application/json"}
    assert records(stack) == before
    typed = api.post(
        target, data=body, headers={"Content-Type": "application/json; charset=utf-8"}, timeout=10
    )
    assert typed.status_code == 202


# --- batches and campaigns -------------------------------------------------------------------


def test_a_batch_is_checked_whole_before_anything_is_recorded(stack: Stack, api: Api) -> None:
    items = [{"to": [f"9665000010{n:02d}"], "body": f"batch {n}"} for n in range(6)]
    before = records(stack)
    bad = [*items[:3], {"to": ["123"], "body": "x"}, *items[3:]]
    refused = api.post("/v1/messages/batch", json={"channel": "sms", "messages": bad}, timeout=10)
    assert refused.status_code == 422 and error_of(refused)["field"] == "messages[3].to[0]"
    for body, field in (
        ({"channel": "fax", "messages": items}, "channel"),
        ({"channel": "sms"}, "messages"),
        ({"channel": "sms", "messages": []}, "messages"),
        ({"channel": "sms", "messages": {"to": NUMBER}}, "messages"),
        ({"channel": "sms", "messages": [*items, "text"]}, "messages[6]"),
        ({"channel": "sms", "messages": items, "extra": 1}, "extra"),
    ):
        answer = api.post("/v1/messages/batch", json=body, timeout=10)
        assert answer.status_code == 422 and error_of(answer)["field"] == field, body
    assert records(stack) == before
    answer = api.post("/v1/messages/batch", json={"channel": "sms", "messages": items}, timeout=10)
    assert answer.status_code == 202, answer.text
    ids = answer.json()["ids"]
    assert set(answer.json()) == {"ids"} and len(set(ids)) == 6
    assert records(stack) == before + 6
    assert [stack.ledger.get(i)["status"] for i in ids] == ["queued"] * 6


def test_a_campaign_reaches_every_recipient_in_batches(stack: Stack, api: Api) -> None:
    to = [f"9665000020{n:02d}" for n in range(12)]
    fields = {
        "channel": "sms",
        "to": [*to, to[0]],
        "body": "sale",
        "reference": "spring-sale",
        "callback_url": "https://hooks.example.com/hudhud",
    }
    before = records(stack)
    bad = api.post("/v1/campaigns", json={**fields, "to": [to[0], to[1], "12"]}, timeout=10)
    assert bad.status_code == 422 and error_of(bad)["field"] == "to[2]"
    no_channel = api.post("/v1/campaigns", json={"to": to, "body": "x"}, timeout=10)
    assert no_channel.status_code == 422 and error_of(no_channel)["field"] == "channel"
    assert records(stack) == before
    answer = api.post("/v1/campaigns", json=fields, timeout=10)
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["recipients"] == 12 and receipt["batches"] >= 1 and receipt["status"] == "queued"
    shown = api.get(f"/v1/messages/{receipt['id']}", timeout=10).json()
    assert shown["kind"] == "campaign" and shown["recipients"] == 12
    assert shown["reference"] == "spring-sale"
    batch = stack.ledger.get(f"{receipt['id']}.0")
    assert batch["reference"] == "spring-sale", "a campaign's batches carry its reference"
    assert batch["callback_url"] == "https://hooks.example.com/hudhud", "and its callback URL"


# --- Redis unavailable -------------------------------------------------------------------------


def test_a_send_while_redis_is_down_is_503_with_retry_after(stack: Stack) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    base = stack.start_api("api-dead", extra_env={"HUDHUD_API_KEYS": KEYS, "HUDHUD_REDIS_URL": dead})
    answer = requests.post(
        f"{base}/v1/messages/sms",
        json={"to": [NUMBER], "body": BODY_TEXT},
        headers={"Authorization": f"Bearer {APP_KEY}"},
        timeout=60,
    )
    assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
    assert error_of(answer)["field"] == "redis"
    assert requests.get(f"{base}/readyz", timeout=60).status_code == 503


# --- the body's size -------------------------------------------------------------------------


def _answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _raw(small: Api, head: str) -> socket.socket:
    port = int(small.base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head.encode())
    return sock


def test_a_declared_length_over_the_limit_is_refused_before_the_body(small: Api) -> None:
    head = (
        "POST /v1/messages/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {APP_KEY}\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n"
    )
    with _raw(small, head) as sock:  # not a byte of the body is sent
        answer = _answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer.lower()


def test_a_chunked_body_is_refused_at_the_limit_without_growing_the_process(stack: Stack, small: Api) -> None:
    api_process = psutil.Process(stack.procs["api-small"].pid)
    before = api_process.memory_info().rss
    peak = before
    block = b"a" * (1024 * 1024)

    def body() -> Iterator[bytes]:  # 200 MiB, chunked (no length known in advance)
        nonlocal peak
        for number in range(200):
            if number % 10 == 0:
                peak = max(peak, api_process.memory_info().rss)
            yield block

    answer = small.post(
        "/v1/messages/email",
        data=body(),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    peak = max(peak, api_process.memory_info().rss)
    assert answer.status_code == 413 and error_of(answer)["field"] == "body"
    assert answer.headers["connection"] == "close"
    assert peak - before < 40 * 1024 * 1024, f"the process grew by {(peak - before) >> 20} MiB"
    assert small.get("/healthz").status_code == 200


def test_a_body_under_the_limit_is_taken(small: Api) -> None:
    text = "a" * (SMALL_LIMIT - 4096)
    fields = {"to": [ADDRESS], "subject": "long", "text": text}
    answer = small.post("/v1/messages/email", json=fields, timeout=30)
    assert answer.status_code == 202, answer.text[:300]
    over = small.post(
        "/v1/messages/email",
        json={**fields, "text": "a" * SMALL_LIMIT},
        timeout=30,
    )
    assert over.status_code == 413 and error_of(over)["field"] == "body"


def test_24_mib_of_attachments_fit_the_default_limit(stack: Stack, api: Api) -> None:
    files = [os.urandom(12 * 1024 * 1024), os.urandom(12 * 1024 * 1024)]
    attachments = [
        {"filename": f"part{n}.bin", "content_base64": base64.b64encode(data).decode()}
        for n, data in enumerate(files)
    ]
    fields = {"to": [ADDRESS], "subject": "files", "text": "see attached", "attachments": attachments}
    answer = api.post("/v1/messages/email", json=fields, timeout=120)
    assert answer.status_code == 202, answer.text[:300]
    payload = json.loads(stack.ledger.get(answer.json()["id"])["payload"])
    assert [a["filename"] for a in payload["attachments"]] == ["part0.bin", "part1.bin"]


# --- the document ----------------------------------------------------------------------------


def test_the_openapi_document_describes_every_call_and_body(stack: Stack, api: Api) -> None:
    document = requests.get(url(api, "/openapi.json"), timeout=10).json()
    paths = document["paths"]
    calls = {
        ("/v1/messages/sms", "post"): "SmsSend",
        ("/v1/messages/email", "post"): "EmailSend",
        ("/v1/messages/voice", "post"): "VoiceSend",
        ("/v1/messages/batch", "post"): "BatchSend",
        ("/v1/campaigns", "post"): "CampaignSend",
        ("/v1/messages/{message_id}", "get"): None,
        ("/v1/messages/{message_id}/cancel", "post"): None,
        ("/v1/messages/{message_id}/retry", "post"): None,
    }
    schemas = document["components"]["schemas"]
    assert [paths[path][method]["operationId"] for path, method in calls] == [
        "send_sms", "send_email", "send_voice", "send_batch", "send_campaign",
        "get_message", "cancel_message", "retry_message",
    ], "names a generated client's methods take"  # fmt: skip
    for (path, method), body in calls.items():
        operation = paths[path][method]
        assert operation["security"] == [{"apiKey": []}]
        assert {"401", "422", "503"} <= set(operation["responses"])
        if body:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{body}" and body in schemas
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "a key of HUDHUD_API_KEYS: `Authorization: Bearer <key>`",
    }
    email = schemas["EmailSend"]["properties"]
    assert {"to", "subject", "text", "html", "from", "cc", "bcc", "attachments", "key"} <= set(email)
    assert schemas["Attachment"]["required"] == ["filename", "content_base64"]
    assert schemas["ErrorBody"]["properties"]["error"]["$ref"] == "#/components/schemas/Problem"
    refs = {
        m.group(0) for m in __import__("re").finditer(r'"#/components/schemas/([^"]+)"', json.dumps(document))
    }
    for ref in refs:
        assert ref.strip('"').rsplit("/", 1)[1] in schemas, f"{ref} is defined"


def test_no_key_number_or_body_reaches_the_log(stack: Stack, api: Api, small: Api) -> None:
    for name in ("api", "api-small"):
        log = stack.log(name).read_text()
        for secret in (APP_KEY, OPS_KEY, NUMBER, BODY_TEXT, ADDRESS):
            assert secret not in log, f"{name} logged a secret"
