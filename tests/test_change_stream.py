"""The change stream: every status change appended by the script that makes it.

Against a real redis-server for the ledger's scripts one by one, and a real worker, beat and
sandbox for whole lives (sent, scheduled, cancelled, failed after retries, in doubt, a
campaign). Every entry of a message appears once, in order, and matches its history; what
was refused or only retried appends nothing; no entry carries a number, address or body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.ledger import CHANGES, QUEUED, SCHEDULED, Ledger, NewMessage, keys, scripts
from tests.helpers import RedisServer
from tests.stack import Stack, running_stack, wait_until

FIELDS = ["id", "status", "previous", "channel", "provider", "lane", "reference", "at", "attempt", "error"]
NUMBER = "966500000777"
BODY = "your code is 4321"


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def entries(client: redis.Redis, message_id: str | None = None) -> list[dict[str, str]]:
    """The stream's entries (of one message), oldest first, field order kept."""
    out = []
    for _entry_id, raw in client.xrange(CHANGES):
        entry = {k.decode(): v.decode() for k, v in raw.items()}
        if message_id is None or entry["id"] == message_id:
            out.append(entry)
    return out


def statuses(client: redis.Redis, message_id: str) -> list[str]:
    return [e["status"] for e in entries(client, message_id)]


def new(mid: str, *, key: str | None = None, due: float | None = None) -> NewMessage:
    return NewMessage(
        id=mid,
        channel="sms",
        provider="taqnyat",
        payload={"to": [NUMBER], "body": BODY},
        request_hash="h",
        key=key,
        due=due,
    )


def assert_matches_history(ledger: Ledger, message_id: str) -> list[dict[str, str]]:
    """The message's entries chain (each one's `previous` is the status before it), end at
    its recorded status, and each was recorded in its history at the same moment, in order."""
    found = entries(ledger.redis, message_id)
    record = ledger.get(message_id)
    assert record is not None and found, message_id
    assert [e["previous"] for e in found] == ["", *(e["status"] for e in found[:-1])]
    assert found[-1]["status"] == record["status"]
    moments = iter(e["at"] for e in record["events"])
    assert all(any(at == e["at"] for at in moments) for e in found), "each change is in its history"
    for entry in found:
        assert list(entry)[: len(FIELDS)] == FIELDS
        assert (entry["channel"], entry["provider"]) == (record["channel"], record["provider"])
        assert not any(w in v for v in entry.values() for w in (NUMBER, BODY)), "no recipient, no body"
    return found


# --- the scripts' files ----------------------------------------------------------------

LUA = resources.files("hudhud.worker.ledger").joinpath("lua")
FRAGMENTS = {"change.lua", "create_record.lua"}  # functions the scripts use, not scripts


def test_every_script_opens_by_naming_its_keys_and_arguments() -> None:
    files = {f.name: f.read_text(encoding="utf-8") for f in LUA.iterdir() if f.name.endswith(".lua")}
    assert {f"{name}.lua" for name in (*scripts.LEDGER, "take")} | FRAGMENTS == set(files)
    for name, text in files.items():
        assert "hudhud:" not in text, f"{name} builds a key"
        lines = [line for line in text.splitlines() if not line.startswith("#!")]
        if name in FRAGMENTS:
            assert not re.search(r"\b(KEYS|ARGV)\[", text), f"{name} reads its caller's arguments"
            continue
        head = [line for line in lines if line.startswith("--")]
        assert any(line.startswith("-- KEYS:") for line in head) and any(
            line.startswith("-- ARGV:") for line in head
        )
        assert any(line.startswith("-- ->") for line in head), f"{name} says what it answers"
        code = [line for line in lines if line.strip() and not line.startswith("--")]
        opening = []
        for line in code:
            if not (line.startswith("local ") and re.search(r"\b(KEYS|ARGV)\[\d", line)):
                break
            opening.append(line)
        assert opening, f"{name} opens by naming its arguments"
        rest = "\n".join(code[len(opening) :])
        assert not re.search(r"\b(KEYS|ARGV)\[\d", rest), f"{name} names its arguments in its opening only"


