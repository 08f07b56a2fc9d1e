"""`Idempotency-Key` over HTTP, against a real `hudhud api` process and a real redis-server:
one request recorded per key, the first answer given again, another body refused, a request
still in flight answered 409, a failed request's key freed. Also under 50 concurrent requests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from hudhud.worker.ledger import keys
from hudhud.worker.ledger.replies import Found, Replies
from hudhud.worker.web.idempotency import digest
from tests.stack import Stack, idle_stack
from tests.test_api import Api

API_KEY = "k-idem-0c7e41d9b2"
NUMBER = "966500000654"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with idle_stack(tmp_path_factory.mktemp("api-idem")) as made:
        yield made


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    with Api(stack.start_api(extra_env={"HUDHUD_API_KEYS": f"shop:{API_KEY}"}), API_KEY) as client:
        yield client


def records(stack: Stack) -> int:
    return sum(1 for _ in stack.redis.scan_iter(keys.msg_key("*"), count=1000))


def sms(text: str = "code 1") -> dict[str, Any]:
    return {"to": [NUMBER], "body": text}


def new_key() -> str:
    return f"order-{uuid.uuid4()}"


def post(api: Api, path: str, body: Any, key: str | None) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post(path, json=body, headers=headers)


def field_of(answer: requests.Response) -> str:
    return str(answer.json()["error"]["field"])


def test_the_same_key_and_body_answer_the_first_answer_again(stack: Stack, api: Api) -> None:
    key = new_key()
    before = records(stack)
    first = post(api, "/v1/messages/sms", sms(), key)
    assert first.status_code == 202 and "Idempotency-Replay" not in first.headers
    for body in (sms(), {"body": "code 1", "to": [NUMBER]}, {**sms(), "key": key}):  # any order, key in both
        again = post(api, "/v1/messages/sms", body, key)
        assert again.status_code == 202 and again.headers["Idempotency-Replay"] == "true"
        assert again.json() == first.json()
    assert records(stack) == before + 1
    assert stack.ledger.get(first.json()["id"])["key"] == key, "the key is the message's key too"


def test_the_body_key_works_like_the_header(stack: Stack, api: Api) -> None:
    key = new_key()
    first = post(api, "/v1/messages/sms", {**sms(), "key": key}, None)
    again = post(api, "/v1/messages/sms", {**sms(), "key": key}, None)
    by_header = post(api, "/v1/messages/sms", sms(), key)
    assert first.status_code == 202 and again.headers["Idempotency-Replay"] == "true"
    assert again.json() == first.json() == by_header.json()


def test_another_body_with_the_key_is_refused_naming_key(stack: Stack, api: Api) -> None:
    key = new_key()
    assert post(api, "/v1/messages/sms", sms(), key).status_code == 202
    before = records(stack)
    for path, body in (
        ("/v1/messages/sms", sms("code 2")),
        ("/v1/messages/voice", {"to": [NUMBER], "audio_url": "https://example.com/a.mp3"}),
        ("/v1/messages/batch", {"channel": "sms", "messages": [sms()]}),
    ):
        answer = post(api, path, body, key)
        assert answer.status_code == 422 and field_of(answer) == "key", path
        assert "message" in answer.json()["error"] and NUMBER not in answer.text
    assert records(stack) == before


def test_a_header_and_a_body_key_that_differ_are_refused(stack: Stack, api: Api) -> None:
    before = records(stack)
    answer = post(api, "/v1/messages/sms", {**sms(), "key": new_key()}, new_key())
    assert answer.status_code == 422 and field_of(answer) == "key"
    too_long = post(api, "/v1/messages/sms", sms(), "k" * 201)
    assert too_long.status_code == 422 and field_of(too_long) == "key"
    assert records(stack) == before


def test_a_request_still_in_flight_is_answered_409_with_retry_after(stack: Stack, api: Api) -> None:
    key = new_key()
    replies = Replies(stack.ledger, keep_seconds=86400)
    claim = replies.claim(key, digest("send:sms", sms()), hold=60)  # as a first request would
    assert claim.found is Found.CLAIMED
    busy = post(api, "/v1/messages/sms", sms(), key)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1" and field_of(busy) == "key"
    other = post(api, "/v1/messages/sms", sms("code 9"), key)
    assert other.status_code == 422 and field_of(other) == "key", "another body is refused even then"
    assert replies.free(claim)
    assert post(api, "/v1/messages/sms", sms(), key).status_code == 202


def test_bad_input_frees_the_key(stack: Stack, api: Api) -> None:
    key = new_key()
    bad = post(api, "/v1/messages/sms", {"to": ["12"], "body": "x"}, key)
    assert bad.status_code == 422 and field_of(bad) == "to[0]"
    good = post(api, "/v1/messages/sms", sms(), key)
    assert good.status_code == 202 and "Idempotency-Replay" not in good.headers


def test_fifty_concurrent_requests_with_one_key_record_one_message(stack: Stack, api: Api) -> None:
    key = new_key()
    before = records(stack)
    start = threading.Barrier(50)

    def one(_: int) -> requests.Response:
        with Api(api.base, API_KEY) as client:  # a connection of its own
            start.wait()
            return post(client, "/v1/messages/sms", sms("concurrent"), key)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    assert records(stack) == before + 1, "exactly one message recorded"
    accepted = [a for a in answers if a.status_code == 202]
    assert accepted, [a.status_code for a in answers]
    assert len({a.json()["id"] for a in accepted}) == 1, "every 2xx answer has the same id"
    assert sum(1 for a in accepted if "Idempotency-Replay" not in a.headers) <= 1, "one first answer"
    for answer in answers:
        if answer.status_code == 202:
            continue
        assert answer.status_code == 409 and answer.headers["Retry-After"].isdigit(), answer.text


def test_a_batch_with_a_key_is_recorded_once(stack: Stack, api: Api) -> None:
    key = new_key()
    body = {"channel": "sms", "messages": [sms(f"batch {n}") for n in range(4)]}
    before = records(stack)
    first = post(api, "/v1/messages/batch", body, key)
    assert first.status_code == 202, first.text
    again = post(api, "/v1/messages/batch", {**body, "key": key}, None)
    assert again.status_code == 202 and again.headers["Idempotency-Replay"] == "true"
    assert again.json() == first.json()
    assert records(stack) == before + 4
    ids = first.json()["ids"]
    assert [stack.ledger.get(i)["key"] for i in ids] == [f"{key}/{n}" for n in range(4)]
    other = post(api, "/v1/messages/batch", {**body, "messages": body["messages"][:3]}, key)
    assert other.status_code == 422 and field_of(other) == "key"


def test_a_campaign_with_a_key_is_recorded_once(stack: Stack, api: Api) -> None:
    key = new_key()
    body = {"channel": "sms", "to": [f"9665000030{n:02d}" for n in range(5)], "body": "sale"}
    first = post(api, "/v1/campaigns", body, key)
    assert first.status_code == 202, first.text
    before = records(stack)
    again = post(api, "/v1/campaigns", body, key)
    assert again.status_code == 202 and again.headers["Idempotency-Replay"] == "true"
    assert again.json() == first.json()
    assert records(stack) == before
    other = post(api, "/v1/campaigns", {**body, "body": "other sale"}, key)
    assert other.status_code == 422 and field_of(other) == "key"


def test_a_cancel_with_a_key_answers_its_first_answer_again(stack: Stack, api: Api) -> None:
    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    sent = post(api, "/v1/messages/sms", {**sms(), "at": at}, None)
    assert sent.status_code == 202 and sent.json()["status"] == "scheduled"
    message_id = sent.json()["id"]
    key = new_key()
    first = post(api, f"/v1/messages/{message_id}/cancel", None, key)
    again = post(api, f"/v1/messages/{message_id}/cancel", None, key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotency-Replay"] == "true" and again.json() == first.json()
    without = post(api, f"/v1/messages/{message_id}/cancel", None, None)
    assert without.status_code == 409, "without the key, the second cancel is refused"


def test_a_request_that_fails_with_5xx_frees_its_key(stack: Stack) -> None:
    """The API's Redis user may write the idempotency store but not the ledger: the send
    fails after its key was claimed (503); once it may, the same key records the message."""
    stack.redis.execute_command(
        "ACL", "SETUSER", "api-limited", "on", ">limited-pw", "resetkeys",
        f"~{keys.reply_key('*')}", f"~{keys.PREFIX}data-key", "allchannels", "+@all",
    )  # fmt: skip
    limited = stack.redis_server.url_with(user="api-limited", password="limited-pw")
    base = stack.start_api(
        "api-limited", extra_env={"HUDHUD_API_KEYS": f"shop:{API_KEY}", "HUDHUD_REDIS_URL": limited}
    )
    key = new_key()
    before = records(stack)
    with Api(base, API_KEY) as client:
        failed = post(client, "/v1/messages/sms", sms("after a failure"), key)
        assert failed.status_code == 503 and failed.headers["Retry-After"].isdigit()
        assert records(stack) == before
        denied = {str(entry["object"]) for entry in stack.redis.acl_log()}
        assert any(d.startswith(keys.PREFIX) for d in denied), f"the ledger's write was refused: {denied}"
        assert not any(d.startswith(keys.reply_key("")) for d in denied), "the key was claimed"
        stack.redis.execute_command("ACL", "SETUSER", "api-limited", "allkeys")
        retried = post(client, "/v1/messages/sms", sms("after a failure"), key)
        assert retried.status_code == 202, retried.text
        assert "Idempotency-Replay" not in retried.headers, "recorded now, not a replay of the failure"
        replay = post(client, "/v1/messages/sms", sms("after a failure"), key)
        assert replay.headers["Idempotency-Replay"] == "true" and replay.json() == retried.json()
    assert records(stack) == before + 1


def test_a_lapsed_claim_neither_frees_nor_overwrites_the_next_one(stack: Stack) -> None:
    replies = Replies(stack.ledger, keep_seconds=86400)
    key, request = new_key(), digest("send:sms", sms())
    first = replies.claim(key, request, hold=60)
    stack.redis.delete(first.key)  # as if its hold ran out
    second = replies.claim(key, request, hold=60)
    assert second.found is Found.CLAIMED
    assert not replies.free(first) and not replies.keep(first, 202, b'{"id":"x"}')
    assert replies.claim(key, request, hold=60).found is Found.IN_FLIGHT, "the second still holds it"
    assert replies.keep(second, 202, b'{"id":"y","status":"queued"}')
    answered = replies.claim(key, request, hold=60)
    assert (answered.found, answered.status, answered.body) == (
        Found.ANSWERED,
        202,
        b'{"id":"y","status":"queued"}',
    )
    assert replies.claim(key, digest("send:sms", sms("other")), hold=60).found is Found.OTHER_REQUEST
    assert key not in first.key and stack.redis.ttl(first.key) > 86000, "kept by fingerprint, a day"
