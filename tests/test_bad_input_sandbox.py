"""Bad requests at scale against the sandbox over real HTTP.

Whatever arrives (JSON of any shape, JSON strings that are not Unicode, documents nested
thousands deep, bytes that are not text, broken forms and multipart bodies, odd content
types and tokens), the sandbox answers in the provider's documented shape with one of its
documented statuses and never with a 5xx; and its record of sends stays readable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.bad_input import bad_email_text, bad_number_text, digits, not_unicode
from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN, SMS_201_FIELDS, Sandbox

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The answers of docs/sandbox.md.
SMS_MESSAGES = {
    "body is required",
    "sender is required",
    "scheduledDatetime is not valid, use YYYY-MM-DDTHH:mm",
    "request body must be a JSON object",
}
SMS_CODES = {
    "14": "Invalid sender",
    "15": "Mobile(s) number(s) is not specified or incorrect",
    "2": "Your balance is 0",
    "3": "Your balance is not enough",
    "101": "sending by API is disabled",
    "102": "this ip Not authorized to using the API",
}
MAIL_CODES = {
    104: "Invalid Bearer Tokens",
    101: "Invalid Bearer Tokens",
    102: " this ip 10.0.0.1 Not authorized to using the API",
    14: " error From",
    15: " Email is not specified or incorrect",
    16: " error subject",
    17: " error msg",
    2: " Your balance is 0",
    3: " Your balance is not enough",
}
VOICE_CODES = {
    104: "Invalid Bearer Tokens",
    101: "sending by API is disabled",
    102: "this ip Not authorized to using the API",
    14: "Invalid CallerId",
    15: "Mobile(s) number(s) is not specified or incorrect",
    17: "error msg or error audio file",
    2: "Your balance is 0",
    3: "Your balance is not enough",
}
TAIFA_CODES = {400: {"invalid_attachment", "invalid_send_at"}, 413: {"payload_too_large"}}


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of this module's own: fuzzing must not disturb the session's."""
    server = Sandbox(log=tmp_path_factory.mktemp("fuzz-sandbox") / "sandbox.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture()
def sb(own_sandbox: Sandbox, http: requests.Session) -> Iterator[Sandbox]:
    own_sandbox.reset()
    yield own_sandbox
    # Whatever was accepted, the record of sends and the Taifa list stay readable.
    assert http.get(f"{own_sandbox.url}/_sandbox/sends", timeout=30).status_code == 200
    listed = http.get(
        f"{own_sandbox.url}/v1/emails/", headers={"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}, timeout=30
    )
    assert listed.status_code == 200
    assert own_sandbox.proc is not None and own_sandbox.proc.poll() is None


# --- what the fuzzer sends ------------------------------------------------------------------
any_text = st.one_of(st.text(max_size=20), not_unicode)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63),
    st.floats(),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=10,
)
plain_text = st.text(max_size=30)  # what a query string or a form can carry
raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(600, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(600, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'"text"',
            b"NaN",
            b'{"body": "caf\xe9"}',
            b'{"body": "\\ud800", "sender": "HUDHUD", "recipients": ["966500000000"]}',
            b'{"recipients": [' + b"9" * 5000 + b"]}",
            b"\xef\xbb\xbf{}",
            b"\xff\xfe{\x00}\x00",
            b'--xyz\r\nContent-Disposition: form-data; name="body"\r\n\r\n\xff\xfe\r\n--xyz--\r\n',
        ]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=nope",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/octet-stream",
        None,
    ]
)


def auth(token: str) -> st.SearchStrategy[str | None]:
    return st.sampled_from(
        [
            *[f"Bearer {token}"] * 8,
            "Bearer wrong",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer sandbox-api-disabled",
            "Bearer sandbox-ip-blocked",
            None,
        ]
    )


@st.composite
def mutated(
    draw: st.DrawFn, valid: dict[str, Any], others: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """`valid` with some fields replaced by drawn values, dropped, or added."""
    out: dict[str, Any] = {}
    for name in sorted(set(valid) | set(others)):
        choice = draw(st.sampled_from(["keep", "keep", "keep", "replace", "drop"]))
        if choice == "keep" and name in valid:
            out[name] = valid[name]
        elif choice == "replace" and name in others:
            out[name] = draw(others[name])
    return out


def iso_near(offset_minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=offset_minutes)).isoformat()