def test_the_scripts_are_the_files_they_load_from() -> None:
    assert scripts.source("take").startswith("#!lua\n"), "the flag line stays first"
    assert "local function change(" in scripts.source("transition")
    assert "local function create(" in scripts.source("create_many")


# --- one script at a time ----------------------------------------------------------------


def test_a_message_sent_appends_each_change_once_in_order(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("m1"), now=now)
    claim = ledger.claim("m1", "taqnyat", now=now)
    ledger.transition(
        "m1", to="sent", expect="sending", now=now + 1, token=claim.attempts, fields={"error": ""}
    )
    found = assert_matches_history(ledger, "m1")
    assert [(e["previous"], e["status"]) for e in found] == [
        ("", "queued"),
        ("queued", "sending"),
        ("sending", "sent"),
    ]
    assert [e["attempt"] for e in found] == ["0", "1", "1"]
    assert {e["lane"] for e in found} == {"transactional"} and {e["reference"] for e in found} == {""}


def test_lane_reference_and_error_come_from_the_record(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("m2"), now=now)
    ledger.flag("m2", lane="otp", reference="order-17")
    claim = ledger.claim("m2", "taqnyat", now=now)
    error = "taqnyat: 500 from the provider"
    ledger.transition(
        "m2", to="queued", expect="sending", now=now, token=claim.attempts, fields={"error": error}
    )
    last = entries(ledger.redis, "m2")[-1]
    assert (last["status"], last["lane"], last["reference"], last["error"]) == (
        "queued",
        "otp",
        "order-17",
        error,
    )
    ledger.record_failure("m3", "sms", "to: not a number", now=now)
    assert [(e["status"], e["error"]) for e in entries(ledger.redis, "m3")] == [
        ("failed", "to: not a number")
    ]


def test_a_stale_or_guarded_transition_appends_nothing(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("s1"), now=now)
    claim = ledger.claim("s1", "taqnyat", now=now)
    before = len(entries(ledger.redis))
    assert (
        ledger.transition("s1", to="sent", expect="sending", now=now, token=claim.attempts + 1)[0] == "stale"
    )
    assert ledger.transition("s1", to="sent", expect="queued", now=now)[0] == "stale"
    assert ledger.cancel("s1", now=now)[0] == "stale"
    ledger.create(new("s2"), now=now)
    ledger.flag("s2", in_doubt="1")
    assert ledger.cancel("s2", now=now)[0] == "guarded"
    waiting = ledger.transition("s2", to="queued", expect="queued", now=now, zset="scheduled", score=now + 90)
    assert waiting == ("ok", "queued") and ledger.is_in("scheduled", "s2"), "a wait: no change of status"
    assert ledger.claim("missing", "taqnyat", now=now).outcome == "missing"
    assert len(entries(ledger.redis)) == before + 1, "only s2's creation"


def test_a_retried_run_appends_nothing_more(ledger: Ledger) -> None:
    now = time.time()
    assert ledger.create(new("r1"), now=now, op="create-op").outcome == "created"
    assert ledger.create(new("r1"), now=now, op="create-op").outcome == "created", "its own earlier run"
    ledger.claim("r1", "taqnyat", now=now, op="claim-op")
    assert ledger.claim("r1", "taqnyat", now=now, op="claim-op").outcome == "claimed"
    for _ in range(2):
        assert ledger.transition("r1", to="sent", expect="sending", now=now, token=1, op="sent-op")[0] == "ok"
    assert statuses(ledger.redis, "r1") == ["queued", "sending", "sent"]


