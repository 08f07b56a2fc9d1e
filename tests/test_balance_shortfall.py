"""A balance too small for one send (real worker, beat and sandbox).

With 5 SAR left, a 300-recipient SMS batch (7.80 SAR) is refused with Taqnyat's code 3.
Only that batch waits for a top-up: Taqnyat is not paused, OTPs go on, and nothing flaps.
After a top-up the batch goes out once; without one it ends `failed` after
`HUDHUD_BALANCE_WAIT`, saying why. When not even one SMS fits, Taqnyat is paused and stays
paused until the balance grows.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from hudhud.worker.ledger import short_key
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e


def set_balance(stack: Stack, amount: float) -> None:
    requests.post(f"{stack.sandbox.url}/_sandbox/balance", json={"set": amount}, timeout=5).raise_for_status()


def accepted_calls(stack: Stack) -> int:
    return len(stack.sandbox.sends())


def test_a_batch_the_balance_cannot_pay_for_waits_alone_while_otps_go_on(tmp_path: Path) -> None:
    with running_stack(tmp_path, extra_env={"HUDHUD_SMS_BATCH_SIZE": "300"}) as stack:
        set_balance(stack, 5)
        numbers = [f"9665040{i:05d}" for i in range(300)]
        campaign = stack.hudhud.send_campaign("sms", {"to": numbers, "body": "sale"})
        batch = f"{campaign.id}.0"
        wait_until(lambda: stack.redis.zscore(short_key("taqnyat"), batch) is not None, timeout=30)
        started = time.monotonic()
        otps = [stack.hudhud.send_sms([f"9665041{i:05d}"], f"code {i}").id for i in range(10)]
        stack.wait_status(otps, {"sent"}, timeout=20)
        assert time.monotonic() - started < 10, "OTPs did not wait behind the batch"
        assert stack.ledger.pause_reason("taqnyat") is None, "Taqnyat was not paused for one batch"
        time.sleep(5)
        record = stack.ledger.get(batch) or {}
        assert record["status"] == "queued" and record["attempts"] == "0", "no retry budget spent"
        assert "cannot pay for this send to 300 recipients" in record["error"]
        refusals = stack.sandbox.answers().get("taqnyat 400", 0)
        assert refusals <= 3, f"the batch was tried {refusals} times while nothing changed"
        set_balance(stack, 100)
        stack.wait_status([batch], {"sent"}, timeout=30)
        sends = [s for s in stack.sandbox.sends() if len(s["recipients"]) == 300]  # type: ignore[arg-type]
        assert len(sends) == 1, "the batch went out once after the top-up"


def test_a_batch_ends_failed_when_no_top_up_comes_in_time(tmp_path: Path) -> None:
    env = {"HUDHUD_SMS_BATCH_SIZE": "300", "HUDHUD_BALANCE_WAIT": "6"}
    with running_stack(tmp_path, extra_env=env) as stack:
        set_balance(stack, 5)
        numbers = [f"9665042{i:05d}" for i in range(300)]
        campaign = stack.hudhud.send_campaign("sms", {"to": numbers, "body": "sale"})
        batch = f"{campaign.id}.0"
        stack.wait_status([batch], {"failed"}, timeout=40)
        error = stack.hudhud.status(batch)["error"]
        assert "no top-up came within 6 s" in error and "300 recipients" in error


def test_when_not_even_one_sms_fits_taqnyat_stays_paused_until_the_balance_grows(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        set_balance(stack, 0.01)
        ids = [stack.hudhud.send_sms([f"9665043{i:05d}"], f"code {i}").id for i in range(3)]
        wait_until(lambda: stack.ledger.pause_reason("taqnyat") is not None, timeout=30)
        time.sleep(6)  # several probe intervals (1 s in tests)
        assert stack.ledger.pause_reason("taqnyat") is not None, "not resumed while nothing changed"
        assert stack.sandbox.answers().get("taqnyat 400", 0) <= len(ids), "no pause-resume flapping"
        set_balance(stack, 50)
        stack.wait_status(ids, {"sent"}, timeout=30)
        assert accepted_calls(stack) == 3
