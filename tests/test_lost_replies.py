"""Lost replies are in doubt, not retried blindly (real worker, beat and sandbox).

The sandbox's knob `fault_after_accept` answers 504 after it accepted a send: the provider
has the message, hudhud never hears so. Every message is then flagged in doubt; Taifa is
asked before anything is sent again (so each email is accepted once, campaign emails one by
one); a Taqnyat message is sent again at most once and ends `sent` in doubt, never `failed`;
a Taqnyat campaign batch waits for an operator's decision instead of going out twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.delivery.doubt import awaiting_decision
from hudhud.worker.ledger import DOUBT
from hudhud.worker.producer.api import Refused
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

LOST = {"fault_after_accept": 1.0}


def accepted_per_recipient(stack: Stack) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in stack.sandbox.sends():
        for recipient in entry.get("recipients") or []:  # type: ignore[attr-defined]
            counts[str(recipient)] += 1
    return counts


def test_a_taqnyat_sms_whose_replies_are_lost_goes_out_at_most_twice_and_ends_sent_in_doubt(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, knobs=LOST) as stack:
        numbers = [f"96650000{i:04d}" for i in range(5)]
        ids = [stack.hudhud.send_sms([n], f"otp {i}").id for i, n in enumerate(numbers)]
        stack.wait_status(ids, {"sent", "failed", "rejected"}, timeout=60)
        time.sleep(2)  # nothing more goes out afterwards
        counts = accepted_per_recipient(stack)
        assert [counts[n] for n in numbers] == [2] * 5, "the first send and one resend, no more"
        for mid in ids:
            status = stack.hudhud.status(mid)
            assert status["status"] == "sent" and status["in_doubt"] is True
            assert "may have been delivered" in (status["error"] or "")


def test_a_taifa_email_whose_reply_is_lost_is_reconciled_not_resent(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs=LOST) as stack:
        addresses = [f"lost{i}@example.com" for i in range(4)]
        ids = [stack.hudhud.send_email([a], "receipt", text="paid", provider="taifa").id for a in addresses]
        stack.wait_status(ids, {"sent", "delivered", "failed", "rejected"}, timeout=60)
        time.sleep(2)
        counts = accepted_per_recipient(stack)
        assert [counts[a] for a in addresses] == [1] * 4, "Taifa was asked before any resend"
        for mid in ids:
            record = stack.ledger.get(mid) or {}
            types = [e["type"] for e in record["events"]]
            assert "in_doubt" in types and "reconciled" in types
            assert record.get("provider_message_id"), "the email Taifa has is the one recorded"


def test_a_taifa_campaign_batch_whose_reply_is_lost_is_reconciled_email_by_email(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs=LOST, extra_env={"HUDHUD_TAIFA_BATCH_SIZE": "10"}) as stack:
        addresses = [f"camp{i}@example.com" for i in range(25)]
        receipt = stack.hudhud.send_campaign("email", {"to": addresses, "subject": "s", "text": "t"})
        batches = [f"{receipt.id}.{n}" for n in range(receipt.batches)]
        stack.wait_status(batches, {"sent", "failed", "rejected"}, timeout=60)
        counts = accepted_per_recipient(stack)
        assert [counts[a] for a in addresses] == [1] * 25, "no email of a batch went out twice"
        summary = stack.hudhud.status(receipt.id)
        assert summary["recipient_counts"]["sent"] + summary["recipient_counts"]["delivered"] == 25


def test_a_taqnyat_campaign_batch_in_doubt_waits_for_a_decision(tmp_path: Path) -> None:
    with running_stack(tmp_path, knobs=LOST, extra_env={"HUDHUD_SMS_BATCH_SIZE": "10"}) as stack:
        numbers = [f"96651000{i:04d}" for i in range(30)]
        receipt = stack.hudhud.send_campaign("sms", {"to": numbers, "body": "sale"})
        wait_until(lambda: stack.redis.zcard(DOUBT) == 3, timeout=60)
        time.sleep(2)
        counts = accepted_per_recipient(stack)
        assert [counts[n] for n in numbers] == [1] * 30, "no batch was sent again whole"
        summary = stack.hudhud.status(receipt.id)
        assert summary["status"] != "sent" and summary["recipient_counts"]["pending"] == 30
        first, second = f"{receipt.id}.0", f"{receipt.id}.1"
        with pytest.raises(Refused):
            stack.hudhud.cancel(first)
        check = json.loads(stack.cli("check", "--json").stdout)
        assert any("wait for a decision" in p for p in check["problems"]), check["problems"]
        done = stack.cli("resolve", first, "--sent", "--json")
        assert done.returncode == 0 and json.loads(done.stdout)["status"] == "sent", done.stderr
        stack.sandbox.knobs(fault_after_accept=0.0)
        again = stack.cli("resolve", second, "--resend", "--json")
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "queued", again.stderr
        stack.wait_status([second], {"sent"}, timeout=30)
        counts = accepted_per_recipient(stack)
        assert [counts[n] for n in numbers[10:20]] == [2] * 10, "resent whole, as the operator chose"
        assert stack.hudhud.status(first)["status"] == "sent"
        assert stack.hudhud.status(first)["in_doubt"] is True
        delivery = Delivery(stack.ledger, stack.settings, lambda name: None)
        assert [m for m, _ in awaiting_decision(delivery)] == [f"{receipt.id}.2"]
        assert stack.cli("resolve", first, "--sent").returncode == 1, "nothing left to decide"