def test_duplicates_and_conflicts_append_nothing_and_a_duplicate_tells_the_first_status(
    ledger: Ledger,
) -> None:
    now = time.time()
    ledger.create(new("d1", key="k"), now=now)
    ledger.claim("d1", "taqnyat", now=now)
    again = ledger.create(new("d2", key="k"), now=now)
    assert (again.outcome, again.id, again.status) == ("duplicate", "d1", "sending")
    many = ledger.create_many([new("d3", key="k"), new("d4", key="k2"), new("d5", key="k2")], now=now)
    assert [(c.outcome, c.id, c.status) for c in many] == [
        ("duplicate", "d1", "sending"),
        ("created", "d4", "queued"),
        ("duplicate", "d4", "queued"),
    ]
    assert [e["id"] for e in entries(ledger.redis)] == ["d1", "d1", "d4"]


def test_create_many_appends_one_creation_per_message_and_pushes_each_task(ledger: Ledger) -> None:
    now = time.time()
    batch = [new(f"b{i}") for i in range(5)] + [new("b-later", due=now + 600)]
    tasks = [("sms", f"task {i}") for i in range(6)]
    created = ledger.create_many(batch, now=now, tasks=tasks)
    assert [c.status for c in created] == ["queued"] * 5 + ["scheduled"]
    assert [(e["id"], e["status"], e["previous"]) for e in entries(ledger.redis)] == [
        *((f"b{i}", "queued", "") for i in range(5)),
        ("b-later", "scheduled", ""),
    ]
    assert ledger.redis.llen("sms") == 6
    assert ledger.redis.zscore(SCHEDULED, "b-later") is not None


def test_release_appends_queued_only_for_a_status_that_changes(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("p1", due=now + 120), now=now)
    ledger.create(new("p2", due=now + 5000), now=now)
    sweep = ledger.release_due(until=now + 200, now=now + 130)
    assert [item[0] for item in sweep.items] == ["p1"]
    found = assert_matches_history(ledger, "p1")
    assert [(e["previous"], e["status"]) for e in found] == [("", "scheduled"), ("scheduled", "queued")]
    ledger.create(new("h1"), now=now)
    ledger.pause("taqnyat", {"kind": "test"})
    assert ledger.claim("h1", "taqnyat", now=now).outcome == "held"
    ledger.resume("taqnyat")
    assert [item[0] for item in ledger.release_held(keys.held_key("taqnyat"), now=now).items] == ["h1"]
    assert statuses(ledger.redis, "h1") == ["queued"], "held while queued: no change of status"


def test_a_beat_script_leaves_alone_a_candidate_moved_meanwhile(ledger: Ledger) -> None:
    """The caller reads candidates, then the script checks each again: one that left the
    index, or is no longer due, is not moved (nor reported gone)."""
    now = time.time()
    ledger.create(new("c1", due=now + 100), now=now)
    ledger.create(new("c2", due=now + 100), now=now)
    ledger.redis.zrem(SCHEDULED, "c1")  # released by another beat meanwhile
    ledger.redis.zadd(SCHEDULED, {"c2": now + 9000})  # put back later meanwhile
    record_keys = [k for mid in ("c1", "c2") for k in (keys.msg_key(mid), keys.events_key(mid))]
    reply = ledger._release(
        keys=[SCHEDULED, QUEUED, CHANGES, *record_keys],
        args=[now + 200, now, "2026-01-01T00:00:00.000Z", "due", "scheduled,queued", 1000, "c1", "c2"],
    )
    assert reply == [[], []]
    assert statuses(ledger.redis, "c1") == ["scheduled"] and statuses(ledger.redis, "c2") == ["scheduled"]
    assert ledger.redis.zscore(QUEUED, "c1") is None and ledger.redis.zscore(QUEUED, "c2") is None


def test_the_stream_is_bounded_by_its_maxlen(redis_client: redis.Redis) -> None:
    ledger = Ledger(
        redis_client, retention_seconds=60, idempotency_ttl=60, lease_seconds=30, changes_maxlen=50
    )
    now = time.time()
    ledger.create_many([new(f"x{i}") for i in range(600)], now=now)
    for i in range(400):
        ledger.create(new(f"y{i}"), now=now)
    length = redis_client.xlen(CHANGES)
    # `MAXLEN ~` trims whole nodes of the stream (100 entries each by default)
    assert 50 <= length <= 50 + 100, length
    assert entries(redis_client)[-1]["id"] == "y399"


