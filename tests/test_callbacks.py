"""Status callbacks: a real `hudhud callbacks run` beside a real worker and the sandbox, POSTing
to a real receiver that checks every signature with `standardwebhooks`, fails on purpose,
answers 410 and goes away. Each change of a message arrives in order, once per webhook-id
(the stream entry's), through retries, a dispatcher killed with -9, and a replay; nothing
personal is in a body."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger import CHANGES, Ledger, NewMessage, Status
from hudhud.worker.ledger.callbacks import CallbackStore
from hudhud.worker.ledger.changes import Change
from hudhud.worker.web.callbacks import schedule, sending
from hudhud.worker.web.callbacks.body import body_of
from hudhud.worker.web.callbacks.dispatcher import Dispatcher
from hudhud.worker.web.callbacks.report import summary
from hudhud.worker.web.callbacks.signing import Signer
from tests.callback_receiver import SECRET, Receiver
from tests.helpers import free_port
from tests.stack import Stack, idle_stack, wait_until

NUMBER = "966500000777"
BODY = "your code is 4321"
DATA_FIELDS = {
    "id",
    "reference",
    "key",
    "channel",
    "provider",
    "status",
    "error",
    "provider_message_id",
    "cost",
    "at",
}
FAST = {
    "HUDHUD_CALLBACK_SECRET": SECRET,
    "HUDHUD_CALLBACK_SCHEDULE": "0,0.2,0.5,1",
    "HUDHUD_CALLBACK_TIMEOUT": "1",
    "HUDHUD_CHANGES_CLAIM_AFTER": "1",
}


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port()).start()
    yield found
    found.stop()


def stream(client: redis.Redis, message_id: str) -> list[tuple[str, str]]:
    """(webhook-id, status) of every change of a message, oldest first."""
    out = []
    for entry, fields in client.xrange(CHANGES):
        if fields[b"id"].decode() == message_id:
            out.append((f"msg_{entry.decode()}", fields[b"status"].decode()))
    return out


def seen(receiver: Receiver, message_id: str) -> list[tuple[str, str]]:
    return [(r.webhook_id, r.body["data"]["status"]) for r in receiver.of(message_id)]


def all_arrived(stack: Stack, receiver: Receiver, ids: list[str]) -> bool:
    return all(seen(receiver, i) == stream(stack.redis, i) for i in ids)


def status_json(stack: Stack) -> dict[str, Any]:
    """What `hudhud callbacks status --json` prints."""
    done = stack.cli("callbacks", "status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def counts(stack: Stack) -> dict[str, Any]:
    """The same, read in this process (for waiting)."""
    return summary(CallbackStore(stack.ledger), stack.settings)


def sms(stack: Stack, **extra: object) -> str:
    return stack.hudhud.send("sms", {"to": [NUMBER], "body": BODY, **extra}).id


def assert_clean(receiver: Receiver) -> None:
    """Every try was signed right, carried the contract's body and nothing personal."""
    for got in receiver.all():
        assert got.verified, got.webhook_id
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("hudhud/")
        assert got.signature.startswith("v1,")
        assert set(got.body) == {"type", "timestamp", "data"}
        assert set(got.body["data"]) == DATA_FIELDS
        assert got.body["type"] == f"message.{got.body['data']['status']}"
        assert NUMBER not in got.raw and BODY not in got.raw and "@" not in got.raw


# --- pure pieces ----------------------------------------------------------------------------


def test_the_body_holds_the_contract_fields_and_nothing_personal() -> None:
    change = Change(
        entry="1764646800000-0",
        id="m1",
        status=Status.FAILED,
        previous=None,
        channel="sms",
        provider="taqnyat",
        lane="transactional",
        reference="order-7",
        at="2026-12-02T06:00:00.000Z",
        attempt=1,
        error=f"refused for {NUMBER} and ops@example.com",
    )
    record = {"key": "k-1", "cost": "0.026", "provider_message_id": "p-9", "at": "2026-12-02T05:59:00.000Z"}
    body = json.loads(body_of(change, record))
    assert body["type"] == "message.failed" and body["timestamp"] == change.at
    assert set(body["data"]) == DATA_FIELDS
    assert body["data"]["reference"] == "order-7" and body["data"]["key"] == "k-1"
    assert body["data"]["cost"] == "0.026" and body["data"]["provider_message_id"] == "p-9"
    assert NUMBER not in body["data"]["error"] and "ops@example.com" not in body["data"]["error"]


