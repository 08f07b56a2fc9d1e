"""End to end: Taqnyat reports a spent balance in words only, with no error number.

Real redis-server, sandbox, `hudhud worker` and `hudhud beat` processes. The sandbox answers
`{"statusCode":400,"message":"Your balance is 0"}` (knob `sms_error_shape` = `words`): the
messages must be held and Taqnyat paused, then all sent exactly once after the top-up.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.helpers import SANDBOX_TAQNYAT_TOKEN
from tests.stack import running_stack, wait_until

pytestmark = pytest.mark.e2e

ENDED = {"rejected", "failed"}


def test_balance_outage_in_words_only_holds_sms_until_top_up(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs={"sms_error_shape": "words"}) as stack:
        balance = f"{stack.sandbox.url}/_sandbox/balance"
        requests.post(balance, json={"set": "0"}, timeout=5).raise_for_status()
        probe = requests.post(
            f"{stack.sandbox.url}/v1/messages",
            json={"recipients": ["966500000000"], "body": "probe", "sender": "HUDHUD"},
            headers={"Authorization": f"Bearer {SANDBOX_TAQNYAT_TOKEN}"},
            timeout=5,
        )
        assert probe.json() == {"statusCode": 400, "message": "Your balance is 0"}

        ids = [stack.hudhud.send_sms([f"9665{700 + i:08d}"], f"receipt {i}").id for i in range(5)]

        def paused_or_ended() -> bool:
            ended = ENDED & {str(s) for s in stack.ledger.status_of(ids)}
            return bool(ended or stack.ledger.pause_reason("taqnyat"))

        wait_until(paused_or_ended, timeout=30)
        time.sleep(2)  # let every message reach the provider or the held set
        statuses = stack.ledger.status_of(ids)
        assert not ENDED & {str(s) for s in statuses}, statuses
        reason = stack.ledger.pause_reason("taqnyat")
        assert reason is not None and reason["kind"] == "balance"
        assert reason["code"] == "2"
        assert set(statuses) == {"queued"}, statuses
        assert stack.sandbox.sends() == []

        requests.post(balance, json={"set": 1000}, timeout=5).raise_for_status()
        stack.wait_status(ids, {"sent"}, timeout=60)
        time.sleep(1)  # a duplicate send would show up in the record by now
        sent = Counter(str(send["sms_id"]) for send in stack.sandbox.sends())
        assert {i: sent[i] for i in ids} == dict.fromkeys(ids, 1)
        assert sum(sent.values()) == len(ids)
        assert stack.ledger.pause_reason("taqnyat") is None