def test_a_campaign_recipients_final_status_is_appended_once_by_fingerprint(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(new("camp1.0"), now=now)
    claim = ledger.claim("camp1.0", "taqnyat", now=now)
    ledger.transition("camp1.0", to="sent", expect="sending", now=now, token=claim.attempts)
    ledger.redis.hset(keys.msg_key("camp1"), "kind", "campaign")
    ledger.redis.expire(keys.msg_key("camp1"), 600)
    fingerprint = ledger.fingerprints.of("someone@example.com")
    forget = keys.provider_id_key("taifa", "e-1")
    for _ in range(2):
        ledger.finish_recipient(
            "camp1.0",
            fingerprint,
            campaign="camp1",
            forget=forget,
            status="bounced",
            now=now,
            error="taifa: bounced",
        )
    ledger.finish_recipient(
        "camp1.0", "plain@example.com", campaign="camp1", forget=forget, status="delivered", now=now
    )
    found = entries(ledger.redis, "camp1.0")
    assert [(e["status"], e["previous"]) for e in found] == [
        ("queued", ""),
        ("sending", "queued"),
        ("sent", "sending"),
        ("bounced", "sent"),
        ("delivered", "sent"),
    ]
    assert (found[3]["recipient"], found[3]["error"], found[3]["attempt"]) == (
        fingerprint,
        "taifa: bounced",
        "1",
    )
    assert found[4]["recipient"] == "", "never a plain address"
    assert ledger.redis.hget(keys.msg_key("camp1"), "recipients_bounced") == b"1"


def test_a_message_failed_after_retries_appears_with_each_try(
    redis_server: RedisServer, ledger: Ledger
) -> None:
    """Delivery's own retry, twice over a budget of two attempts (the sandbox has no fault that
    spends an attempt and proves nothing was delivered)."""
    settings = Settings(redis_url=redis_server.url, max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
    delivery = Delivery(ledger, settings, lambda name: None)
    ledger.create(new("f1"), now=time.time())
    outcomes = []
    for _ in range(2):
        claim = ledger.claim("f1", "taqnyat", now=time.time())
        outcomes.append(delivery.retry("f1", claim, "taqnyat: could not parse the reply", None).result)
    assert outcomes == ["retry", "failed"]
    found = assert_matches_history(ledger, "f1")
    assert [(e["status"], e["attempt"]) for e in found] == [
        ("queued", "0"),
        ("sending", "1"),
        ("queued", "1"),
        ("sending", "2"),
        ("failed", "2"),
    ]
    assert found[2]["error"] == "taqnyat: could not parse the reply"
    assert found[4]["error"].startswith("retries spent after 2 attempts")
    assert found[3]["error"] == "", "a claim clears the error of the try before"


# --- whole lives, with a real worker, beat and sandbox --------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("changes"), knobs={"progress_seconds": 0.2}) as made:
        yield made


def lives(stack: Stack, ids: list[str]) -> dict[str, list[str]]:
    return {mid: [e["status"] for e in assert_matches_history(stack.ledger, mid)] for mid in ids}


SENT_NUMBERS = ["966500000811", "966500000812", "966500000813"]
DOUBT_NUMBER = "966500000815"
CAMPAIGN = [f"reader{i}@example.com" for i in range(5)]
USED = [
    *SENT_NUMBERS,
    DOUBT_NUMBER,
    *CAMPAIGN,
    "doubt 815",
    "code 811",
    "later 812",
    "never 813",
    "campaign words",
]


@pytest.mark.e2e
def test_single_scheduled_and_cancelled_lives_appear_whole(stack: Stack) -> None:
    sms = stack.hudhud.send_sms([SENT_NUMBERS[0]], "code 811")
    due = datetime.now(UTC) + timedelta(seconds=6)
    later = stack.hudhud.send_sms([SENT_NUMBERS[1]], "later 812", at=due.isoformat())
    never = stack.hudhud.send_sms([SENT_NUMBERS[2]], "never 813", at=due.isoformat())
    assert stack.cli("cancel", never.id).returncode == 0
    stack.wait_status([sms.id, later.id], {"sent"}, timeout=60)
    assert lives(stack, [sms.id, later.id, never.id]) == {
        sms.id: ["queued", "sending", "sent"],
        later.id: ["scheduled", "queued", "sending", "sent"],
        never.id: ["scheduled", "cancelled"],
    }


@pytest.mark.e2e
def test_lives_in_doubt_appear_whole(stack: Stack) -> None:
    """A lost reply: a single SMS is sent again once and ends `sent` in doubt; a batch waits,
    still `sending` (no change of status: no entry), until an operator decides."""
    numbers = [f"96651100{i:04d}" for i in range(3)]
    stack.sandbox.knobs(fault_after_accept=1.0)
    try:
        single = stack.hudhud.send_sms([DOUBT_NUMBER], "doubt 815").id
        receipt = stack.hudhud.send_campaign("sms", {"to": numbers, "body": "campaign words"})
        batch = f"{receipt.id}.0"
        stack.wait_status([single], {"sent"}, timeout=60)
        wait_until(lambda: stack.ledger.is_in("doubt", batch), timeout=60)
    finally:
        stack.sandbox.knobs(fault_after_accept=0.0)
    USED.extend(numbers)
    assert stack.cli("resolve", batch, "--sent").returncode == 0
    assert lives(stack, [single, batch]) == {
        single: ["queued", "sending", "queued", "sending", "sent"],
        batch: ["queued", "sending", "sent"],
    }
    found = entries(stack.redis, single)
    assert found[2]["error"].startswith("in doubt") and "may have been delivered" in found[4]["error"]
    assert [e["attempt"] for e in found] == ["0", "1", "1", "2", "2"]


@pytest.mark.e2e
def test_an_email_campaign_appears_batch_by_batch_and_recipient_by_recipient(stack: Stack) -> None:
    receipt = stack.hudhud.send_campaign(
        "email", {"to": CAMPAIGN, "subject": "campaign words", "text": "campaign words"}
    )
    batches = [f"{receipt.id}.{n}" for n in range(receipt.batches)]
    stack.wait_status(batches, {"sent"}, timeout=60)
    prints = set(stack.ledger.fingerprints.of_all(CAMPAIGN))

    def finished() -> list[dict[str, str]]:
        done = [e for b in batches for e in entries(stack.redis, b) if "recipient" in e]
        return done if len(done) == len(CAMPAIGN) else []

    done = wait_until(finished, timeout=60, interval=0.5)
    assert {e["recipient"] for e in done} == prints and {e["status"] for e in done} <= {
        "delivered",
        "bounced",
    }
    for mid in batches:
        changes = [e for e in entries(stack.redis, mid) if "recipient" not in e]
        assert [e["status"] for e in changes] == ["queued", "sending", "sent"]


@pytest.mark.e2e
def test_no_entry_carries_a_number_an_address_or_a_body(stack: Stack) -> None:
    # lives of its own, so the stream holds some whichever of this module's tests ran before
    sms = [stack.hudhud.send_sms([number], f"code {number[-3:]}") for number in SENT_NUMBERS]
    email = stack.hudhud.send_email([CAMPAIGN[0]], "campaign words", text="campaign words")
    stack.wait_status([r.id for r in [*sms, email]], {"sent", "delivered"}, timeout=60)
    everything = entries(stack.redis)
    assert len(everything) > 10
    text = "\n".join(f"{k}={v}" for e in everything for k, v in e.items())
    for used in USED:
        assert used not in text, used
    assert not re.search(r"9665\d{8}|@example\.com", text)