times = st.one_of(
    st.integers(-(10**5), 10**6).map(iso_near),
    st.sampled_from(
        ["2031-01-31T10:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "tomorrow", "", " "]
    ),
    json_values,
)
numbers = st.one_of(digits(8, 15), bad_number_text(), st.integers(), json_values)
sms_bodies = mutated(
    {"recipients": ["966500000000", "966500000002"], "body": "hello", "sender": "HUDHUD"},
    {
        "recipients": st.one_of(st.lists(numbers, max_size=4), plain_text, json_values),
        "body": st.one_of(st.just("hello"), any_text, json_values),
        "sender": st.one_of(st.sampled_from(["HUDHUD", "Taqnyat", "", " "]), any_text, json_values),
        "scheduledDatetime": times,
        "deleteId": json_values,
        "smsId": json_values,
    },
)
mail_fields = mutated(
    {
        "bearerTokens": SANDBOX_TAQNYAT_TOKEN,
        "from": "noreply@example.com",
        "to": "a@example.com,b@example.com",
        "subject": "Hello",
        "msg": "<b>hi</b>",
    },
    {
        "bearerTokens": st.one_of(st.just(SANDBOX_TAQNYAT_TOKEN), any_text, json_values),
        "from": st.one_of(
            st.sampled_from(["noreply@example.com", "a@unverified.example"]), bad_email_text(), json_values
        ),
        "to": st.one_of(
            st.lists(st.one_of(st.just("a@example.com"), bad_email_text(), json_values), max_size=3),
            st.sampled_from(["a@example.com,b@example.com", "[a@example.com", '["a@example.com"]']),
            json_values,
        ),
        "subject": st.one_of(st.just("Hello"), any_text, json_values),
        "msg": st.one_of(st.just("<b>hi</b>"), any_text, json_values),
        "campaignName": json_values,
    },
)
voice_fields = mutated(
    {
        "bearerTokens": SANDBOX_TAQNYAT_TOKEN,
        "callerId": "966500000001",
        "recipients": ["966500000000"],
        "audioUrl": "https://cdn.example.com/a.mp3",
    },
    {
        "bearerTokens": st.one_of(st.just(SANDBOX_TAQNYAT_TOKEN), any_text, json_values),
        "callerId": numbers,
        "recipients": st.one_of(st.lists(numbers, max_size=3), plain_text, json_values),
        "audioUrl": st.one_of(
            st.sampled_from(["https://cdn.example.com/a.mp3", "ftp://x/a.mp3", "https://x/a.ogg", "http://"]),
            any_text,
            json_values,
        ),
    },
)
addresses = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(
                st.sampled_from(["a@example.com", "reject-1@example.com"]),
                bad_email_text(),
                any_text,
                json_values,
            ),
            "name": st.one_of(any_text, json_values),
        },
    ),
    json_values,
)
attachments = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "filename": st.one_of(
                        st.sampled_from(["a.txt", "../a", "a\\b", "a\x00b", ""]), any_text, json_values
                    ),
                    "content_base64": st.one_of(
                        st.sampled_from(
                            ["aGVsbG8=", "data:text/plain;base64,aGVsbG8=", "***", "QQ=", " aGVs bG8= "]
                        ),
                        any_text,
                        json_values,
                    ),
                    "content_type": st.one_of(st.just("text/plain"), any_text, json_values),
                },
            ),
            json_values,
        ),
        max_size=3,
    ),
    json_values,
)
taifa_bodies = mutated(
    {
        "from_": {"email": "hello@govconnect.ke", "name": "Hudhud"},
        "to": [{"email": "amina@example.com"}],
        "subject": "Welcome",
        "html": "<p>Hi</p>",
        "tags": ["welcome"],
    },
    {
        "from_": st.one_of(
            st.just({"email": "hello@govconnect.ke"}), st.just({"email": "x@unverified.example"}), addresses
        ),
        "to": st.one_of(st.lists(addresses, max_size=3), json_values),
        "subject": st.one_of(st.just("Hi"), any_text, json_values),
        "html": st.one_of(st.just("<p>hi</p>"), any_text, json_values),
        "text": st.one_of(any_text, json_values),
        "cc": st.one_of(st.lists(addresses, max_size=2), json_values),
        "bcc": st.one_of(st.lists(addresses, max_size=2), json_values),
        "reply_to": addresses,
        "headers": st.one_of(
            st.dictionaries(any_text, st.one_of(any_text, json_values), max_size=3), json_values
        ),
        "tags": st.one_of(st.lists(st.one_of(any_text, json_values), max_size=3), json_values),
        "send_at": times,
        "attachments": attachments,
    },
)


