"""Personal data is not kept past its use (real worker, beat, sandbox).

Once a message is final its record keeps no body, attachment, number or address: only keyed
fingerprints (for idempotency and support look-ups), counts, ids and statuses. The one exception
is a message that ended `failed` or `expired` without reaching anyone: it keeps its payload for
`hudhud redrive` until it is redriven or its retention ends (tests/test_redrive.py). Every key of
a message expires; what is kept without expiry holds ids only.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from hudhud.worker.ledger import msg_key
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

BODY = "Your one-time code is 771204"
SUBJECT = "Receipt 5531 for Layla"
NUMBERS = [f"9665030{i:05d}" for i in range(12)]
ADDRESSES = [f"layla.{i}@example.com" for i in range(6)]
SECRET_WORDS = [BODY, SUBJECT, "771204", "Layla", *NUMBERS, *ADDRESSES]
# Keys that live as long as the deployment and hold ids, never personal data.
STRUCTURAL = {
    "hudhud:scheduled",
    "hudhud:queued",
    "hudhud:leases",
    "hudhud:tracking",
    "hudhud:doubt",
    "hudhud:data-key",
    "hudhud:taifa:updates-since",
    "hudhud:changes",  # the change stream: bounded by its length, and it names no one
    "hudhud:changes:dead",
    # the metrics' counters: one field a series (channel, provider, status), naming no one
    "hudhud:stats:messages",
    "hudhud:stats:recipients",
    "hudhud:stats:send",
    "hudhud:stats:in-doubt",
}
KEPT_PREFIXES = ("hudhud:pause:", "hudhud:balance:")  # a provider's state, naming no one


def dump(stack: Stack) -> dict[str, str]:
    """Every key of Redis and its whole content as text."""
    out: dict[str, str] = {}
    for raw in stack.redis.scan_iter(count=1000):
        key = raw.decode()
        kind = stack.redis.type(key).decode()
        if kind == "string":
            value: object = stack.redis.get(key)
        elif kind == "hash":
            value = stack.redis.hgetall(key)
        elif kind == "list":
            value = stack.redis.lrange(key, 0, -1)
        elif kind == "set":
            value = stack.redis.smembers(key)
        elif kind == "zset":
            value = stack.redis.zrange(key, 0, -1)
        else:
            value = kind
        out[key] = repr(value)
    return out


def test_final_records_keep_no_personal_data_and_every_message_key_expires(tmp_path: Path) -> None:
    knobs = {"progress_seconds": 0.2}
    with running_stack(tmp_path, knobs=knobs, extra_env={"HUDHUD_SMS_BATCH_SIZE": "4"}) as stack:
        hudhud = stack.hudhud
        ids = [hudhud.send_sms([NUMBERS[0]], BODY, key="otp-erasure").id]
        ids.append(
            hudhud.send_email(
                [ADDRESSES[0]],
                SUBJECT,
                text=BODY,
                provider="taifa",
                attachments=[
                    {
                        "filename": "r.txt",
                        "content_base64": base64.b64encode(BODY.encode()).decode(),
                        "content_type": "text/plain",
                    }
                ],
            ).id
        )
        ids.append(hudhud.send_email([ADDRESSES[1]], SUBJECT, text=BODY, provider="taqnyat").id)
        ids.append(hudhud.send_voice([NUMBERS[1]], "https://example.com/a.mp3").id)
        cancelled = hudhud.send_sms([NUMBERS[2]], BODY, at="2027-06-01T00:00:00Z").id
        hudhud.cancel(cancelled)
        campaign = hudhud.send_campaign("sms", {"to": NUMBERS[3:], "body": BODY})
        ids += [f"{campaign.id}.{n}" for n in range(campaign.batches)]
        email_campaign = hudhud.send_campaign(
            "email", {"to": ADDRESSES[2:], "subject": SUBJECT, "text": BODY}
        )
        ids += [f"{email_campaign.id}.{n}" for n in range(email_campaign.batches)]
        stack.wait_status(ids, {"sent", "delivered", "failed", "rejected"}, timeout=60)
        wait_until(lambda: stack.ledger.get(ids[1])["status"] == "delivered", timeout=30)  # type: ignore[index]
        assert hudhud.recipient_status(campaign.id, NUMBERS[5])["status"] == "sent", "look-ups still work"
        time.sleep(1)

        contents = dump(stack)
        leaks = {k: w for k, v in contents.items() for w in SECRET_WORDS if w in v}
        assert leaks == {}, f"personal data kept in {sorted(leaks)}"
        for key in contents:
            if key.startswith("hudhud:") and key not in STRUCTURAL and not key.startswith(KEPT_PREFIXES):
                assert stack.redis.ttl(key) > 0, f"{key} is kept forever"
        record = stack.redis.hgetall(msg_key(ids[0]))
        assert b"payload" not in record and b"request_hash" in record
