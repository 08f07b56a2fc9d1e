"""The sandbox knob `fault_provider`: the per-request faults hit one provider's paths only,
over real HTTP; latency still hits both."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from hudhud.worker.sandbox.knobs import KnobError, check_patch
from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN, Sandbox

TAIFA_EMAIL = {
    "from_": {"email": "hello@example.com"},
    "to": [{"email": "amina@example.com"}],
    "subject": "to taifa",
    "text": "Hi",
}
TAQNYAT_EMAIL = {
    "campaignName": "welcome",
    "subject": "to taqnyat",
    "from": "noreply@example.com",
    "to": ["one@example.com"],
    "msg": "<p>Hi</p>",
}
SMS = {"recipients": ["966500000000"], "body": "hello", "sender": "HUDHUD"}


def taifa(sandbox: Sandbox) -> requests.Response:
    auth = {"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}
    return requests.post(f"{sandbox.taifa_url}/emails/", json=TAIFA_EMAIL, headers=auth, timeout=10)


def taqnyat_email(sandbox: Sandbox) -> requests.Response:
    body = {**TAQNYAT_EMAIL, "bearerTokens": SANDBOX_TAQNYAT_TOKEN}
    return requests.post(f"{sandbox.url}/mailSend.php", json=body, timeout=10)


def taqnyat_sms(sandbox: Sandbox) -> requests.Response:
    auth = {"Authorization": f"Bearer {SANDBOX_TAQNYAT_TOKEN}"}
    return requests.post(f"{sandbox.url}/v1/messages", json=SMS, headers=auth, timeout=10)


def recorded(sandbox: Sandbox) -> list[str]:
    return [str(entry["provider"]) for entry in sandbox.sends()]


def test_default_faults_hit_both_providers(fresh_sandbox: Sandbox) -> None:
    assert fresh_sandbox.knobs(error_rate_5xx=1)["fault_provider"] == ""
    assert taifa(fresh_sandbox).status_code in (502, 503)
    assert taqnyat_email(fresh_sandbox).status_code in (502, 503)
    assert recorded(fresh_sandbox) == []


def test_taifa_faults_spare_taqnyat(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_provider="taifa", error_rate_5xx=1)
    assert taifa(fresh_sandbox).status_code in (502, 503)
    assert taqnyat_email(fresh_sandbox).status_code == 201
    assert taqnyat_sms(fresh_sandbox).status_code == 201
    assert recorded(fresh_sandbox) == ["taqnyat", "taqnyat"]
    assert fresh_sandbox.answers()["taqnyat 201"] == 2


def test_taqnyat_faults_spare_taifa(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_provider="taqnyat", rate_429=1)
    assert taqnyat_email(fresh_sandbox).status_code == 429
    assert taqnyat_sms(fresh_sandbox).status_code == 429
    assert taifa(fresh_sandbox).ok
    assert recorded(fresh_sandbox) == ["taifa"]


def test_timeouts_follow_the_knob(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_provider="taifa", timeout_rate=1, timeout_seconds=0)
    assert taifa(fresh_sandbox).status_code == 504
    assert taqnyat_email(fresh_sandbox).status_code == 201


def test_lost_replies_follow_the_knob(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_provider="taqnyat", fault_after_accept=1)
    assert taqnyat_email(fresh_sandbox).status_code == 504  # accepted, its reply lost
    assert taifa(fresh_sandbox).ok
    assert recorded(fresh_sandbox) == ["taqnyat", "taifa"]


def test_latency_hits_every_provider(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_provider="taifa", latency_ms=400)
    started = time.monotonic()
    assert taqnyat_email(fresh_sandbox).status_code == 201
    assert time.monotonic() - started >= 0.4  # a lower bound: a slow machine only adds to it


@pytest.mark.parametrize("value", ["both", "TAIFA", 1, None, ["taifa"]])
def test_unknown_value_is_refused(fresh_sandbox: Sandbox, value: Any) -> None:
    reply = requests.post(
        f"{fresh_sandbox.url}/_sandbox/knobs", json={"fault_provider": value, "rate_429": 1}, timeout=10
    )
    assert reply.status_code == 400 and "fault_provider" in reply.json()["error"]
    knobs = requests.get(f"{fresh_sandbox.url}/_sandbox/knobs", timeout=10).json()
    assert knobs["fault_provider"] == "" and knobs["rate_429"] == 0
    with pytest.raises(KnobError, match="fault_provider"):
        check_patch({"fault_provider": value})


def test_known_values_are_taken() -> None:
    for value in ("", "taifa", "taqnyat"):
        assert check_patch({"fault_provider": value}) == {"fault_provider": value}
