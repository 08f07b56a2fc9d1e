"""The in-doubt paths one by one, against a real redis-server and the sandbox over HTTP.

Each test puts a message in the state a lost reply leaves it in, then runs the real delivery
code and counts what the sandbox accepted.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.delivery import doubt
from hudhud.worker.delivery.attempt import Delivery, reconcile_tag
from hudhud.worker.ledger import Ledger, NewMessage, held_key, keys
from hudhud.worker.providers.results import SendResult
from hudhud.worker.providers.taifa import TaifaClient
from hudhud.worker.runtime import make_ledger
from tests.helpers import Sandbox
from tests.stack import FAST_BEAT

ADDRESSES = [f"part{i}@example.com" for i in range(6)]


@pytest.fixture()
def settings(redis_client: redis.Redis, fresh_sandbox: Sandbox) -> Settings:
    url = redis_client.connection_pool.connection_kwargs
    return Settings(
        **{**FAST_BEAT, "HUDHUD_BACKOFF_BASE": "0.01", "HUDHUD_BACKOFF_CAP": "0.05"},
        **fresh_sandbox.env(),
        HUDHUD_REDIS_URL=f"redis://{url['host']}:{url['port']}/0",
    )


@pytest.fixture()
def delivery(settings: Settings, redis_client: redis.Redis) -> Delivery:
    runtime.reset()
    ledger = make_ledger(settings, redis_client)
    return Delivery(ledger, settings, lambda name: runtime.provider_client(name, settings))


def accepted(sandbox: Sandbox) -> Counter[str]:
    return Counter(str(r) for s in sandbox.sends() for r in s["recipients"])  # type: ignore[attr-defined]


def batch(ledger: Ledger, mid: str) -> None:
    payload = {"to": ADDRESSES, "subject": "s", "text": "t", "from": "noreply@example.com", "each": True}
    msg = NewMessage(
        id=mid, channel="email", provider="taifa", payload={**payload, "batch": True}, request_hash="h"
    )
    ledger.create(msg, now=time.time())


def test_a_partly_reconciled_batch_never_sends_the_found_part_again(
    delivery: Delivery, settings: Settings, fresh_sandbox: Sandbox
) -> None:
    ledger = delivery.ledger
    batch(ledger, "camp.0")
    taifa = TaifaClient.from_settings(settings)
    for address in ADDRESSES[:4]:  # what Taifa got before the reply was lost
        taifa.send("noreply@example.com", [address], "s", text="t", tags=[reconcile_tag("camp.0")])
    ledger.flag("camp.0", in_doubt="1", reconcile="1")
    fresh_sandbox.knobs(plan="free")  # the batch endpoint refuses the rest: Taifa is paused
    assert delivery.deliver("camp.0", "taifa").result == "held"
    assert json.loads(ledger.field("camp.0", "reconciled")).keys() == set(ADDRESSES[:4])
    fresh_sandbox.knobs(plan="business")
    ledger.resume("taifa")
    assert [item[0] for item in ledger.release_held(held_key("taifa"), now=time.time()).items] == ["camp.0"]
    assert delivery.deliver("camp.0", "taifa").result == "sent"
    assert [accepted(fresh_sandbox)[a] for a in ADDRESSES] == [1] * 6, "each email once"
    record = ledger.get("camp.0") or {}
    assert len(json.loads(record["accepted"])) == 6 and record.get("in_doubt") == ""


def test_an_outcome_written_after_its_lease_ran_out_still_wins(delivery: Delivery) -> None:
    ledger = delivery.ledger
    msg = NewMessage(
        id="late",
        channel="sms",
        provider="taqnyat",
        payload={"to": ["966500000009"], "body": "x", "sender": "HUDHUD"},
        request_hash="h",
    )
    ledger.create(msg, now=time.time())
    claim = ledger.claim("late", "taqnyat", now=time.time())
    result = delivery.call("late", claim)  # accepted by the provider...
    # ...but Redis was full past the lease: beat took the send for lost and requeued it.
    sweep = ledger.expired_leases(now=time.time() + ledger.lease_seconds + 1)
    assert [item[0] for item in sweep.items] == ["late"]
    assert doubt.lease_ran_out(delivery, "late", "taqnyat", claim.attempts).result == "retry"
    assert ledger.get("late")["status"] == "queued"  # type: ignore[index]
    assert delivery.sent("late", claim, result).result == "sent"
    record = ledger.get("late") or {}
    assert record["status"] == "sent" and record.get("in_doubt") == "", "no newer claim: the answer wins"
    assert delivery.deliver("late", "taqnyat").result == "skip", "nothing left to send again"


def test_a_lost_reply_on_the_last_attempt_is_still_asked_about(
    delivery: Delivery, settings: Settings, fresh_sandbox: Sandbox
) -> None:
    ledger = delivery.ledger
    msg = NewMessage(
        id="last",
        channel="email",
        provider="taifa",
        payload={"to": ["last@example.com"], "subject": "s", "text": "t", "from": "noreply@example.com"},
        request_hash="h",
    )
    ledger.create(msg, now=time.time())
    ledger.redis.hset("hudhud:m:last", "attempts", str(settings.max_attempts - 1))
    fresh_sandbox.knobs(fault_after_accept=1.0)
    assert delivery.deliver("last", "taifa").result == "retry", "in doubt on its last attempt: ask"
    fresh_sandbox.knobs(fault_after_accept=0.0)
    time.sleep(0.1)
    assert delivery.deliver("last", "taifa").result == "sent", "Taifa had it"
    assert accepted(fresh_sandbox)["last@example.com"] == 1


class CannotTell(TaifaClient):
    """A provider that can be asked but answers that it cannot tell."""

    def reconcile(self, message_id: str) -> dict[str, str] | None:
        return None


def test_a_provider_that_cannot_tell_gets_no_resend_but_an_operator_decision(
    settings: Settings, redis_client: redis.Redis, fresh_sandbox: Sandbox
) -> None:
    runtime.reset()
    ledger = make_ledger(settings, redis_client)
    client = CannotTell.from_settings(settings)
    unsure = Delivery(ledger, settings, lambda name: client)
    batch(ledger, "camp.1")
    ledger.flag("camp.1", in_doubt="1", reconcile="1")
    assert unsure.deliver("camp.1", "taifa").result == "doubt"
    assert fresh_sandbox.sends() == [], "nothing was sent again"
    assert ledger.is_in("doubt", "camp.1")
    assert "cannot tell" in ledger.field("camp.1", "error")


def test_a_rejection_in_the_providers_words_reaches_the_change_stream_without_the_address(
    delivery: Delivery, redis_client: redis.Redis
) -> None:
    ledger = delivery.ledger
    payload = {"to": ["amina@example.com"], "subject": "s", "text": "t", "from": "noreply@example.com"}
    ledger.create(
        NewMessage(id="m-rej", channel="email", provider="taifa", payload=payload, request_hash="h"),
        now=time.time(),
    )
    claim = ledger.claim("m-rej", "taifa", now=time.time())
    refused = SendResult("taifa", None, "rejected", rejection_reason="amina@example.com is suppressed")
    assert delivery.sent("m-rej", claim, refused).result == "rejected"
    entries = redis_client.xrange(keys.CHANGES)
    last = {k.decode(): v.decode() for k, v in entries[-1][1].items()}
    assert last["status"] == "rejected" and "suppressed" in last["error"]
    assert all("amina@example.com" not in str(fields) for _, fields in entries)