@st.composite
def request_body(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> tuple[bytes, str | None]:
    """A body and its content type: a JSON document (strings escaped, so lone surrogates
    travel as `\\udXXX`), a form of the same fields, or raw bytes."""
    kind = draw(st.sampled_from(["json", "json", "form", "raw"]))
    if kind == "json":
        document = draw(st.one_of(documents, json_values))
        return json.dumps(document).encode(), draw(st.sampled_from(["application/json", "text/plain", None]))
    if kind == "form":
        fields = draw(st.dictionaries(plain_text, plain_text, max_size=5))
        encoded = "&".join(f"{quote(k)}={quote(v)}" for k, v in fields.items()).encode()
        return encoded, "application/x-www-form-urlencoded"
    return draw(raw_bodies), draw(content_types)


def post(
    http: requests.Session, url: str, body: bytes, content_type: str | None, authorization: str | None
) -> requests.Response:
    headers = {"Content-Type": content_type or ""}
    if authorization is not None:
        headers["Authorization"] = authorization
    return http.post(url, data=body, headers=headers, timeout=30)


def json_of(reply: requests.Response) -> Any:
    event(f"HTTP {reply.status_code}")
    assert reply.status_code < 500, (reply.status_code, reply.text[:300])
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    return reply.json()


# --- Taqnyat ---------------------------------------------------------------------------------
def check_sms_reply(reply: requests.Response) -> None:
    body = json_of(reply)
    status = reply.status_code
    if status == 201:
        assert body["statusCode"] == 201 and isinstance(body["messageId"], int)
        assert set(body) == SMS_201_FIELDS
        assert body["accepted"].startswith("[") and body["rejected"].startswith("[")
        return
    assert status in (400, 401, 413), (status, body)
    assert body["statusCode"] == status and set(body) <= {"statusCode", "message", "reason"}
    if status == 401:
        assert body == {"statusCode": 401, "message": "invalid credentials information"}
    elif status == 400:
        message = body["message"]
        if message in SMS_CODES:
            assert body["reason"] == SMS_CODES[message]
        else:
            assert message in SMS_MESSAGES and "reason" not in body, body


@FUZZ
@given(body=request_body(sms_bodies), authorization=auth(SANDBOX_TAQNYAT_TOKEN))
def test_taqnyat_sms_answers_bad_requests_as_documented(
    sb: Sandbox, http: requests.Session, body: tuple[bytes, str | None], authorization: str | None
) -> None:
    check_sms_reply(post(http, f"{sb.url}/v1/messages", *body, authorization))


@FUZZ
@given(
    body=request_body(st.fixed_dictionaries({}, optional={"deleteId": json_values})),
    query=st.one_of(st.none(), plain_text),
    authorization=auth(SANDBOX_TAQNYAT_TOKEN),
)
def test_taqnyat_delete_answers_bad_requests_as_documented(
    sb: Sandbox,
    http: requests.Session,
    body: tuple[bytes, str | None],
    query: str | None,
    authorization: str | None,
) -> None:
    url = f"{sb.url}/v1/messages" if query is None else f"{sb.url}/v1/messages/delete?deleteId={quote(query)}"
    headers = {"Content-Type": body[1] or ""} | ({"Authorization": authorization} if authorization else {})
    reply = http.delete(url, data=body[0], headers=headers, timeout=30)
    answer = json_of(reply)
    assert reply.status_code in (201, 400, 401, 422), answer
    assert answer["statusCode"] == reply.status_code and isinstance(answer["message"], str)


def check_form_reply(reply: requests.Response, codes: dict[int, str]) -> None:
    body = json_of(reply)
    if reply.status_code == 201:
        assert body["status"] == 1 and body["ResponseStatus"] == "success", body
        return
    assert reply.status_code in (400, 413), (reply.status_code, body)
    if reply.status_code == 413:
        return
    assert set(body) == {"status", "ResponseStatus", "Data", "Error"}
    assert body["ResponseStatus"] == "fail" and body["Data"] is None
    code = body["Error"]["ErrorCode"]
    assert code in codes and body["Error"]["MessageEn"] == codes[code], body
    assert isinstance(body["Error"]["MessageAr"], str)


@st.composite
def form_request(draw: st.DrawFn, fields: st.SearchStrategy[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """How the fields travel: JSON body, form body, query string, or something broken."""
    how = draw(st.sampled_from(["json", "form", "query", "raw"]))
    values = draw(fields)
    if how == "json":
        return how, {"data": json.dumps(values).encode(), "headers": {"Content-Type": "application/json"}}
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    # A query or form carries text only: what is not Unicode becomes "?".
    safe = {
        k.encode("utf-8", "replace").decode(): v.encode("utf-8", "replace").decode() for k, v in flat.items()
    }
    if how == "form":
        return how, {"data": safe}
    if how == "query":
        return how, {"params": safe}
    body, content_type = draw(st.tuples(raw_bodies, content_types))
    return how, {"data": body, "headers": {"Content-Type": content_type or ""}, "params": safe}


def send_form(
    sb: Sandbox,
    http: requests.Session,
    path: str,
    request: tuple[str, dict[str, Any]],
    method: str,
    authorization: str | None,
) -> requests.Response:
    _, options = request
    headers = dict(options.pop("headers", {})) | ({"Authorization": authorization} if authorization else {})
    return http.request(method, f"{sb.url}{path}", headers=headers, timeout=30, **options)


@pytest.mark.parametrize(
    ("path", "fields", "codes"),
    [("/mailSend.php", mail_fields, MAIL_CODES), ("/voiceSend.php", voice_fields, VOICE_CODES)],
    ids=["mail", "voice"],
)
@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "POST"]), authorization=auth(SANDBOX_TAQNYAT_TOKEN))
def test_taqnyat_mail_and_voice_sends_answer_bad_requests_with_their_error_codes(
    sb: Sandbox,
    http: requests.Session,
    path: str,
    fields: Any,
    codes: Any,
    data: st.DataObject,
    method: str,
    authorization: str | None,
) -> None:
    request = data.draw(form_request(fields))
    check_form_reply(send_form(sb, http, path, request, method, authorization), codes)


