"""Every error code and HTTP status of the providers mapped to the right class.

Mapping tests call the mapping functions on replies directly. The retry-policy tests run
the HTTP base against a tiny scripted HTTP server on a private port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.providers import errors as pe
from hudhud.worker.providers.http import HttpClient, Redactor, Reply
from hudhud.worker.providers.taifa import TaifaClient
from hudhud.worker.providers.taifa.failures import taifa_failure
from hudhud.worker.providers.taqnyat import TaqnyatClient
from hudhud.worker.providers.taqnyat.failures import form_failure, rest_failure
from hudhud.worker.providers.taqnyat.salvage import decode as decode_body
from tests.helpers import free_port

TOKEN = "tok-3f9a7c1e5b"
RECIPIENT = "966512345678"
ADDRESS = "someone@example.com"


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    text = body if isinstance(body, str) else json.dumps(body)
    return Reply(status, CaseInsensitiveDict(headers or {}), decode_body(text), text)


def assert_clean(error: pe.ProviderError) -> None:
    for secret in (TOKEN, RECIPIENT, ADDRESS):
        assert secret not in str(error)
        assert secret not in repr(error)


# --- Taqnyat REST (SMS, balance, senders, delete) ------------------------------------


def sms_error(code: str, reason: str) -> dict[str, Any]:
    return {"statusCode": 400, "message": code, "reason": reason}


@pytest.mark.parametrize(
    ("body", "kind", "code", "field", "words"),
    [
        (sms_error("2", "Your balance is 0"), pe.BalanceError, "2", None, "Your balance is 0"),
        (sms_error("3", "Your balance is not enough"), pe.BalanceError, "3", None, "not enough"),
        (sms_error("14", "Invalid sender"), pe.PermanentError, "14", "sender", "Invalid sender"),
        (
            sms_error("15", "Mobile(s) number(s) is not specified or incorrect"),
            pe.PermanentError,
            "15",
            "recipients",
            "Mobile(s) number(s)",
        ),
        (sms_error("17", "error msg"), pe.PermanentError, "17", "body", "error msg"),
        (sms_error("101", "sending by API is disabled"), pe.AccountError, "101", None, "disabled"),
        (
            sms_error("102", "this ip Not authorized to using the API"),
            pe.AccountError,
            "102",
            None,
            "Not authorized",
        ),
        (sms_error("104", "Invalid Bearer Tokens"), pe.AccountError, "104", None, "Invalid Bearer"),
        ({"message": "102"}, pe.AccountError, "102", None, "Not authorized"),
        (
            {"statusCode": 400, "message": "body is required"},
            pe.PermanentError,
            None,
            "body",
            "body is required",
        ),
        (
            {"statusCode": 400, "message": "sender is required"},
            pe.PermanentError,
            None,
            "sender",
            "sender is required",
        ),
    ],
)
def test_taqnyat_sms_codes_map_to_their_class(
    body: dict[str, Any], kind: type, code: str | None, field: str | None, words: str
) -> None:
    error = rest_failure(reply(400, body), channel="sms")
    assert isinstance(error, pe.ProviderError)
    assert type(error) is kind
    assert error.code == code
    assert error.field == field
    assert error.http_status == 400
    assert words in str(error)


@pytest.mark.parametrize(
    ("status", "body", "kind", "field"),
    [
        (401, {"statusCode": 401, "message": "invalid credentials information"}, pe.AccountError, None),
        (403, {"statusCode": 403, "message": "Forbidden"}, pe.AccountError, None),
        (
            400,
            {"statusCode": 400, "message": "scheduledDatetime is not valid"},
            pe.PermanentError,
            "scheduledDatetime",
        ),
        (404, {"statusCode": 404, "message": "Not Found"}, pe.PermanentError, None),
        (405, {"statusCode": 405, "message": "Method Not Allowed"}, pe.PermanentError, None),
        (413, "<html><body><h1>413 Request Entity Too Large</h1></body></html>", pe.PermanentError, None),
        (422, {"statusCode": 422, "message": "deleteId not found"}, pe.PermanentError, "deleteId"),
    ],
)
def test_taqnyat_http_statuses_map_to_their_class(
    status: int, body: Any, kind: type, field: str | None
) -> None:
    error = rest_failure(reply(status, body))
    assert isinstance(error, pe.ProviderError)
    assert type(error) is kind
    assert error.http_status == status
    assert error.field == field


def test_taqnyat_401_shows_the_providers_words() -> None:
    error = rest_failure(reply(401, {"statusCode": 401, "message": "invalid credentials information"}))
    assert str(error) == "taqnyat HTTP 401: invalid credentials information"


def test_taqnyat_failure_inside_a_2xx_body_is_detected() -> None:
    error = rest_failure(reply(200, sms_error("3", "Your balance is not enough")))
    assert isinstance(error, pe.BalanceError)
    error = rest_failure(reply(201, {"statusCode": 401, "message": "invalid credentials"}))
    assert isinstance(error, pe.AccountError) and error.http_status == 401


def test_taqnyat_success_is_no_failure() -> None:
    assert rest_failure(reply(201, {"statusCode": 201, "messageId": 1})) is None
    assert rest_failure(reply(200, {"statusCode": 200, "balance": "1.000"})) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_taqnyat_transient_statuses_are_retryable_for_reads(status: int) -> None:
    error = rest_failure(
        reply(status, {"statusCode": status, "message": "Service Unavailable"}, {"Retry-After": "4"}),
        safe=True,
    )
    assert type(error) is pe.RetryableError
    assert error.retry_after == 4.0
    assert not error.in_doubt


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, pe.RetryableError),
        (502, pe.RetryableError),
        (503, pe.RetryableError),
        (500, pe.InDoubtError),
        (504, pe.InDoubtError),
    ],
)
def test_taqnyat_send_answered_500_or_504_is_in_doubt(status: int, kind: type) -> None:
    error = rest_failure(reply(status, "<html><body><h1>Gateway</h1></body></html>"), safe=False)
    assert isinstance(error, pe.ProviderError)
    assert type(error) is kind
    assert isinstance(error, pe.RetryableError)
    assert "Gateway" in str(error)


def test_taqnyat_retry_after_as_an_http_date() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    error = rest_failure(
        reply(429, {"statusCode": 429, "message": "Too Many Requests"}, {"Retry-After": when})
    )
    assert isinstance(error, pe.RetryableError)
    assert error.retry_after is not None and 55 <= error.retry_after <= 61


def test_proxy_page_words_become_the_message() -> None:
    error = rest_failure(reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"))
    assert str(error) == "taqnyat HTTP 502: 502 Bad Gateway"


# --- Taqnyat form endpoints (mailSend.php, voiceSend.php) ----------------------------


def form_fail(code: int, words: str) -> dict[str, Any]:
    return {
        "status": 1,
        "ResponseStatus": "fail",
        "Data": None,
        "Error": {"ErrorCode": code, "MessageAr": "...", "MessageEn": words},
    }


@pytest.mark.parametrize(
    ("channel", "code", "kind", "field"),
    [
        ("email", 2, pe.BalanceError, None),
        ("email", 3, pe.BalanceError, None),
        ("email", 14, pe.PermanentError, "from"),
        ("email", 15, pe.PermanentError, "to"),
        ("email", 16, pe.PermanentError, "subject"),
        ("email", 17, pe.PermanentError, "msg"),
        ("email", 101, pe.AccountError, None),
        ("email", 102, pe.AccountError, None),
        ("email", 104, pe.AccountError, None),
        ("voice", 2, pe.BalanceError, None),
        ("voice", 3, pe.BalanceError, None),
        ("voice", 14, pe.PermanentError, "callerId"),
        ("voice", 15, pe.PermanentError, "recipients"),
        ("voice", 17, pe.PermanentError, "audioUrl"),
        ("voice", 101, pe.AccountError, None),
        ("voice", 102, pe.AccountError, None),
        ("voice", 104, pe.AccountError, None),
    ],
)
@pytest.mark.parametrize("status", [400, 200, 201])
def test_taqnyat_form_codes_map_to_their_class_whatever_the_http_status(
    channel: str, code: int, kind: type, field: str | None, status: int
) -> None:
    error = form_failure(reply(status, form_fail(code, f"words for {code}")), channel=channel)
    assert isinstance(error, pe.ProviderError)
    assert type(error) is kind
    assert error.code == str(code)
    assert error.field == field
    assert f"words for {code}" in str(error)


def test_taqnyat_form_code_without_words_gets_the_seed_words() -> None:
    error = form_failure(reply(400, {"ResponseStatus": "fail", "Error": {"ErrorCode": 2}}), channel="email")
    assert isinstance(error, pe.BalanceError)
    assert "Your balance is 0" in str(error)


def test_taqnyat_form_401_and_5xx_without_a_form_body() -> None:
    assert isinstance(
        form_failure(reply(401, {"statusCode": 401, "message": "invalid"}), channel="email"), pe.AccountError
    )
    error = form_failure(reply(503, {"statusCode": 503, "message": "Service Unavailable"}), channel="voice")
    assert type(error) is pe.RetryableError


def test_taqnyat_form_2xx_that_cannot_be_read_is_in_doubt() -> None:
    error = form_failure(reply(200, "<html><body>Welcome to the hotel wifi</body></html>"), channel="email")
    assert isinstance(error, pe.InDoubtError)


def test_taqnyat_form_success_is_no_failure() -> None:
    body = {
        "status": 1,
        "ResponseStatus": "success",
        "Data": {"msgId": 1, "MessageEn": "sent successfully", "price": "0.010"},
        "Error": None,
    }
    assert form_failure(reply(201, body), channel="email") is None


# --- Taifa ---------------------------------------------------------------------------


def detail(code: str, message: str) -> dict[str, Any]:
    return {"detail": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "field"),
    [
        (
            400,
            detail("invalid_attachment", "attachment is not valid base64"),
            pe.PermanentError,
            "invalid_attachment",
            "attachments",
        ),
        (
            400,
            detail("invalid_send_at", "send_at must be 1 minute to 30 days ahead"),
            pe.PermanentError,
            "invalid_send_at",
            "send_at",
        ),
        (
            400,
            detail("batch_too_large", "batch is larger than your plan allows"),
            pe.PermanentError,
            "batch_too_large",
            None,
        ),
        (401, detail("unauthorized", "Missing or invalid API key"), pe.AccountError, "unauthorized", None),
        (
            403,
            detail("plan_feature", "batch sending needs a paid plan"),
            pe.AccountError,
            "plan_feature",
            None,
        ),
        (
            403,
            detail("send_limit_reached", "send limit reached"),
            pe.AccountError,
            "send_limit_reached",
            None,
        ),
        (404, detail("not_found", "Email not found"), pe.PermanentError, "not_found", None),
        (
            409,
            detail("not_retryable", "only bounced, rejected or failed emails"),
            pe.PermanentError,
            "not_retryable",
            None,
        ),
        (
            413,
            detail("payload_too_large", "attachments exceed 24 MiB"),
            pe.PermanentError,
            "payload_too_large",
            "attachments",
        ),
        (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "to", 0, "email"],
                        "msg": "value is not a valid email",
                        "type": "value_error",
                        "input": ADDRESS,
                    }
                ]
            },
            pe.PermanentError,
            "value_error",
            "to[0].email",
        ),
        (422, {"detail": "Unprocessable"}, pe.PermanentError, None, None),
    ],
)
def test_taifa_statuses_map_to_their_class(
    status: int, body: dict[str, Any], kind: type, code: str | None, field: str | None
) -> None:
    error = taifa_failure(reply(status, body))
    assert isinstance(error, pe.ProviderError)
    assert type(error) is kind
    assert error.code == code
    assert error.field == field
    assert error.http_status == status
    assert_clean(error)


def test_taifa_shows_the_providers_words() -> None:
    error = taifa_failure(reply(404, detail("not_found", "Email not found")))
    assert str(error) == "taifa HTTP 404 code not_found: Email not found"


def test_taifa_422_lists_every_field_and_drops_echoed_input() -> None:
    body = {
        "detail": [
            {"loc": ["body", "to", 0, "email"], "msg": "not a valid email", "input": ADDRESS},
            {"loc": ["body", "subject"], "msg": "Field required", "type": "missing"},
        ]
    }
    error = taifa_failure(reply(422, body))
    assert isinstance(error, pe.PermanentError)
    assert "to[0].email: not a valid email" in str(error)
    assert "subject: Field required" in str(error)
    assert ADDRESS not in json.dumps(error.raw)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, detail("rate_limited", "Too many requests"), pe.RetryableError),
        (500, {"detail": "Internal Server Error"}, pe.RetryableError),
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", pe.RetryableError),
        (503, {"detail": "Service Unavailable"}, pe.RetryableError),
        (504, "", pe.RetryableError),
    ],
)
def test_taifa_transient_statuses_are_retryable(status: int, body: Any, kind: type) -> None:
    error = taifa_failure(reply(status, body, {"Retry-After": "2"}), safe=True)
    assert isinstance(error, pe.RetryableError)
    assert type(error) is kind
    assert error.retry_after == 2.0


def test_taifa_send_answered_504_is_in_doubt() -> None:
    assert isinstance(taifa_failure(reply(504, ""), safe=False), pe.InDoubtError)
    assert type(taifa_failure(reply(503, ""), safe=False)) is pe.RetryableError


# --- secrets and recipients never shown ----------------------------------------------


def test_provider_words_echoing_token_or_recipients_are_redacted() -> None:
    redact = Redactor((TOKEN,))
    body = form_fail(104, f"Invalid Bearer Tokens {TOKEN} for {ADDRESS} and +{RECIPIENT}")
    error = form_failure(reply(200, body), channel="email", redact=redact)
    assert isinstance(error, pe.AccountError)
    assert "Invalid Bearer Tokens" in str(error)
    assert_clean(error)
    error = taifa_failure(reply(422, {"detail": f"{ADDRESS} is suppressed"}), redact=redact)
    assert str(error) == "taifa HTTP 422: <address> is suppressed"


def test_redaction_keeps_short_numbers_prices_and_ips() -> None:
    redact = Redactor(())
    words = "this ip 10.0.0.1 Not authorized; balance 2044.000; code 104"
    assert redact(words) == words


def test_missing_credentials_are_a_configuration_error() -> None:
    from hudhud.config.settings import Settings

    settings = Settings(TAQNYAT_TOKEN=None, TAIFA_API_KEY=None)
    with pytest.raises(ConfigurationError, match="TAQNYAT_TOKEN"):
        TaqnyatClient.from_settings(settings)
    with pytest.raises(ConfigurationError, match="TAIFA_API_KEY"):
        TaifaClient.from_settings(settings)
    assert not issubclass(ConfigurationError, pe.ProviderError)


def test_client_reprs_show_no_secret() -> None:
    taqnyat = TaqnyatClient("http://127.0.0.1:1", TOKEN)
    taifa = TaifaClient("http://127.0.0.1:1/v1", TOKEN)
    assert TOKEN not in repr(taqnyat) + repr(taifa) + repr(taqnyat.http) + repr(taifa.http)
    assert TOKEN not in repr(taqnyat.http.redact)


# --- the retry policy, against a scripted server ------------------------------------


@dataclass
class Step:
    status: int = 200
    body: str = "{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang_up: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Script:
    """A tiny HTTP server answering from a list of steps (the last one repeats)."""

    def __init__(self) -> None:
        self.steps: list[Step] = [Step()]
        self.seen: list[Seen] = []
        self.port = free_port()
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                script.seen.append(Seen(self.command, self.path, dict(self.headers), self.rfile.read(length)))
                step = script.steps.pop(0) if len(script.steps) > 1 else script.steps[0]
                time.sleep(step.delay)
                if step.hang_up:
                    self.close_connection = True
                    return
                payload = step.body.encode()
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in step.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def play(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.seen.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def script() -> Iterator[Script]:
    server = Script()
    yield server
    server.close()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def http(
    script: Script, *, retries: int = 2, read_timeout: float = 2.0, **options: Any
) -> tuple[HttpClient, Sleeps]:
    sleeps = Sleeps()
    client = HttpClient(
        "taqnyat",
        script.url,
        token=TOKEN,
        read_timeout=read_timeout,
        retries=retries,
        sleep=sleeps,
        **options,
    )
    return client, sleeps


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_reads_retry_transient_statuses_then_hand_back_the_last_answer(script: Script, status: int) -> None:
    script.play(Step(status, '{"message":"busy"}'))
    client, sleeps = http(script, retries=2)
    answer = client.request("GET", "/account/balance", safe=True)
    assert answer.status == status
    assert len(script.seen) == 3
    assert len(sleeps) == 2
    assert all(0 < s <= 2.0 for s in sleeps)


def test_a_retry_that_succeeds_returns_the_success(script: Script) -> None:
    script.play(Step(503), Step(502, "<html><h1>502 Bad Gateway</h1></html>"), Step(200, "{}"))
    client, _ = http(script, retries=2)
    assert client.request("GET", "/x", safe=True).status == 200
    assert len(script.seen) == 3


@pytest.mark.parametrize(
    ("status", "attempts"),
    [
        (429, 3),
        (502, 3),
        (503, 3),
        (500, 1),
        (504, 1),
        (400, 1),
        (401, 1),
        (422, 1),
    ],
)
def test_sends_are_retried_only_when_the_provider_cannot_have_acted(
    script: Script, status: int, attempts: int
) -> None:
    script.play(Step(status))
    client, _ = http(script, retries=2)
    assert client.request("POST", "/v1/messages", safe=False, json_body={}).status == status
    assert len(script.seen) == attempts


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_4xx_are_never_retried(script: Script, status: int) -> None:
    script.play(Step(status))
    client, _ = http(script, retries=3)
    client.request("GET", "/x", safe=True)
    assert len(script.seen) == 1


def test_429_waits_at_least_its_short_retry_after(script: Script) -> None:
    script.play(Step(429, headers={"Retry-After": "1.5"}), Step(200))
    client, sleeps = http(script)
    assert client.request("POST", "/v1/messages", safe=False).status == 200
    assert sleeps == [pytest.approx(1.5, abs=0.5)] and sleeps[0] >= 1.5


def test_429_with_a_long_retry_after_is_handed_back_at_once(script: Script) -> None:
    script.play(Step(429, headers={"Retry-After": "60"}))
    client, sleeps = http(script)
    answer = client.request("GET", "/x", safe=True)
    assert answer.retry_after == 60.0
    assert len(script.seen) == 1 and sleeps == []


def test_read_timeout_is_retried_for_reads(script: Script) -> None:
    script.play(Step(delay=0.6))
    client, sleeps = http(script, retries=1, read_timeout=0.2)
    with pytest.raises(pe.RetryableError) as caught:
        client.request("GET", "/account/balance", safe=True)
    assert not caught.value.in_doubt
    assert len(script.seen) == 2 and len(sleeps) == 1


def test_read_timeout_on_a_send_is_in_doubt_and_not_resent(script: Script) -> None:
    script.play(Step(delay=0.6))
    client, sleeps = http(script, retries=2, read_timeout=0.2)
    with pytest.raises(pe.InDoubtError) as caught:
        client.request("POST", "/v1/messages", safe=False, json_body={"body": "x"})
    assert "may have been accepted" in str(caught.value)
    assert len(script.seen) == 1 and sleeps == []
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_read_timeout_on_a_send_is_resent_only_when_asked(script: Script) -> None:
    script.play(Step(delay=0.6))
    client, _ = http(script, retries=1, read_timeout=0.2, retry_sends_on_read_timeout=True)
    with pytest.raises(pe.InDoubtError):
        client.request("POST", "/v1/messages", safe=False)
    assert len(script.seen) == 2


def test_refused_connection_is_retried_even_for_a_send_and_is_not_in_doubt() -> None:
    sleeps = Sleeps()
    client = HttpClient("taifa", f"http://127.0.0.1:{free_port()}", token=TOKEN, retries=2, sleep=sleeps)
    with pytest.raises(pe.RetryableError) as caught:
        client.request("POST", "/emails/", safe=False, params={"q": f"to:{ADDRESS}"})
    assert type(caught.value) is pe.RetryableError
    assert len(sleeps) == 2
    assert "could not connect" in str(caught.value)
    assert ADDRESS not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_requests_carry_user_agent_and_bearer_token_but_status_goes_without(script: Script) -> None:
    script.play(Step(200, '{"statusCode":200,"status":{"service":"none","description":"ok"}}'))
    client = TaqnyatClient(script.url, TOKEN)
    client.system_status()
    client.http.request("GET", "/account/balance", safe=True)
    status_call, balance_call = script.seen
    assert status_call.headers["User-Agent"].startswith("hudhud/")
    assert "Authorization" not in status_call.headers
    assert balance_call.headers["Authorization"] == f"Bearer {TOKEN}"


def test_form_sends_carry_the_token_as_header_and_field(script: Script) -> None:
    script.play(
        Step(
            201,
            json.dumps({"status": 1, "ResponseStatus": "success", "Data": {"msgId": 7, "price": "0.010"}}),
        )
    )
    client = TaqnyatClient(script.url, TOKEN)
    result = client.send_email(
        [ADDRESS], "Hello", "Body", sender_email="no-reply@example.sa", campaign_name="otp"
    )
    (call,) = script.seen
    assert call.path == "/mailSend.php"
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(call.body)
    assert sent["bearerTokens"] == TOKEN
    assert sent["to"] == [ADDRESS]
    assert result.provider_message_id == "7"


def test_a_provider_echoing_the_token_never_shows_it(script: Script) -> None:
    script.play(Step(200, json.dumps(form_fail(104, f"Invalid Bearer Tokens: {TOKEN}"))))
    client = TaqnyatClient(script.url, TOKEN)
    with pytest.raises(pe.AccountError) as caught:
        client.send_voice([RECIPIENT], "https://cdn.example.sa/otp.mp3", "966500000001")
    assert_clean(caught.value)
    assert "Invalid Bearer Tokens" in str(caught.value)


def test_the_pool_is_sized_by_pool_size_and_never_blocks() -> None:
    client = HttpClient("taifa", "http://127.0.0.1:1", pool_size=37)
    adapter = client.session.get_adapter("http://127.0.0.1:1/")
    assert adapter._pool_maxsize == 37  # type: ignore[attr-defined]
    assert adapter._pool_block is False  # type: ignore[attr-defined]


def test_a_connection_dropped_after_sending_is_retried_for_reads(script: Script) -> None:
    script.play(Step(hang_up=True), Step(200, "{}"))
    client, _ = http(script, retries=2)
    assert client.request("GET", "/x", safe=True).status == 200
    assert len(script.seen) == 2


def test_a_connection_dropped_after_sending_a_send_is_in_doubt(script: Script) -> None:
    script.play(Step(hang_up=True))
    client, sleeps = http(script, retries=2)
    with pytest.raises(pe.InDoubtError):
        client.request("POST", "/v1/messages", safe=False, json_body={})
    assert len(script.seen) == 1 and sleeps == []


@pytest.mark.parametrize("base_url", ["127.0.0.1:8080", "http://", "ftp://example.com"])
def test_a_malformed_base_url_is_a_configuration_error(base_url: str) -> None:
    with TaqnyatClient(base_url, TOKEN) as client, pytest.raises(ConfigurationError) as caught:
        client.balance()
    assert caught.value.variable == "TAQNYAT_BASE_URL"