def test_a_signature_verifies_with_standardwebhooks() -> None:
    headers = Signer(SECRET).headers("msg_1-0", '{"a":1}', time.time())
    from standardwebhooks.webhooks import Webhook

    assert Webhook(SECRET).verify('{"a":1}', headers) == {"a": 1}
    assert headers["webhook-id"] == "msg_1-0"


@pytest.mark.parametrize("secret", ["", "nope", "whsec_!!!"])
def test_a_bad_secret_names_the_variable(secret: str) -> None:
    settings = Settings(HUDHUD_CALLBACK_SECRET=secret)
    with pytest.raises(ConfigurationError) as caught:
        Signer.from_settings(settings)
    assert caught.value.variable == "HUDHUD_CALLBACK_SECRET"
    if secret:
        assert secret not in str(caught.value)


@pytest.mark.parametrize("text", ["", "1,x", "5,-1", "nan"])
def test_a_bad_schedule_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        schedule.parse(text)
    assert caught.value.variable == "HUDHUD_CALLBACK_SCHEDULE"


def test_the_default_schedule_tries_for_more_than_a_day() -> None:
    waits = schedule.of(Settings())
    assert waits[0] == 0 and len(waits) == 8 and sum(waits) > 86400


# --- the call-time checks of a message's own callback_url (in process, real HTTP) -----------


def _ledger(client: redis.Redis) -> Ledger:
    return Ledger(client, retention_seconds=3600, idempotency_ttl=3600, lease_seconds=30)


def _message(ledger: Ledger, mid: str, url: str) -> None:
    ledger.create(
        NewMessage(
            id=mid,
            channel="sms",
            provider="taqnyat",
            payload={"to": [NUMBER], "body": BODY},
            request_hash="h",
            callback_url=url,
        ),
        now=time.time(),
    )


def _run_once(settings: Settings, ledger: Ledger) -> CallbackStore:
    dispatcher = Dispatcher(settings, ledger, threads=2)
    dispatcher.consumer.start = "0"
    dispatcher.consumer.block = 0
    dispatcher.consumer.run_once()
    for taken in dispatcher.store.take(now=time.time(), lease=time.time() + 5, limit=10):
        dispatcher.deliver(taken)
    return dispatcher.store


@pytest.mark.parametrize(
    ("hosts", "delivered"),
    [
        ("127.0.0.1", True),  # listed by its own name: may be inside
        ("*.0.0.1", False),  # matched by a wildcard and resolving to loopback: refused
        ("hooks.example.com", False),  # no longer listed
    ],
)
def test_a_message_url_is_checked_when_called(
    redis_client: redis.Redis, receiver: Receiver, hosts: str, delivered: bool
) -> None:
    ledger = _ledger(redis_client)
    _message(ledger, "m-own", receiver.url)
    settings = Settings(HUDHUD_CALLBACK_SECRET=SECRET, HUDHUD_CALLBACK_HOSTS=hosts)
    store = _run_once(settings, ledger)
    assert bool(receiver.delivered()) is delivered
    stats = store.stats()
    assert stats.get("delivered", 0) == int(delivered) and stats.get("refused", 0) == int(not delivered)
    assert stats["pending"] == 0


# --- end to end: real worker, real dispatcher, real receiver --------------------------------