# --- Taifa Mail ------------------------------------------------------------------------------
def check_taifa_error(reply: requests.Response, body: Any) -> None:
    status = reply.status_code
    if status == 401:
        assert body == {"detail": {"code": "unauthorized", "message": "Missing or invalid API key"}}
    elif status == 422:
        assert isinstance(body["detail"], list) and body["detail"], body
        for error in body["detail"]:
            assert {"type", "loc", "msg"} <= set(error) and error["loc"][0] in ("body", "query"), error
    else:
        assert status in TAIFA_CODES, (status, body)
        assert set(body["detail"]) == {"code", "message"} and body["detail"]["code"] in TAIFA_CODES[status]


@FUZZ
@given(body=request_body(taifa_bodies), authorization=auth(SANDBOX_TAIFA_KEY))
def test_taifa_send_answers_bad_requests_as_documented(
    sb: Sandbox, http: requests.Session, body: tuple[bytes, str | None], authorization: str | None
) -> None:
    reply = post(http, f"{sb.url}/v1/emails/", *body, authorization)
    answer = json_of(reply)
    if reply.status_code == 202:
        assert set(answer) == {"id", "status", "message_id", "rejection_reason"}
        assert answer["status"] in ("queued", "scheduled", "rejected")
        detail = http.get(
            f"{sb.url}/v1/emails/{answer['id']}",
            headers={"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"},
            timeout=30,
        )
        assert detail.status_code == 200 and detail.json()["id"] == answer["id"]
    else:
        check_taifa_error(reply, answer)


@FUZZ
@given(body=request_body(taifa_bodies), authorization=auth(SANDBOX_TAIFA_KEY))
def test_taifa_validate_always_answers_its_report(
    sb: Sandbox, http: requests.Session, body: tuple[bytes, str | None], authorization: str | None
) -> None:
    reply = post(http, f"{sb.url}/v1/emails/validate", *body, authorization)
    answer = json_of(reply)
    if reply.status_code == 401:
        return check_taifa_error(reply, answer)
    assert reply.status_code == 200 and set(answer) == {"valid", "can_send", "issues"}
    assert answer["valid"] is (answer["issues"] == []) and answer["can_send"] is answer["valid"]
    assert all(set(issue) == {"field", "error"} for issue in answer["issues"])
    return None


