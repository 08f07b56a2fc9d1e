"""`hudhud redrive`: messages that ended failed or expired are sent again as new messages linked
to the old ones, once; rejected ones never; the old payload is kept until then and erased after."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.jobs import Jobs
from hudhud.worker.ledger import Ledger, NewMessage, Status, msg_key, redrives
from hudhud.worker.ledger.keys import EXPIRIES, ended_key
from hudhud.worker.ledger.status import Lane
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.producer.redrive import Outcome, redrive
from tests.helpers import RedisServer
from tests.stack import Stack, running_stack, wait_until

TO = "966500000123"


@pytest.fixture()
def hudhud(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Hudhud]:
    runtime.reset()
    settings = Settings(redis_url=redis_server.url, taqnyat_sender="HUDHUD")
    yield Hudhud(settings, app=create_app(settings))
    runtime.reset()


def recorded(ledger: Ledger, mid: str, *, provider: str = "taqnyat", **extra: Any) -> str:
    payload = extra.pop("payload", {"to": [TO], "body": f"code for {mid}"})
    msg = NewMessage(id=mid, channel="sms", provider=provider, payload=payload, request_hash=mid, **extra)
    assert ledger.create(msg, now=time.time()).outcome == "created"
    return mid


def failed(ledger: Ledger, mid: str, **extra: Any) -> str:
    recorded(ledger, mid, **extra)
    provider = extra.get("provider", "taqnyat")
    outcome, _ = ledger.transition(
        mid, to=Status.FAILED, expect=Status.QUEUED, now=time.time(), provider=provider
    )
    assert outcome == "ok"
    return mid


def expired(ledger: Ledger, mid: str, **extra: Any) -> str:
    now = time.time()
    recorded(ledger, mid, expires=now + 30, **extra)
    assert ledger.claim(mid, "taqnyat", now=now + 31).outcome == "expired"
    return mid


def tasks_on(client: redis.Redis, queue: str) -> int:
    return int(client.llen(queue))


# --- the ledger: the index of ended messages and the payload they keep -----------------------
def test_failed_and_expired_messages_are_indexed_and_keep_their_payload_others_do_not(
    hudhud: Hudhud, redis_client: redis.Redis
) -> None:
    ledger = hudhud.ledger
    before = time.time()
    failed(ledger, "f1")
    expired(ledger, "x1")
    recorded(ledger, "r1")
    ledger.transition("r1", to=Status.REJECTED, expect=Status.QUEUED, now=time.time(), provider="taqnyat")
    assert [m for m, _ in redrives.ended(ledger, Status.FAILED, now=time.time())] == ["f1"]
    assert [m for m, _ in redrives.ended(ledger, Status.EXPIRED, now=time.time())] == ["x1"]
    ((_, ended_at),) = redrives.ended(ledger, Status.FAILED, now=time.time())
    assert before - 0.01 <= ended_at <= time.time(), "scored by when it ended (epoch seconds)"
    assert json.loads(ledger.field("f1", "payload"))["body"] == "code for f1", "kept for a redrive"
    assert json.loads(ledger.field("x1", "payload"))["body"] == "code for x1", "kept for a redrive"
    assert ledger.field("r1", "payload") == "", "a rejected message's payload is erased"
    assert 0 < redis_client.ttl(ended_key(Status.FAILED)) <= ledger.retention_seconds
    assert 0 < redis_client.ttl(msg_key("f1")) <= ledger.retention_seconds, "the record keeps its retention"


def test_entries_older_than_the_retention_are_trimmed(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    ledger = hudhud.ledger
    now = time.time()
    redis_client.zadd(
        ended_key(Status.FAILED), {"old": now - ledger.retention_seconds - 10, "young": now - 10}
    )
    assert [m for m, _ in redrives.ended(ledger, Status.FAILED, now=now)] == ["young"]
    failed(ledger, "f1")
    redis_client.zadd(ended_key(Status.FAILED), {"old": now - ledger.retention_seconds - 10})
    failed(ledger, "f2")
    assert redis_client.zscore(ended_key(Status.FAILED), "old") is None, "trimmed when another ends"


# --- the redrive -------------------------------------------------------------------------------
def test_a_redrive_sends_each_once_as_a_new_linked_message(hudhud: Hudhud, redis_client: redis.Redis) -> None:
    ledger = hudhud.ledger
    now = time.time()
    failed(
        ledger,
        "f1",
        reference="order-7",
        callback_url="https://example.com/hook",
        lane=Lane.BULK,
        expires=now + 600,
    )
    failed(ledger, "f2")
    listed = redrive(hudhud, Status.FAILED, dry_run=True)
    assert [(r.id, r.outcome) for r in listed] == [
        ("f1", Outcome.WOULD_REDRIVE),
        ("f2", Outcome.WOULD_REDRIVE),
    ]
    assert tasks_on(redis_client, "sms") + tasks_on(redis_client, "sms.bulk") == 0, "a dry run sends nothing"
    assert ledger.field("f1", "redriven_to") == "" and ledger.field("f1", "payload"), "nor marks anything"

    done = {r.id: r for r in redrive(hudhud, Status.FAILED)}
    assert {r.outcome for r in done.values()} == {Outcome.REDRIVEN} and done["f1"].status == "queued"
    new = ledger.get(done["f1"].new_id or "")
    assert new is not None and new["retry_of"] == "f1" and new["status"] == "queued"
    assert json.loads(new["payload"]) == {"to": [TO], "body": "code for f1"}
    assert (new["reference"], new["callback_url"], new["lane"]) == (
        "order-7",
        "https://example.com/hook",
        "bulk",
    )
    assert float(new["expires"]) == pytest.approx(time.time() + 600, abs=5), "the same span, from now"
    assert redis_client.zscore(EXPIRIES, new["id"]) == float(new["expires"]), "it expires as any message"
    assert "expires" not in (ledger.get(done["f2"].new_id or "") or {}), "no expiry when it had none"
    old = ledger.get("f1")
    assert old is not None and old["redriven_to"] == done["f1"].new_id and old["status"] == "failed"
    assert "payload" not in old, "the old payload is erased once its redrive is recorded"
    assert [e for e in old["events"] if e["type"] == "redriven"] == [
        {"type": "redriven", "at": old["events"][-1]["at"], "redriven_to": done["f1"].new_id}
    ]
    assert tasks_on(redis_client, "sms.bulk") == 1 and tasks_on(redis_client, "sms") == 1, "on its lane"

    assert redrive(hudhud, Status.FAILED) == [], "a second run finds nothing to send"
    assert tasks_on(redis_client, "sms.bulk") + tasks_on(redis_client, "sms") == 2


def test_the_script_makes_one_message_even_when_two_redrives_race(hudhud: Hudhud) -> None:
    from hudhud.worker.producer.redrive import new_message

    ledger = hudhud.ledger
    failed(ledger, "f1")
    record = ledger.get("f1")
    assert record is not None
    first, second = new_message(record, time.time()), new_message(record, time.time())
    one = redrives.redrive(ledger, "f1", Status.FAILED, first, None, now=time.time())
    two = redrives.redrive(ledger, "f1", Status.FAILED, second, None, now=time.time())
    assert (one.outcome, one.new_id) == ("redriven", first.id)
    assert (two.outcome, two.new_id) == ("done", first.id), "the second finds the first's message"
    assert ledger.get(second.id) is None


def test_filters_and_what_is_never_redriven(hudhud: Hudhud) -> None:
    ledger = hudhud.ledger
    failed(ledger, "sms-1")
    failed(ledger, "mail-1", provider="taifa")
    ledger.record_failure("refused", "sms", "to[0]: must be 8 to 15 digits", now=time.time())
    failed(ledger, "batch.0", payload={"to": [TO, "966500000124"], "body": "sale", "batch": True})
    failed(ledger, "doubt-1")
    ledger.flag("doubt-1", in_doubt="1")
    recorded(ledger, "rejected-1")
    ledger.transition(
        "rejected-1", to=Status.REJECTED, expect=Status.QUEUED, now=time.time(), provider="taqnyat"
    )

    listed = {r.id: r for r in redrive(hudhud, Status.FAILED, dry_run=True)}
    assert "rejected-1" not in listed
    assert listed["refused"].outcome is Outcome.SKIPPED and "no payload" in (listed["refused"].reason or "")
    assert listed["batch.0"].outcome is Outcome.SKIPPED and "campaign" in (listed["batch.0"].reason or "")
    assert listed["doubt-1"].outcome is Outcome.SKIPPED and "in doubt" in (listed["doubt-1"].reason or "")
    assert [r.id for r in redrive(hudhud, Status.FAILED, provider="taifa", dry_run=True)] == ["mail-1"]
    assert redrive(hudhud, Status.FAILED, since=time.time() + 60, dry_run=True) == []
    assert redrive(hudhud, Status.EXPIRED, dry_run=True) == []

    sent = [r for r in redrive(hudhud, Status.FAILED) if r.outcome is Outcome.REDRIVEN]
    assert sorted(r.id for r in sent) == ["mail-1", "sms-1"]
    skipped = redrive(hudhud, Status.FAILED)
    assert sorted(r.id for r in skipped) == ["batch.0", "doubt-1", "refused"], "listed again, never sent"
    assert all(r.outcome is Outcome.SKIPPED for r in skipped)


def test_an_expired_message_is_redriven_with_a_fresh_expiry(hudhud: Hudhud) -> None:
    ledger = hudhud.ledger
    expired(ledger, "x1")
    (done,) = redrive(hudhud, Status.EXPIRED)
    new = ledger.get(done.new_id or "")
    assert done.outcome is Outcome.REDRIVEN and new is not None and new["retry_of"] == "x1"
    created = datetime.fromisoformat(new["created_at"].replace("Z", "+00:00")).timestamp()
    assert float(new["expires"]) == pytest.approx(created + 30, abs=0.01), "its 30 s counted from now"


# --- end to end: a real worker and the sandbox ------------------------------------------------
def sent_bodies(stack: Stack) -> list[str]:
    return [str(s["body"]) for s in stack.sandbox.sends()]


def redrive_cli(stack: Stack, *args: str) -> dict[str, Any]:
    done = stack.cli("redrive", *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def set_balance(stack: Stack, amount: float) -> None:
    requests.post(f"{stack.sandbox.url}/_sandbox/balance", json={"set": amount}, timeout=5).raise_for_status()


def test_failed_and_expired_messages_are_sent_again_once_and_rejected_never(tmp_path: Path) -> None:
    env = {"HUDHUD_BALANCE_WAIT": "1", "HUDHUD_BACKOFF_BASE": "0.1", "HUDHUD_BACKOFF_CAP": "0.5"}
    with running_stack(tmp_path, beat=False, extra_env=env) as stack:
        hudhud = stack.hudhud
        jobs = Jobs(
            stack.ledger,
            stack.settings,
            stack.app,
            lambda name: runtime.provider_client(name, stack.settings),
        )
        rejected = hudhud.send_sms(["999501000003"], "refused by the provider").id
        stack.wait_status([rejected], {"rejected"}, timeout=15)
        # an email that meets only 503s until its expiry passes: it ends expired
        stack.sandbox.knobs(error_rate_5xx=1.0)
        late = hudhud.send(
            "email",
            {
                "to": ["layla@example.com"],
                "subject": "Receipt",
                "text": "redrive late",
                "provider": "taifa",
                "ttl": 1,
            },
        ).id
        stack.wait_status([late], {"expired"}, timeout=15)
        stack.sandbox.knobs(error_rate_5xx=0.0)
        # an SMS the balance cannot pay for, and no top-up within HUDHUD_BALANCE_WAIT: it ends failed
        set_balance(stack, 0.03)
        sms = hudhud.send_sms([TO, "966500000124"], "redrive sms").id
        wait_until(lambda: stack.ledger.in_index("short", "taqnyat"), timeout=10)
        wait_until(lambda: time.time() > stack.ledger.in_index("short", "taqnyat")[0][1] + 1.1, timeout=5)
        jobs.watch_balances()
        stack.wait_status([sms], {"failed"}, timeout=15)
        set_balance(stack, 100)

        listed = redrive_cli(stack, "--status", "failed", "--dry-run")
        assert (listed["count"], [(m["id"], m["outcome"]) for m in listed["messages"]]) == (
            1,
            [(sms, "would_redrive")],
        )
        assert redrive_cli(stack, "--status", "failed", "--since", "2999-01-01T00:00:00Z")["count"] == 0
        assert redrive_cli(stack, "--status", "failed", "--provider", "taifa")["messages"] == []
        assert redrive_cli(stack, "--status", "expired", "--provider", "taqnyat")["messages"] == []
        assert "redrive sms" not in sent_bodies(stack), "nothing sent so far"
        failed_run = redrive_cli(stack, "--status", "failed")
        expired_run = redrive_cli(stack, "--status", "expired", "--provider", "taifa")
        done = [*failed_run["messages"], *expired_run["messages"]]
        assert [(m["id"], m["outcome"]) for m in done] == [(sms, "redriven"), (late, "redriven")]
        news = {m["id"]: m["new_id"] for m in done}
        stack.wait_status(list(news.values()), {"sent", "delivered"}, timeout=15)
        for old, new in news.items():
            assert hudhud.status(new)["retry_of"] == old and hudhud.status(old)["redriven_to"] == new

        assert redrive_cli(stack, "--status", "failed")["count"] == 0, "a second run sends nothing"
        assert redrive_cli(stack, "--status", "expired")["count"] == 0
        bodies = sent_bodies(stack)
        assert [sum(text in b for b in bodies) for text in ("redrive sms", "redrive late")] == [1, 1]
        assert stack.ledger.field(rejected, "redriven_to") == ""
        assert hudhud.status(rejected)["status"] == "rejected" and not any("refused by" in b for b in bodies)
        text = stack.cli("redrive", "--status", "failed").stdout
        assert text.startswith("redriven 0 failed") and TO not in text
