"""A provider answering 429 to everything, with `Retry-After: 1` (real worker, beat, sandbox).

A 429 proves nothing was sent, so it spends no attempt, however long the storm; and it slows
the provider down for every worker (the shared slow-down in the claim): while the storm
lasts, about one call per Retry-After reaches the provider, not one per waiting message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.stack import running_stack

pytestmark = pytest.mark.e2e

STORM_SECONDS = 12
MESSAGES = 40


def test_a_429_storm_spends_no_attempt_and_slows_every_worker_down(tmp_path: Path) -> None:
    env = {"HUDHUD_MAX_ATTEMPTS": "3"}
    with running_stack(tmp_path, extra_env=env, knobs={"rate_429": 1.0, "retry_after": 1}) as stack:
        stack.start_worker("w2", concurrency=10)
        ids = [
            r.id
            for r in stack.hudhud.send_many(
                "sms", [{"to": [f"9665200{i:05d}"], "body": "x"} for i in range(MESSAGES)]
            )
        ]
        time.sleep(4)  # the first calls, in flight when the storm began, are answered
        before = stack.sandbox.answers().get("taqnyat 429", 0)
        time.sleep(STORM_SECONDS)
        refused = stack.sandbox.answers().get("taqnyat 429", 0) - before
        stack.sandbox.knobs(rate_429=0.0)
        statuses = stack.wait_status(ids, {"sent", "failed"}, timeout=60)
        assert set(statuses.values()) == {"sent"}, "no message ended failed: 429s are not attempts"
        assert all(stack.hudhud.status(i)["attempts"] == 1 for i in ids)
        # One probe a second (each tried twice inside the call: HUDHUD_HTTP_RETRIES=1), shared
        # by both workers; without the shared slow-down every message retries every second.
        assert before >= MESSAGES, "the storm was met"
        assert refused <= STORM_SECONDS * 2 * 2, f"{refused} calls refused in {STORM_SECONDS} s"