@FUZZ
@given(
    items=st.one_of(st.lists(taifa_bodies, max_size=4), json_values, st.lists(json_values, max_size=3)),
    authorization=auth(SANDBOX_TAIFA_KEY),
)
def test_taifa_batch_answers_bad_items_item_by_item(
    sb: Sandbox, http: requests.Session, items: Any, authorization: str | None
) -> None:
    reply = post(
        http, f"{sb.url}/v1/emails/batch", json.dumps(items).encode(), "application/json", authorization
    )
    answer = json_of(reply)
    if reply.status_code != 202:
        return check_taifa_error(reply, answer)
    assert isinstance(items, list) and answer["total"] == len(items) == len(answer["results"])
    assert answer["sent"] + answer["failed"] == answer["total"]
    for row in answer["results"]:
        assert set(row) == {"id", "status", "rejection_reason"}
    return None


@FUZZ
@given(
    path=st.sampled_from(["/v1/emails/", "/v1/emails/search", "/v1/emails/scheduled", "/v1/emails/updates"]),
    params=st.dictionaries(
        st.sampled_from(["page", "limit", "q", "status", "tag", "since"]), plain_text, max_size=4
    ),
)
def test_taifa_lists_answer_bad_queries_with_422(
    sb: Sandbox, http: requests.Session, path: str, params: dict[str, str]
) -> None:
    reply = http.get(
        f"{sb.url}{path}", params=params, headers={"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}, timeout=30
    )
    answer = json_of(reply)
    if reply.status_code == 422:
        return check_taifa_error(reply, answer)
    assert reply.status_code == 200
    if path.endswith("updates"):
        assert set(answer) == {"items", "next_since"} and answer["next_since"].endswith("Z")
        datetime.fromisoformat(answer["next_since"].replace("Z", "+00:00"))
    else:
        assert set(answer) == {"items", "total", "page", "limit"}
    return None


@FUZZ
@given(
    email_id=st.text(min_size=1, max_size=40),
    action=st.sampled_from(
        [("GET", ""), ("GET", "/events"), ("POST", "/retry"), ("DELETE", "scheduled"), ("POST", "send-now")]
    ),
)
def test_taifa_calls_on_unknown_ids_answer_404(
    sb: Sandbox, http: requests.Session, email_id: str, action: tuple[str, str]
) -> None:
    method, suffix = action
    quoted = quote(email_id, safe="")
    if suffix == "scheduled":
        path = f"/v1/emails/scheduled/{quoted}"
    elif suffix == "send-now":
        path = f"/v1/emails/scheduled/{quoted}/send-now"
    else:
        path = f"/v1/emails/{quoted}{suffix}"
    reply = http.request(
        method, f"{sb.url}{path}", headers={"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}, timeout=30
    )
    answer = json_of(reply)
    assert reply.status_code in (200, 404, 405, 422), (reply.status_code, answer)
    if reply.status_code == 404:
        assert answer in (
            {"detail": {"code": "not_found", "message": "Email not found"}},
            {"detail": "Not Found"},
        )
    if reply.status_code == 405:
        assert answer == {"detail": "Method Not Allowed"}


def test_taifa_attachment_over_24_mib_is_413_and_a_deep_document_is_422(
    sb: Sandbox, http: requests.Session
) -> None:
    key = {"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}", "Content-Type": "application/json"}
    big = base64.b64encode(b"\0" * (24 * 1024 * 1024 + 1)).decode()
    body = {
        "from_": {"email": "hello@govconnect.ke"},
        "to": [{"email": "a@example.com"}],
        "subject": "s",
        "text": "t",
        "attachments": [{"filename": "big.bin", "content_base64": big}],
    }
    reply = http.post(f"{sb.url}/v1/emails/", data=json.dumps(body), headers=key, timeout=60)
    assert reply.status_code == 413 and reply.json()["detail"]["code"] == "payload_too_large"
    deep = http.post(f"{sb.url}/v1/emails/", data=b"[" * 100_000, headers=key, timeout=30)
    assert deep.status_code == 422 and deep.json()["detail"][0]["type"] == "json_invalid"


def test_admin_controls_refuse_bodies_they_cannot_read_with_400(sb: Sandbox, http: requests.Session) -> None:
    for path in ("/_sandbox/knobs", "/_sandbox/balance"):
        for body in (b"[" * 100_000, b"\xff\xfe", b'"x"', b"[]", b'{"\\ud800": 1}'):
            reply = http.post(f"{sb.url}{path}", data=body, timeout=30)
            assert reply.status_code == 400 and isinstance(reply.json()["error"], str), (
                path,
                body,
                reply.text,
            )
    assert http.get(f"{sb.url}/_sandbox/knobs", timeout=30).json()["latency_ms"] == 0
