"""Taqnyat's delivery reports end to end, real processes only: redis-server, the sandbox
pushing reports (knobs `dlr_*`), `hudhud worker` and `hudhud api` receiving them at
`/webhooks/taqnyat`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hudhud.worker.ledger.status import Status
from tests.stack import Stack, idle_stack, wait_until

pytestmark = pytest.mark.e2e

PHRASE = "dlr-e2e-phrase-31"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with idle_stack(tmp_path_factory.mktemp("taqnyat-reports")) as stack:
        stack.start_worker("w1", concurrency=8)
        yield stack


@pytest.fixture(scope="module")
def hook(stack: Stack) -> str:
    """`hudhud api` with the pass phrase set: its Taqnyat webhook's URL."""
    api = stack.start_api(extra_env={"TAQNYAT_DLR_PASSPHRASE": PHRASE, "HUDHUD_API_KEYS": "t:k"})
    return f"{api}/webhooks/taqnyat"


def reports_on(stack: Stack, hook: str, **knobs: Any) -> None:
    defaults = {"dlr_url": hook, "dlr_passphrase": PHRASE, "dlr_delay_ms": 300, "dlr_format": "json"}
    stack.sandbox.knobs(**{**defaults, **knobs})


def pushed(stack: Stack, provider_message_id: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{stack.sandbox.url}/_sandbox/reports", timeout=10)
    reply.raise_for_status()
    return [r for r in reply.json()["reports"] if str(r["provider_message_id"]) == provider_message_id]


def report_events(stack: Stack, message_id: str) -> list[dict[str, Any]]:
    record = stack.ledger.get(message_id) or {}
    return [e for e in record.get("events", []) if e.get("type") == "report"]


def sent_sms(stack: Stack, to: str | list[str]) -> tuple[str, str]:
    """An SMS handed to Taqnyat: our id and Taqnyat's."""
    receipt = stack.hudhud.send_sms(to, "your parcel is on its way", sender="HUDHUD")
    stack.wait_status([receipt.id], {Status.SENT, Status.DELIVERED, Status.FAILED})
    return receipt.id, stack.ledger.field(receipt.id, "provider_message_id")


def test_an_sms_reaches_delivered_through_a_json_report(stack: Stack, hook: str) -> None:
    reports_on(stack, hook, dlr_status="delivered")
    number = "966500000301"
    message_id, taqnyat_id = sent_sms(stack, number)
    assert stack.wait_status([message_id], {Status.DELIVERED}) == {message_id: Status.DELIVERED}
    status = stack.hudhud.status(message_id)
    assert status["status"] == Status.DELIVERED and status["final"] is True
    [event] = report_events(stack, message_id)
    assert event["via"] == "webhook" and event["status"] == Status.DELIVERED and event["word"] == "DELIVRD"
    assert event["report"]["messageId"] == taqnyat_id
    assert number not in json.dumps(stack.ledger.get(message_id)["events"])  # type: ignore[index]
    [report] = wait_until(lambda: [r for r in pushed(stack, taqnyat_id) if r["done"]])
    assert report["tries"][-1]["http_status"] == 200
    assert report["tries"][-1]["answer"] == PHRASE  # the pass phrase echoed back


def test_a_failed_form_report_makes_the_sms_failed_with_the_word(stack: Stack, hook: str) -> None:
    reports_on(stack, hook, dlr_status="failed", dlr_format="form")
    message_id, taqnyat_id = sent_sms(stack, "966500000302")
    stack.wait_status([message_id], {Status.FAILED})
    record = stack.ledger.get(message_id) or {}
    assert "UNDELIV" in record["error"] and "Absent subscriber" in record["error"]
    assert [e["status"] for e in report_events(stack, message_id)] == [Status.FAILED]
    assert pushed(stack, taqnyat_id)[0]["format"] == "form"


def test_a_wrong_pass_phrase_changes_nothing(stack: Stack, hook: str) -> None:
    reports_on(stack, hook, dlr_status="failed", dlr_passphrase="not-the-phrase")
    message_id, taqnyat_id = sent_sms(stack, "966500000303")
    tries = wait_until(lambda: [t for r in pushed(stack, taqnyat_id) for t in r["tries"]][2:], timeout=30)
    assert {t["http_status"] for t in tries} == {401}
    assert stack.ledger.field(message_id, "status") == Status.SENT
    assert report_events(stack, message_id) == []


def test_a_campaigns_recipients_get_their_own_outcomes(stack: Stack, hook: str) -> None:
    reports_on(stack, hook, dlr_status="mixed")
    numbers = ["966500000311", "966500000312", "966500000313"]
    receipt = stack.hudhud.send_campaign("sms", {"to": numbers, "body": "sale today", "sender": "HUDHUD"})

    def counted() -> dict[str, Any] | None:
        summary = stack.hudhud.status(receipt.id)
        recipients = summary["recipient_counts"]
        return summary if recipients.get("delivered", 0) + recipients.get("failed", 0) == 3 else None

    summary = wait_until(counted, timeout=60)
    assert summary["recipient_counts"]["delivered"] == 2 and summary["recipient_counts"]["failed"] == 1
    failed = stack.hudhud.recipient_status(receipt.id, numbers[1])
    assert failed["status"] == Status.FAILED and "UNDELIV" in failed["error"]
    assert stack.hudhud.recipient_status(receipt.id, numbers[0])["status"] == Status.DELIVERED


def test_reports_by_taqnyats_id_alone_json_then_get(stack: Stack, hook: str) -> None:
    """Reports the endpoint is sent by hand (no `smsId`): a message to two numbers fails only
    once both have failed."""
    stack.sandbox.knobs(dlr_url="")
    first, second = "966500000321", "966500000322"
    message_id, taqnyat_id = sent_sms(stack, [first, second])
    answer = requests.post(
        hook,
        json={"msgId": taqnyat_id, "mobile": f"+{first}", "status": "UNDELIV", "passPhrase": PHRASE},
        timeout=10,
    )
    assert (answer.status_code, answer.text) == (200, PHRASE)
    assert stack.ledger.field(message_id, "status") == Status.SENT
    answer = requests.get(
        hook,
        params={"MessageID": taqnyat_id, "number": f"00{second}", "stat": "EXPIRED", "passphrase": PHRASE},
        timeout=10,
    )
    assert (answer.status_code, answer.text) == (200, PHRASE)
    record = stack.ledger.get(message_id) or {}
    assert record["status"] == Status.FAILED and "EXPIRED" in record["error"]
    assert len(report_events(stack, message_id)) == 2
    again = requests.get(hook, params={"MessageID": taqnyat_id, "stat": "DELIVRD"}, timeout=10)
    assert again.status_code == 401
    assert stack.ledger.field(message_id, "status") == Status.FAILED


def test_a_report_during_the_hand_over_is_refused_until_the_send_is_recorded(stack: Stack, hook: str) -> None:
    stack.sandbox.knobs(dlr_url="", latency_ms=2500)
    try:
        receipt = stack.hudhud.send_sms("966500000331", "your parcel is on its way", sender="HUDHUD")
        stack.wait_status([receipt.id], {Status.SENDING})
        report = {"smsId": receipt.id, "status": "DELIVRD", "passphrase": PHRASE}
        early = requests.post(hook, json=report, timeout=10)
        assert early.status_code == 503
        assert report_events(stack, receipt.id) == []
        stack.wait_status([receipt.id], {Status.SENT})
    finally:
        stack.sandbox.knobs(latency_ms=0)
    answer = requests.post(hook, json=report, timeout=10)
    assert (answer.status_code, answer.text) == (200, PHRASE)
    assert stack.ledger.field(receipt.id, "status") == Status.DELIVERED


def test_the_sandbox_refuses_bad_report_knobs(stack: Stack) -> None:
    for knobs in (
        {"dlr_format": "xml"},
        {"dlr_status": "maybe"},
        {"dlr_url": "ftp://x"},
        {"dlr_delay_ms": -1},
    ):
        reply = requests.post(f"{stack.sandbox.url}/_sandbox/knobs", json=knobs, timeout=10)
        assert reply.status_code == 400, knobs
        assert next(iter(knobs)) in reply.json()["error"]
