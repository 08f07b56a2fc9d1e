"""`hudhud status` tells the truth (real worker, beat and sandbox): the error of the current
state only, one time format, one money format with its currency, each event once and in
order, a campaign's status made of its batches', and whether a state is final."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hudhud.worker.ledger import Ledger, NewMessage
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MONEY = re.compile(r"^\d+\.\d{3}$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    knobs = {"progress_seconds": 0.2}
    with running_stack(tmp_path_factory.mktemp("truth"), knobs=knobs) as made:
        yield made


def check_shape(status: dict[str, object]) -> None:
    events = status["events"]
    assert isinstance(events, list)
    times = [e["at"] for e in events]
    assert all(ISO.match(str(t)) for t in times), times
    assert times == sorted(times), "in order"
    assert len({repr(e) for e in events}) == len(events), "each event once"
    for name in ("created_at", "updated_at"):
        assert ISO.match(str(status[name]))


def test_a_message_sent_after_a_pause_shows_no_old_error(stack: Stack) -> None:
    url = f"{stack.sandbox.url}/_sandbox/balance"
    requests.post(url, json={"set": 0}, timeout=5).raise_for_status()
    try:
        mid = stack.hudhud.send_sms(["966500000321"], "after the pause").id
        wait_until(lambda: stack.ledger.pause_reason("taqnyat") is not None, timeout=30)
        held = stack.hudhud.status(mid)
        assert held["status"] == "queued" and "balance" in (held["error"] or "").lower()
        assert held["final"] is False
    finally:
        requests.post(url, json={"set": 1000}, timeout=5).raise_for_status()
    stack.wait_status([mid], {"sent"}, timeout=30)
    status = stack.hudhud.status(mid)
    assert status["error"] is None, "the error of the current state only"
    assert status["final"] is True, "Taqnyat reports nothing after sent"
    assert MONEY.match(str(status["cost"])) and status["currency"] == "SAR"
    check_shape(status)


def test_every_channel_gives_money_with_its_currency_and_taifa_is_final_only_when_delivered(
    stack: Stack,
) -> None:
    voice = stack.hudhud.send_voice(["966500000322"], "https://example.com/a.mp3").id
    email = stack.hudhud.send_email(["m@example.com"], "s", text="t", provider="taqnyat").id
    taifa = stack.hudhud.send_email(["t@example.com"], "s", text="t", provider="taifa").id
    stack.wait_status([voice, email], {"sent"}, timeout=30)
    for mid in (voice, email):
        status = stack.hudhud.status(mid)
        assert MONEY.match(str(status["cost"])) and status["currency"] == "SAR", status
    stack.wait_status([taifa], {"sent", "delivered"}, timeout=30)
    if stack.hudhud.status(taifa)["status"] == "sent":
        assert stack.hudhud.status(taifa)["final"] is False, "Taifa reports delivery later"
    stack.wait_status([taifa], {"delivered"}, timeout=30)
    status = stack.hudhud.status(taifa)
    assert status["final"] is True
    assert [e["type"] for e in status["events"]].count("delivered") == 1
    check_shape(status)


def test_a_campaign_with_a_rejected_batch_says_so(tmp_path: Path) -> None:
    with running_stack(tmp_path, beat=False, extra_env={"HUDHUD_SMS_BATCH_SIZE": "2"}) as own:
        numbers = ["966501000001", "966501000002", "999501000003", "999501000004"]
        campaign = own.hudhud.send_campaign("sms", {"to": numbers, "body": "sale"})
        own.wait_status([f"{campaign.id}.0", f"{campaign.id}.1"], {"sent", "rejected"}, timeout=30)
        summary = own.hudhud.status(campaign.id)
        assert summary["batch_statuses"] == {"sent": 1, "rejected": 1}
        assert summary["status"] == "sent" and summary["final"] is True
        assert summary["error"].startswith("1 of 2 batches ended rejected"), summary["error"]
        assert summary["recipient_counts"]["sent"] == 2 and summary["recipient_counts"]["rejected"] == 2
        assert MONEY.match(str(summary["cost"])) and summary["currency"] == "SAR"


def test_a_late_result_refused_leaves_no_stray_event(stack: Stack) -> None:
    ledger: Ledger = stack.ledger
    msg = NewMessage(id="zombie", channel="sms", provider="taqnyat", payload={"to": ["1"]}, request_hash="h")
    ledger.create(msg, now=time.time())
    first = ledger.claim("zombie", "taqnyat", now=time.time())
    ledger.transition("zombie", to="queued", expect="sending", now=time.time(), token=first.attempts)
    before = len(ledger.get("zombie")["events"])  # type: ignore[index]
    outcome, _ = ledger.transition(
        "zombie", to="queued", expect="sending", now=time.time(), token=first.attempts
    )
    assert outcome == "stale"
    assert len(ledger.get("zombie")["events"]) == before  # type: ignore[index]