@pytest.mark.e2e
def test_every_final_state_reaches_the_receiver_in_order_through_failures(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 2  # each webhook-id: 500, 500, then 200
    env = {**FAST, "HUDHUD_CALLBACK_URL": receiver.url}
    with idle_stack(tmp_path, extra_env=env) as stack:
        stack.start_callbacks()
        stack.start_worker("w1", concurrency=4)
        sent = sms(stack, reference="order-1", key="k-sent")
        rejected = sms(stack, sender="NOSUCHSENDER")
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        cancelled = sms(stack, at=later)
        stack.hudhud.cancel(cancelled)
        refused = str(stack.app.send_task("hudhud.send_sms", kwargs={"to": ["12"], "body": BODY}).id)
        ids = [sent, rejected, cancelled, refused]
        stack.wait_status(ids, {"sent", "rejected", "cancelled", "failed"}, timeout=60)
        wait_until(lambda: all_arrived(stack, receiver, ids), timeout=60)
        finals = {i: seen(receiver, i)[-1][1] for i in ids}
        assert finals == {sent: "sent", rejected: "rejected", cancelled: "cancelled", refused: "failed"}
        first = receiver.of(sent)[-1].body["data"]
        assert first["reference"] == "order-1" and first["key"] == "k-sent" and first["provider"] == "taqnyat"
        assert first["provider_message_id"] and first["cost"]
        assert receiver.of(refused)[-1].body["data"]["error"]
        for webhook_id in {r.webhook_id for r in receiver.all()}:
            tries = [r for r in receiver.all() if r.webhook_id == webhook_id]
            assert [t.answered for t in tries] == [500, 500, 200], webhook_id
        assert_clean(receiver)
        report = status_json(stack)
        assert report["pending"] == 0 and report["dispatchers"] == 1
        assert report["delivered"] == len({r.webhook_id for r in receiver.all()})
        attempts = report["attempts"]
        assert isinstance(attempts, dict) and attempts["5xx"] == 2 * attempts["2xx"]


@pytest.mark.e2e
def test_a_killed_dispatcher_and_a_vanished_receiver_lose_nothing(tmp_path: Path, receiver: Receiver) -> None:
    receiver.stop()  # the endpoint is gone for a while: connections are refused
    env = {**FAST, "HUDHUD_CALLBACK_URL": receiver.url, "HUDHUD_CALLBACK_SCHEDULE": ",".join(["0.3"] * 100)}
    with idle_stack(tmp_path, extra_env=env) as stack:
        stack.start_callbacks()
        stack.start_worker("w1", concurrency=8)
        ids = [sms(stack, reference=f"r{i}") for i in range(10)]
        stack.wait_status(ids, {"sent"}, timeout=60)
        wait_until(lambda: counts(stack)["attempts"].get("connection", 0) >= 10, timeout=30)
        stack.kill("callbacks")
        more = [sms(stack, reference=f"s{i}") for i in range(5)]  # recorded while no dispatcher runs
        stack.wait_status(more, {"sent"}, timeout=60)
        receiver.start()
        stack.start_callbacks("callbacks-2")
        ids += more
        wait_until(lambda: all_arrived(stack, receiver, ids), timeout=60)
        expected = {w for i in ids for w, _status in stream(stack.redis, i)}
        assert {r.webhook_id for r in receiver.all()} == expected  # no id the stream does not have
        assert_clean(receiver)


@pytest.mark.e2e
def test_given_up_callbacks_are_counted_and_replayed_with_their_ids(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answer = 503
    env = {**FAST, "HUDHUD_CALLBACK_URL": receiver.url}
    with idle_stack(tmp_path, extra_env=env) as stack:
        stack.start_callbacks()
        stack.start_worker("w1", concurrency=4)
        since = datetime.now(UTC).isoformat()
        mid = sms(stack)
        stack.wait_status([mid], {"sent"}, timeout=60)
        changes = stream(stack.redis, mid)
        wait_until(lambda: counts(stack)["given_up"] == len(changes), timeout=30)
        for webhook_id, _status in changes:
            assert len([r for r in receiver.all() if r.webhook_id == webhook_id]) == 4  # the schedule's tries
        report = status_json(stack)
        assert report["pending"] == 0 and report["attempts"] == {"5xx": 4 * len(changes)}
        assert {note["webhook_id"] for note in report["last_given_up"]} == {w for w, _s in changes}
        text = stack.cli("callbacks", "status").stdout
        assert f"{len(changes)} given up" in text and receiver.url not in text
        receiver.answer = None
        done = stack.cli("callbacks", "replay", "--since", since, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["queued"] == len(changes)
        wait_until(lambda: seen(receiver, mid) == changes, timeout=30)
        assert_clean(receiver)
        bad = stack.cli("callbacks", "replay", "--since", "yesterday", "--json")
        assert bad.returncode == 2 and json.loads(bad.stdout)["field"] == "since"


@pytest.mark.e2e
def test_an_endpoint_answering_410_is_disabled_until_enabled(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answer = 410
    url = f"{receiver.url}?token=s3cr3t-token"
    env = {**FAST, "HUDHUD_CALLBACK_URL": url}
    with idle_stack(tmp_path, extra_env=env) as stack:
        stack.start_callbacks()
        stack.start_worker("w1", concurrency=4)
        first = sms(stack)
        stack.wait_status([first], {"sent"}, timeout=60)
        wait_until(lambda: counts(stack)["disabled_endpoints"], timeout=30)
        tries = len(receiver.all())
        assert tries == 1  # one 410: nothing after it
        second = sms(stack)
        stack.wait_status([second], {"sent"}, timeout=60)
        dropped = len(stream(stack.redis, first)) - 1 + len(stream(stack.redis, second))
        wait_until(lambda: counts(stack)["dropped"] == dropped, timeout=30)
        check = stack.cli("check", "--json")
        report = json.loads(check.stdout)
        assert any("410" in p and "disabled" in p for p in report["problems"])
        assert "s3cr3t-token" not in check.stdout and "s3cr3t-token" not in stack.log("callbacks").read_text()
        assert (
            report["callbacks"]["disabled_endpoints"][0]["endpoint"] == f"http://127.0.0.1:{receiver.port}/…"
        )
        assert len(receiver.all()) == tries
        receiver.answer = None
        enabled = stack.cli("callbacks", "enable", url, "--json")
        assert enabled.returncode == 0 and json.loads(enabled.stdout) == {"enabled": 1}
        third = sms(stack)
        stack.wait_status([third], {"sent"}, timeout=60)
        wait_until(lambda: seen(receiver, third) == stream(stack.redis, third), timeout=30)
        assert not receiver.of(second)
        assert_clean(receiver)


def test_a_checked_address_is_the_one_called(receiver: Receiver) -> None:
    """A name checked at call time is not resolved again: the call connects to the address
    the check approved, with the URL's own host named."""
    url = f"http://hooks.example.invalid:{receiver.port}/hooks?x=1"
    headers = Signer(SECRET).headers("msg_2-0", '{"b":2}', time.time())
    tried = sending.post_to("127.0.0.1", url, '{"b":2}', headers, 2.0)
    assert tried.got == "2xx"
    (got,) = receiver.all()
    assert got.verified and got.headers["host"] == f"hooks.example.invalid:{receiver.port}"


@pytest.mark.parametrize(("answer", "word"), [(302, "3xx"), (410, "410"), (404, "4xx"), (200, "2xx")])
def test_what_a_try_got(receiver: Receiver, answer: int, word: str) -> None:
    receiver.answer = answer
    headers = Signer(SECRET).headers("msg_3-0", "{}", time.time())
    with requests.Session() as session:
        assert sending.post(session, receiver.url, "{}", headers, 2.0).got == word
    assert len(receiver.all()) == 1  # a redirect is not followed


def test_a_closed_port_is_a_connection_failure() -> None:
    headers = Signer(SECRET).headers("msg_4-0", "{}", time.time())
    with requests.Session() as session:
        assert (
            sending.post(session, f"http://127.0.0.1:{free_port()}/", "{}", headers, 2.0).got == "connection"
        )
