"""Sends over HTTP that must happen once, against a real `hudhud api` process and a real
redis-server: a batch with a key used for another request records nothing (so the fixed batch
sent again goes once), and a retry asked with an `Idempotency-Key` is made once even when its
first answer was not kept. Also the OpenAPI document's sender defaults, from the provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hudhud.config import Settings
from hudhud.worker.ledger import Status, keys
from hudhud.worker.providers import registry
from hudhud.worker.web import app as web_app
from tests.fake_provider import NAME, PigeonClient
from tests.stack import Stack, idle_stack
from tests.test_api import Api

API_KEY = "k-once-5d0b9e27aa"
NUMBER = "966500000432"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with idle_stack(tmp_path_factory.mktemp("api-once")) as made:
        yield made


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    with Api(stack.start_api(extra_env={"HUDHUD_API_KEYS": f"shop:{API_KEY}"}), API_KEY) as client:
        yield client


def records(stack: Stack) -> int:
    return sum(1 for _ in stack.redis.scan_iter(keys.msg_key("*"), count=1000))


def sms(text: str, key: str | None = None) -> dict[str, Any]:
    return {"to": [NUMBER], "body": text, **({"key": key} if key else {})}


def test_a_batch_with_a_key_used_for_another_request_records_nothing(stack: Stack, api: Api) -> None:
    first = api.post("/v1/messages/sms", json=sms("a", "invoice-1"), timeout=10)
    assert first.status_code == 202, first.text
    before = records(stack)
    batch = [sms("b"), sms("c", "invoice-1"), sms("d", "invoice-2")]
    refused = api.post("/v1/messages/batch", json={"channel": "sms", "messages": batch}, timeout=10)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "messages[1].key" and "nothing of the batch was recorded" in error["message"]
    assert first.json()["id"] not in error["message"], "another request's message id is not told"
    assert records(stack) == before
    fixed = [batch[0], sms("c", "invoice-3"), batch[2]]
    sent = api.post("/v1/messages/batch", json={"channel": "sms", "messages": fixed}, timeout=10)
    assert sent.status_code == 202, sent.text
    assert records(stack) == before + 3, "each message of the fixed batch once"


def bounced_email(stack: Stack, api: Api) -> str:
    sent = api.post(
        "/v1/messages/email",
        json={"to": ["omar@example.com"], "subject": "s", "text": "t", "reference": "invoice-9"},
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    message_id = str(sent.json()["id"])
    now = time.time()
    claim = stack.ledger.claim(message_id, "taifa", now=now)
    outcome, _ = stack.ledger.transition(
        message_id,
        to=Status.BOUNCED,
        expect=Status.SENDING,
        now=now,
        token=claim.attempts,
        fields={"provider_message_id": "taifa-9"},
    )
    assert outcome == "ok"
    return message_id


def retries_of(stack: Stack, message_id: str) -> list[str]:
    found = []
    for name in stack.redis.scan_iter(keys.msg_key("*"), count=1000):
        if stack.redis.hget(name, "retry_of") == message_id.encode():
            found.append(stack.redis.hget(name, "id").decode())  # type: ignore[union-attr]
    return found


def test_a_retry_with_a_key_is_made_once_when_its_answer_was_not_kept(stack: Stack, api: Api) -> None:
    original = bounced_email(stack, api)
    headers = {"Idempotency-Key": "retry-invoice-9"}
    first = api.post(f"/v1/messages/{original}/retry", headers=headers, timeout=10)
    assert first.status_code == 202, first.text
    for kept in stack.redis.scan_iter(keys.reply_key("*")):
        stack.redis.delete(kept)  # the answer lost: the retry was recorded, its reply not kept
    again = api.post(f"/v1/messages/{original}/retry", headers=headers, timeout=10)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert retries_of(stack, original) == [first.json()["id"]]
    assert "retry-invoice-9" not in first.json()["id"], "the id does not tell the key"
    assert stack.ledger.get(first.json()["id"])["reference"] == "invoice-9"
    other = api.post(f"/v1/messages/{original}/retry", headers={"Idempotency-Key": "other-9"}, timeout=10)
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"], "another key, another retry"


# --- the OpenAPI document -------------------------------------------------------------------


@pytest.fixture()
def pigeon() -> Iterator[None]:
    registry.register(PigeonClient)
    try:
        yield
    finally:
        registry.unregister(NAME)


def descriptions(settings: Settings, model: str, field: str) -> str:
    document = web_app.create_app(settings).openapi()
    return str(document["components"]["schemas"][model]["properties"][field]["description"])


def test_the_sender_defaults_name_the_variables_of_the_channels_provider(pigeon: None) -> None:
    assert "PIGEON_SENDER" in descriptions(Settings(sms_provider=NAME), "SmsSend", "sender")
    assert "PIGEON_SENDER" in descriptions(Settings(sms_provider=NAME), "SmsCampaign", "sender")
    settings = Settings()
    _, variable = registry.get(settings.voice_provider).default_sender("voice", settings)
    assert variable in descriptions(settings, "VoiceSend", "caller_id")
    source = (ROOT / "worker/web/schemas.py").read_text().lower()
    assert not [name for name in registry.names() if name in source], "the schemas name no provider"
