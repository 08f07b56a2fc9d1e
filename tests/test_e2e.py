"""End to end: a real redis-server, the sandbox over HTTP, real `hudhud worker` and `hudhud beat`
processes. Each test sends through the public surface and reads the ledger and the sandbox."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), knobs={"progress_seconds": 0.2}) as made:
        yield made


def number(seed: int) -> str:
    return f"9665{seed:08d}"


def sends_by(stack: Stack, field: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for send in stack.sandbox.sends():
        value = send.get(field)
        if isinstance(value, list):
            counts.update(str(v) for v in value)
        elif value is not None:
            counts[str(value)] += 1
    return counts


def test_every_channel_and_provider_delivers(stack: Stack) -> None:
    sms = stack.hudhud.send_sms(["966500000101"], "code 1")
    voice = stack.hudhud.send_voice(["966500000102"], "https://example.com/a.mp3")
    taifa = stack.hudhud.send_email(["person@example.com"], "hello", text="hi there")
    taqnyat = stack.hudhud.send_email(["person2@example.com"], "hello", html="<b>hi</b>", provider="taqnyat")
    stack.wait_status([sms.id, voice.id, taqnyat.id], {"sent"})
    stack.wait_status([taifa.id], {"delivered"})
    for receipt in (sms, voice, taifa, taqnyat):
        record = stack.hudhud.status(receipt.id)
        assert record["attempts"] == 1 and record["provider_message_id"]
        assert [e["type"] for e in record["events"]][:3] == ["queued", "sending", "sent"]
    assert stack.hudhud.status(sms.id)["cost"] is not None
    channels = Counter((s["provider"], s["channel"]) for s in stack.sandbox.sends())
    assert channels[("taqnyat", "sms")] >= 1 and channels[("taqnyat", "voice")] >= 1
    assert channels[("taqnyat", "email")] >= 1 and channels[("taifa", "email")] >= 1


def test_idempotency_key_sends_once_and_refuses_another_request(stack: Stack) -> None:
    key = f"otp-{uuid.uuid4()}"
    first = stack.cli("send", "sms", "--to", "966500000201", "--body", "code 7", "--key", key, "--json")
    again = stack.cli("send", "sms", "--to", "966500000201", "--body", "code 7", "--key", key, "--json")
    other = stack.cli("send", "sms", "--to", "966500000201", "--body", "code 8", "--key", key, "--json")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    first_id = json.loads(first.stdout)["id"]
    assert json.loads(again.stdout)["id"] == first_id
    assert other.returncode == 2 and json.loads(other.stdout)["field"] == "key"
    stack.wait_status([first_id], {"sent"})
    time.sleep(1)
    assert sends_by(stack, "sms_id")[first_id] == 1


def test_scheduled_send_goes_out_on_time_and_cancel_stops_another(stack: Stack) -> None:
    due = datetime.now(UTC) + timedelta(seconds=6)
    keep = stack.hudhud.send_sms(["966500000301"], "later", at=due.isoformat())
    drop = stack.hudhud.send_sms(["966500000302"], "never", at=(due + timedelta(seconds=1)).isoformat())
    assert keep.status == "scheduled"
    cancelled = stack.cli("cancel", drop.id, "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    stack.wait_status([keep.id], {"sent"}, timeout=30)
    sent_at = next(e["at"] for e in stack.hudhud.status(keep.id)["events"] if e["type"] == "sent")
    lateness = datetime.fromisoformat(sent_at.replace("Z", "+00:00")) - due
    assert timedelta(seconds=-0.5) < lateness < timedelta(seconds=5)
    time.sleep(2)
    assert stack.hudhud.status(drop.id)["status"] == "cancelled"
    assert sends_by(stack, "sms_id")[drop.id] == 0
    refused = stack.cli("cancel", keep.id)
    assert refused.returncode == 1 and "sent" in refused.stderr


def test_balance_outage_holds_messages_until_top_up(stack: Stack) -> None:
    stack.sandbox.knobs(balance=0)
    try:
        ids = [stack.hudhud.send_sms([number(400 + i)], f"receipt {i}").id for i in range(6)]
        wait_until(lambda: stack.ledger.pause_reason("taqnyat"), timeout=30)
        time.sleep(2)
        statuses = stack.ledger.status_of(ids)
        assert set(statuses) == {"queued"}, statuses
        assert all(int(stack.hudhud.status(i)["attempts"]) == 0 for i in ids), "no retry budget spent"
    finally:
        requests.post(f"{stack.sandbox.url}/_sandbox/balance", json={"set": 1000}, timeout=5)
    stack.wait_status(ids, {"sent"}, timeout=60)
    counts = sends_by(stack, "sms_id")
    assert all(counts[i] == 1 for i in ids)
    assert stack.ledger.pause_reason("taqnyat") is None


def test_5xx_storm_sends_everything_once(stack: Stack) -> None:
    stack.sandbox.knobs(error_rate_5xx=0.5)
    try:
        ids = [
            r.id
            for r in stack.hudhud.send_many(
                "sms", [{"to": [number(500 + i)], "body": f"storm {i}"} for i in range(30)]
            )
        ]
        stack.wait_status(ids, {"sent"}, timeout=90)
    finally:
        stack.sandbox.knobs(error_rate_5xx=0.0)
    counts = sends_by(stack, "sms_id")
    assert [counts[i] for i in ids] == [1] * len(ids)
    events = [e["type"] for i in ids for e in stack.hudhud.status(i)["events"]]
    assert "retry" in events, "the storm caused retries"
    assert all(stack.hudhud.status(i)["attempts"] == 1 for i in ids), "a 503 or 502 spends no attempt"


def test_taifa_bounce_then_retry_makes_a_linked_message(stack: Stack) -> None:
    bounced = stack.hudhud.send_email(["bounce-1@example.com"], "bounce me", text="x")
    stack.wait_status([bounced.id], {"bounced"}, timeout=30)
    record = stack.hudhud.status(bounced.id)
    assert record["error"].startswith("taifa: bounced: 550 5.1.1"), "the bounce reason is recorded"
    types = [e["type"] for e in record["events"]]
    assert types.count("bounced") == 1, f"the bounce recorded once: {types}"
    history = [e for e in record["events"] if e.get("via") == "taifa events"]
    assert [e["type"] for e in history] == ["bounced"], "one status change, made by the events poll"
    assert history[0]["error"].startswith("taifa: bounced: 550 5.1.1"), "with Taifa's reason"
    result = stack.cli("retry", bounced.id, "--json")
    assert result.returncode == 0, result.stderr
    retry_id = json.loads(result.stdout)["id"]
    assert retry_id != bounced.id
    stack.wait_status([retry_id], {"sent", "bounced", "delivered"}, timeout=30)
    assert stack.hudhud.status(retry_id)["retry_of"] == bounced.id
    refused = stack.cli("retry", retry_id)
    assert refused.returncode in (0, 1)


def test_bad_input_through_the_cli_exits_2_naming_the_field_and_records_nothing(stack: Stack) -> None:
    def records() -> int:
        return len(stack.redis.keys("hudhud:m:*")) + len(stack.redis.keys("hudhud:idem:*"))

    before = records()
    cases = [
        (["send", "sms", "--to", "+966500000000", "--body", "x"], "to"),
        (["send", "sms", "--to", "966500000000", "--body", "x", "--at", "2031-01-01T10:00"], "at"),
        (["send", "email", "--to", "not-an-address", "--subject", "s", "--text", "t"], "to"),
        (["send", "voice", "--to", "966500000000", "--audio-url", "ftp://x"], "audio_url"),
    ]
    for args, field in cases:
        result = stack.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and field in lines[0], result.stderr
    assert records() == before


def test_tokens_and_numbers_stay_out_of_logs(stack: Stack) -> None:
    secret_number = "966512345678"
    receipt = stack.hudhud.send_sms([secret_number], "secret body 4471")
    stack.wait_status([receipt.id], {"sent"})
    time.sleep(1)
    for name in ("w1", "beat"):
        text = stack.log(name).read_text(errors="replace")
        for needle in (SANDBOX_TAQNYAT_TOKEN, SANDBOX_TAIFA_KEY, secret_number, "secret body 4471"):
            assert needle not in text, f"{needle!r} in {name} log"


def test_foreign_producer_send_task_is_recorded_under_the_task_id(stack: Stack) -> None:
    result = stack.app.send_task("hudhud.send_sms", kwargs={"to": ["966500000601"], "body": "from php"})
    stack.wait_status([result.id], {"sent"})
    bad = stack.app.send_task("hudhud.send_sms", kwargs={"to": ["+966500000602"], "body": "x"})
    stack.wait_status([bad.id], {"failed"})
    assert stack.hudhud.status(bad.id)["error"].startswith("to[0]")


def test_flower_shows_tasks_without_personal_data(stack: Stack, tmp_path: Path) -> None:
    port = stack.start_flower()

    def probe_listed() -> object:  # beat's jobs send no task events: a delivery shows they flow
        stack.hudhud.send_sms(["966500000190"], "probe")
        tasks = requests.get(f"http://127.0.0.1:{port}/api/tasks", auth=("ops", "flower-pass"), timeout=5)
        return tasks.json()

    wait_until(probe_listed, timeout=30, interval=1)
    stack.app.send_task("hudhud.send_sms", kwargs={"to": ["966598765432"], "body": "flower secret"})
    receipt = stack.hudhud.send_sms(["966598765433"], "flower secret 2")
    stack.wait_status([receipt.id], {"sent"})

    anonymous = requests.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5)
    assert anonymous.status_code == 401, "Flower must ask for its basic auth"

    def tasks() -> dict[str, dict[str, object]]:
        reply = requests.get(
            f"http://127.0.0.1:{port}/api/tasks",
            params={"limit": 5000},
            auth=("ops", "flower-pass"),
            timeout=5,
        )
        reply.raise_for_status()
        found = {
            k: v
            for k, v in reply.json().items()
            if str(v.get("name")).startswith("hudhud.") and not str(v.get("name")).startswith("hudhud.beat.")
        }
        names = {v.get("name") for v in found.values()}
        return found if {"hudhud.send_sms", "hudhud.deliver"} <= names else {}

    seen = wait_until(tasks, timeout=30, interval=0.5)
    text = json.dumps(seen)
    for needle in ("966598765432", "966598765433", "flower secret", SANDBOX_TAQNYAT_TOKEN):
        assert needle not in text
    assert any(t.get("name") == "hudhud.deliver" for t in seen.values())
