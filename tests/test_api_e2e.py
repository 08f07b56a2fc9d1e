"""End to end over HTTP: a real `hudhud api`, a real worker and beat, the sandbox and
redis-server. What is sent through the API reaches the provider and its end, and the API's
record of it says so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import Stack, running_stack, wait_until
from tests.test_api import Api

pytestmark = pytest.mark.e2e

API_KEY = "k-e2e-5d20f9a7c3"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("api-e2e"), knobs={"progress_seconds": 0.2}) as made:
        yield made


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    with Api(stack.start_api(extra_env={"HUDHUD_API_KEYS": f"shop:{API_KEY}"}), API_KEY) as client:
        yield client


def record(api: Api, message_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/messages/{message_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def reaches(api: Api, message_id: str, statuses: set[str]) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        shown = record(api, message_id)
        return shown if shown["status"] in statuses else None

    found: dict[str, Any] = wait_until(check, timeout=60)
    return found


def test_an_sms_and_an_email_sent_over_http_are_sent(stack: Stack, api: Api) -> None:
    sms = api.post(
        "/v1/messages/sms",
        json={"to": ["966500000901"], "body": "code 1", "reference": "otp-1"},
        timeout=10,
    )
    email = api.post(
        "/v1/messages/email",
        json={"to": ["person.api@example.com"], "subject": "hello", "text": "hi", "html": "<b>hi</b>"},
        timeout=10,
    )
    assert sms.status_code == email.status_code == 202
    sent = reaches(api, sms.json()["id"], {"sent"})
    assert sent["final"] and sent["provider"] == "taqnyat" and sent["provider_message_id"]
    assert sent["reference"] == "otp-1" and sent["cost"] is not None
    mailed = reaches(api, email.json()["id"], {"sent", "delivered"})
    assert mailed["provider"] == "taifa" and mailed["provider_message_id"]
    assert [e["type"] for e in mailed["events"]][:3] == ["queued", "sending", "sent"]
    handed = {str(s["provider_message_id"]): s for s in stack.sandbox.sends()}
    assert handed[sent["provider_message_id"]]["recipients"] == ["966500000901"], "the provider got it"
    assert handed[mailed["provider_message_id"]]["subject"] == "hello"


def test_a_campaign_sent_over_http_reaches_its_end(stack: Stack, api: Api) -> None:
    to = [f"9665000040{n:02d}" for n in range(30)]
    answer = api.post(
        "/v1/campaigns",
        json={"channel": "sms", "to": to, "body": "spring sale", "reference": "spring"},
        headers={"Idempotency-Key": "campaign-spring-e2e"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["recipients"] == 30

    def ended() -> dict[str, Any] | None:
        shown = record(api, receipt["id"])
        return shown if shown["final"] else None

    summary: dict[str, Any] = wait_until(ended, timeout=60)
    assert summary["status"] == "sent" and summary["recipient_counts"]["sent"] == 30
    assert summary["reference"] == "spring"
    again = api.post(
        "/v1/campaigns",
        json={"channel": "sms", "to": to, "body": "spring sale", "reference": "spring"},
        headers={"Idempotency-Key": "campaign-spring-e2e"},
        timeout=30,
    )
    assert again.json() == receipt and again.headers["Idempotency-Replay"] == "true"


def test_a_bounced_email_is_retried_over_http(stack: Stack, api: Api) -> None:
    sent = api.post(
        "/v1/messages/email",
        json={"to": ["bounce-api@example.com"], "subject": "bounce me", "text": "x"},
        timeout=10,
    )
    bounced = reaches(api, sent.json()["id"], {"bounced"})
    retried = api.post(f"/v1/messages/{bounced['id']}/retry", timeout=10)
    assert retried.status_code == 202, retried.text
    retry = retried.json()
    assert retry["retry_of"] == bounced["id"] and retry["id"] != bounced["id"]
    shown = reaches(api, retry["id"], {"sent", "bounced", "delivered"})
    assert shown["retry_of"] == bounced["id"]
