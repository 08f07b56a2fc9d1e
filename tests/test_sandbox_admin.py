"""The sandbox's admin endpoints, injected faults and start-time flags, over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN, Sandbox

TAQNYAT = {"Authorization": f"Bearer {SANDBOX_TAQNYAT_TOKEN}"}
TAIFA = {"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}
SMS = {"recipients": ["966500000000"], "body": "hello", "sender": "HUDHUD"}
EMAIL = {
    "from_": {"email": "hello@govconnect.ke"},
    "to": [{"email": "amina@example.com"}],
    "subject": "Hi",
    "text": "Hi",
}


def sms(sandbox: Sandbox) -> requests.Response:
    return requests.post(f"{sandbox.url}/v1/messages", json=SMS, headers=TAQNYAT, timeout=10)


def email(sandbox: Sandbox) -> requests.Response:
    return requests.post(f"{sandbox.taifa_url}/emails/", json=EMAIL, headers=TAIFA, timeout=10)


def admin(sandbox: Sandbox, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, f"{sandbox.url}/_sandbox{path}", json=body, timeout=10)


def balance(sandbox: Sandbox) -> str:
    return str(admin(sandbox, "GET", "/balance").json()["balance"])


# knobs


def test_knob_defaults(fresh_sandbox: Sandbox) -> None:
    knobs = admin(fresh_sandbox, "GET", "/knobs").json()
    assert knobs["latency_ms"] == 0 and knobs["error_rate_5xx"] == 0
    assert knobs["timeout_seconds"] == 30 and knobs["retry_after"] == 1
    assert knobs["price_sms"] == 0.026 and knobs["price_email"] == 0.01
    assert knobs["price_voice"] == 0.216 and knobs["balance"] == "2044.000"
    assert knobs["plan"] == "business" and knobs["progress_seconds"] == 1.0
    assert knobs["send_limit"] is None and knobs["form_fail_http_status"] == 400
    assert knobs["outage"] is False and knobs["api_disabled"] is False
    assert knobs["cost_as_string"] is False and knobs["fault_after_accept"] == 0


def test_knob_patch_returns_all_knobs(fresh_sandbox: Sandbox) -> None:
    knobs = fresh_sandbox.knobs(latency_ms=5, plan="pro")
    assert knobs["latency_ms"] == 5 and knobs["plan"] == "pro" and "rate_429" in knobs


def test_unknown_knob_is_400(fresh_sandbox: Sandbox) -> None:
    reply = admin(fresh_sandbox, "POST", "/knobs", {"latency_ms": 1, "colour": "red"})
    assert reply.status_code == 400
    assert "colour" in reply.json()["error"] and reply.json()["unknown"] == ["colour"]
    assert admin(fresh_sandbox, "GET", "/knobs").json()["latency_ms"] == 0


@pytest.mark.parametrize(
    "patch",
    [
        {"error_rate_5xx": 1.5},
        {"outage": "yes"},
        {"plan": "gold"},
        {"balance": -1},
        {"send_limit": 2.5},
        {"form_fail_http_status": 99},
    ],
)
def test_bad_knob_value_is_400(fresh_sandbox: Sandbox, patch: dict[str, Any]) -> None:
    assert admin(fresh_sandbox, "POST", "/knobs", patch).status_code == 400


def test_knobs_body_must_be_an_object(fresh_sandbox: Sandbox) -> None:
    assert admin(fresh_sandbox, "POST", "/knobs", [1]).status_code == 400


# balance


def test_balance_set_and_top_up(fresh_sandbox: Sandbox) -> None:
    assert admin(fresh_sandbox, "GET", "/balance").json() == {"balance": "2044.000", "currency": "SAR"}
    assert admin(fresh_sandbox, "POST", "/balance", {"set": 0}).json()["balance"] == "0.000"
    assert sms(fresh_sandbox).json()["message"] == "2"
    assert admin(fresh_sandbox, "POST", "/balance", {"add": "1.5"}).json()["balance"] == "1.500"
    assert sms(fresh_sandbox).status_code == 201
    reply = requests.get(f"{fresh_sandbox.url}/account/balance", headers=TAQNYAT, timeout=10)
    assert reply.json()["balance"] == "1.474"


@pytest.mark.parametrize("body", [{}, {"set": 1, "add": 1}, {"add": "lots"}, {"top": 1}])
def test_bad_balance_change_is_400(fresh_sandbox: Sandbox, body: dict[str, Any]) -> None:
    assert admin(fresh_sandbox, "POST", "/balance", body).status_code == 400


# the record of sends


def test_sends_since_seq(fresh_sandbox: Sandbox) -> None:
    sms(fresh_sandbox)
    email(fresh_sandbox)
    sms(fresh_sandbox)
    everything = admin(fresh_sandbox, "GET", "/sends").json()
    assert everything["count"] == 3
    assert [entry["seq"] for entry in everything["sends"]] == [1, 2, 3]
    assert [entry["channel"] for entry in everything["sends"]] == ["sms", "email", "sms"]
    assert set(everything["sends"][0]) == {
        "seq",
        "provider",
        "channel",
        "provider_message_id",
        "recipients",
        "sms_id",
        "delete_id",
        "tags",
        "subject",
        "body",
        "accepted_at",
    }
    later = requests.get(f"{fresh_sandbox.url}/_sandbox/sends", params={"since_seq": 2}, timeout=10).json()
    assert later["count"] == 1 and later["sends"][0]["seq"] == 3


def test_refused_sends_are_not_recorded(fresh_sandbox: Sandbox) -> None:
    requests.post(f"{fresh_sandbox.url}/v1/messages", json=SMS, timeout=10)
    requests.post(
        f"{fresh_sandbox.url}/v1/messages", json={**SMS, "sender": "X"}, headers=TAQNYAT, timeout=10
    )
    assert fresh_sandbox.sends() == []


def test_faulted_request_is_not_recorded(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(error_rate_5xx=1.0)
    assert sms(fresh_sandbox).status_code in (502, 503)
    assert email(fresh_sandbox).status_code in (502, 503)
    assert fresh_sandbox.sends() == []
    assert balance(fresh_sandbox) == "2044.000"


def test_fault_after_accept_is_recorded(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_after_accept=1.0)
    assert sms(fresh_sandbox).status_code == 504
    assert email(fresh_sandbox).status_code == 504
    assert [entry["channel"] for entry in fresh_sandbox.sends()] == ["sms", "email"]
    assert balance(fresh_sandbox) == "2043.974"


def test_fault_after_accept_spares_refusals_and_reads(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_after_accept=1.0)
    refused = requests.post(
        f"{fresh_sandbox.url}/v1/messages", json={**SMS, "sender": "X"}, headers=TAQNYAT, timeout=10
    )
    assert refused.status_code == 400
    reply = requests.get(f"{fresh_sandbox.url}/account/balance", headers=TAQNYAT, timeout=10)
    assert reply.status_code == 200


def test_reset(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(latency_ms=3, plan="free", balance=1)
    sms(fresh_sandbox)
    email(fresh_sandbox)
    assert admin(fresh_sandbox, "POST", "/reset").status_code == 200
    knobs = admin(fresh_sandbox, "GET", "/knobs").json()
    assert knobs["latency_ms"] == 0 and knobs["plan"] == "business"
    assert knobs["balance"] == "2044.000"
    assert fresh_sandbox.sends() == []
    listed = requests.get(f"{fresh_sandbox.taifa_url}/emails/", headers=TAIFA, timeout=10)
    assert listed.json()["total"] == 0


# faults


def test_5xx_rate_gives_503_or_502(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(error_rate_5xx=1.0)
    seen = set()
    for _ in range(40):
        reply = sms(fresh_sandbox)
        seen.add(reply.status_code)
        if reply.status_code == 503:
            assert reply.json() == {"statusCode": 503, "message": "Service Unavailable"}
        else:
            assert reply.status_code == 502 and "502 Bad Gateway" in reply.text
    assert seen == {502, 503}
    taifa = [email(fresh_sandbox) for _ in range(10)]
    assert any(r.status_code == 503 and r.json() == {"detail": "Service Unavailable"} for r in taifa)
    assert admin(fresh_sandbox, "GET", "/knobs").status_code == 200
    assert requests.get(f"{fresh_sandbox.url}/system/status", timeout=10).status_code == 200


def test_timeout_rate_hangs_then_504(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(timeout_rate=1.0, timeout_seconds=0.3)
    started = time.monotonic()
    reply = sms(fresh_sandbox)
    assert reply.status_code == 504
    assert time.monotonic() - started >= 0.3
    assert fresh_sandbox.sends() == []


def test_taqnyat_429_with_retry_after(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(rate_429=1.0, retry_after=3)
    reply = sms(fresh_sandbox)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"
    assert reply.json() == {"statusCode": 429, "message": "Too Many Requests"}


def test_latency_does_not_block_other_requests(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(latency_ms=300)
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: sms(fresh_sandbox).status_code, range(20)))
    elapsed = time.monotonic() - started
    assert statuses == [201] * 20
    assert 0.3 <= elapsed < 1.5


def test_outage_shows_on_system_status(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(outage=True, outage_description="SMS gateway maintenance", error_rate_5xx=1.0)
    reply = requests.get(f"{fresh_sandbox.url}/system/status", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {
        "statusCode": 200,
        "status": {"service": "sms,email,voice", "description": "SMS gateway maintenance"},
    }


# start-time flags


def test_start_flags_become_start_knobs() -> None:
    args = [
        "--latency-ms",
        "2",
        "--error-rate",
        "0",
        "--rate-429",
        "0",
        "--timeout-rate",
        "0",
        "--balance",
        "5",
        "--knobs",
        '{"plan": "pro", "price_sms": 0.5}',
    ]
    server = Sandbox(extra_args=args).start()
    try:
        knobs = server.knobs(plan="starter")
        assert knobs["balance"] == "5.000" and knobs["latency_ms"] == 2
        server.reset()
        knobs = requests.get(f"{server.url}/_sandbox/knobs", timeout=10).json()
        assert knobs["plan"] == "pro" and knobs["price_sms"] == 0.5
        assert knobs["balance"] == "5.000"
    finally:
        server.stop()


def test_unknown_start_knob_stops_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hudhud.worker.sandbox", "--knobs", '{"nope": 1}'],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "nope" in result.stderr
