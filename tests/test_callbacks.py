"""Status callbacks: a real `hudhud callbacks run` beside a real worker and the sandbox, POSTing
to a real receiver that checks every signature with `standardwebhooks`, fails on purpose,
answers 410 and goes away. Each change of a message arrives in order, once per webhook-id
(the stream entry's), through retries, a dispatcher killed with -9, and a replay; nothing
personal is in a body."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger import CHANGES, Ledger, NewMessage, Status
from hudhud.worker.ledger.callbacks import DISABLED_KEPT, Callback, CallbackStore
from hudhud.worker.ledger.changes import Change
from hudhud.worker.producer import targets
from hudhud.worker.web.callbacks import schedule, sending
from hudhud.worker.web.callbacks.body import body_of
from hudhud.worker.web.callbacks.dispatcher import Dispatcher
from hudhud.worker.web.callbacks.report import summary
from hudhud.worker.web.callbacks.signing import Signer
from tests.callback_receiver import SECRET, Receiver, Trickler
from tests.helpers import RedisServer, free_port, run_cli
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


def _soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


def test_a_checked_address_is_the_one_called(receiver: Receiver) -> None:
    """A name checked at call time is not resolved again: the call connects to the address
    the check approved, with the URL's own host named."""
    url = f"http://hooks.example.invalid:{receiver.port}/hooks?x=1"
    headers = Signer(SECRET).headers("msg_2-0", '{"b":2}', time.time())
    tried = sending.post(url, '{"b":2}', headers, deadline=_soon(), address="127.0.0.1")
    assert tried.got == "2xx"
    (got,) = receiver.all()
    assert got.verified and got.headers["host"] == f"hooks.example.invalid:{receiver.port}"


@pytest.mark.parametrize(("answer", "word"), [(302, "3xx"), (410, "410"), (404, "4xx"), (200, "2xx")])
def test_what_a_try_got(receiver: Receiver, answer: int, word: str) -> None:
    receiver.answer = answer
    headers = Signer(SECRET).headers("msg_3-0", "{}", time.time())
    assert sending.post(receiver.url, "{}", headers, deadline=_soon()).got == word
    assert len(receiver.all()) == 1  # a redirect is not followed
    assert receiver.all()[0].verified


def test_a_closed_port_is_a_connection_failure() -> None:
    headers = Signer(SECRET).headers("msg_4-0", "{}", time.time())
    url = f"http://127.0.0.1:{free_port()}/"
    assert sending.post(url, "{}", headers, deadline=_soon()).got == "connection"


# --- a try's one deadline ---------------------------------------------------------------------


@pytest.fixture()
def trickler() -> Iterator[Trickler]:
    found = Trickler(free_port()).start()
    yield found
    found.stop()


def test_an_endpoint_answering_a_byte_at_a_time_is_let_go_at_the_deadline(trickler: Trickler) -> None:
    headers = Signer(SECRET).headers("msg_5-0", "{}", time.time())
    started = time.monotonic()
    assert sending.post(trickler.url, "{}", headers, deadline=started + 1.0).got == "timeout"
    assert time.monotonic() - started < 3.0  # the answer alone would take over six minutes
    wait_until(lambda: trickler.held(), timeout=5)
    assert trickler.held()[0] < 3.0


def test_a_tls_handshake_a_byte_at_a_time_is_let_go_at_the_deadline() -> None:
    hello = b"\x16\x03\x03\x40\x00" + b"\x02" * 16384  # a handshake record of 16 KiB, slowly
    slow = Trickler(free_port(), answer=hello).start()
    try:
        headers = Signer(SECRET).headers("msg_7-0", "{}", time.time())
        started = time.monotonic()
        url = f"https://127.0.0.1:{slow.port}/hooks"
        assert sending.post(url, "{}", headers, deadline=started + 1.0).got == "timeout"
        assert time.monotonic() - started < 3.0
        wait_until(lambda: slow.held(), timeout=5)
        assert slow.connections() == 1
    finally:
        slow.stop()


def test_a_name_that_does_not_resolve_in_time_ends_the_try(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's resolver takes no time limit: a lookup that hangs is left behind."""
    hung = threading.Event()
    monkeypatch.setattr(targets, "_lookup", lambda _host, _port: hung.wait(60) and [])
    try:
        with pytest.raises(targets.TooSlow):
            targets.addresses("hooks.example.com", 443, deadline=_soon(0.3))
        headers = Signer(SECRET).headers("msg_6-0", "{}", time.time())
        started = time.monotonic()
        assert (
            sending.post("https://hooks.example.com/x", "{}", headers, deadline=started + 0.3).got
            == "timeout"
        )
        assert time.monotonic() - started < 5.0
    finally:
        hung.set()


def test_a_trickled_callback_is_tried_once_within_its_timeout(
    redis_client: redis.Redis, trickler: Trickler
) -> None:
    """The try ends at HUDHUD_CALLBACK_TIMEOUT, long before its lease: no other thread takes
    the callback meanwhile, so it is not sent twice at once."""
    ledger = _ledger(redis_client)
    _message(ledger, "m-slow", "")
    settings = Settings(
        HUDHUD_CALLBACK_SECRET=SECRET,
        HUDHUD_CALLBACK_URL=trickler.url,
        HUDHUD_CALLBACK_TIMEOUT="1",
        HUDHUD_CALLBACK_SCHEDULE="0,60",
    )
    dispatcher = Dispatcher(settings, ledger, threads=4)
    assert dispatcher.lease_seconds >= 10 * settings.callback_timeout
    dispatcher.consumer.start = "0"
    running = threading.Thread(target=dispatcher.run, daemon=True)
    running.start()
    try:
        wait_until(lambda: dispatcher.store.stats().get("attempt:timeout"), timeout=8)
        wait_until(lambda: trickler.held(), timeout=5)
        assert trickler.connections() == 1
        assert trickler.held()[0] < 3.0
        assert dispatcher.store.stats()["pending"] == 1  # tried again in a minute
    finally:
        dispatcher.stop()
        running.join(10)
    assert not running.is_alive()
    assert trickler.connections() == 1


# --- a message's callbacks in stream order --------------------------------------------------


def _callback(entry: str, message_id: str, status: Status, target: str = "") -> Callback:
    change = Change(
        entry=entry,
        id=message_id,
        status=status,
        previous=None,
        channel="sms",
        provider="taqnyat",
        lane="transactional",
        reference=None,
        at="2026-12-02T06:00:00.000Z",
        attempt=1,
        error=None,
    )
    return Callback(entry, message_id, target, body_of(change, {}))


def test_a_message_callbacks_go_in_stream_order_whatever_order_they_were_queued(
    redis_client: redis.Redis, receiver: Receiver
) -> None:
    store = CallbackStore(redis_client)
    later = [
        _callback("1764646800001-10", "m-ord", Status.DELIVERED),
        _callback("1764646800001-9", "m-ord", Status.SENT),
        _callback("1764646800000-120", "m-ord", Status.SENDING),
    ]
    now = time.time()
    for one in later:  # the latest change first: as a second dispatcher, or a late intake, would
        assert store.queue(one, due=now)
    settings = Settings(HUDHUD_CALLBACK_SECRET=SECRET, HUDHUD_CALLBACK_URL=receiver.url)
    dispatcher = Dispatcher(settings, _ledger(redis_client), threads=1)
    for _ in range(len(later)):
        (taken,) = dispatcher.store.take(now=time.time(), lease=time.time() + 30, limit=10)
        dispatcher.deliver(taken)
    assert [r.webhook_id for r in receiver.of("m-ord")] == [
        "msg_1764646800000-120",
        "msg_1764646800001-9",
        "msg_1764646800001-10",
    ]
    assert [r.body["data"]["status"] for r in receiver.of("m-ord")] == ["sending", "sent", "delivered"]
    assert store.stats()["pending"] == 0 and store.waiting(time.time()) == (0, 0)


def test_an_earlier_callback_waits_for_the_one_in_flight(redis_client: redis.Redis) -> None:
    """A message is leased as a whole: one callback of it at a time, the earliest next."""
    store = CallbackStore(redis_client)
    now = time.time()
    delivered = _callback("1764646800005-0", "m-fly", Status.DELIVERED)
    sent = _callback("1764646800004-0", "m-fly", Status.SENT)
    other = _callback("1764646800006-0", "m-other", Status.SENT)
    store.queue(delivered, due=now)
    (first,) = store.take(now=now, lease=now + 30, limit=10)
    assert first.callback.entry == delivered.entry
    store.queue(sent, due=now)
    store.queue(other, due=now)
    (second,) = store.take(now=now, lease=now + 30, limit=10)
    assert second.callback.message_id == "m-other"  # m-fly stays leased while its try is on
    assert store.done(first.callback, "delivered", next_due=now, lease=first.lease)
    (third,) = store.take(now=now, lease=now + 30, limit=10)
    assert third.callback.entry == sent.entry and third.attempts == 0
    assert not store.retry(first, at=now, got="5xx")  # an old lease changes nothing
    assert store.retry(third, at=now, got="5xx")
    (again,) = store.take(now=now, lease=now + 31, limit=10)
    assert again.callback.entry == sent.entry and again.attempts == 1


# --- endpoints that answered 410 --------------------------------------------------------------


def test_a_410_disables_a_message_url_by_its_origin(redis_client: redis.Redis, receiver: Receiver) -> None:
    """A host answering 410 on a path of its own per message is one disabled endpoint; the
    operator's own URL on that host stays enabled; callbacks waiting are dropped as they come."""
    receiver.answer = 410
    store = CallbackStore(redis_client)
    base = f"http://127.0.0.1:{receiver.port}"
    settings = Settings(
        HUDHUD_CALLBACK_SECRET=SECRET, HUDHUD_CALLBACK_HOSTS="127.0.0.1", HUDHUD_CALLBACK_URL=receiver.url
    )
    dispatcher = Dispatcher(settings, _ledger(redis_client), threads=1)
    now = time.time()
    store.queue(_callback("1-1", "m-a", Status.SENT, f"{base}/per/a?t=1"), due=now)
    store.queue(_callback("1-2", "m-a", Status.DELIVERED, f"{base}/per/a?t=1"), due=now)
    store.queue(_callback("1-3", "m-b", Status.SENT, f"{base}/per/b?t=2"), due=now + 1)
    (taken,) = store.take(now=now, lease=now + 30, limit=10)
    dispatcher.deliver(taken)
    assert list(store.disabled()) == [f"http://127.0.0.1:{receiver.port}"]
    assert not store.is_disabled(receiver.url)
    for _ in range(2):
        (taken,) = store.take(now=time.time() + 2, lease=time.time() + 30, limit=1)
        dispatcher.deliver(taken)
    assert len(receiver.all()) == 1
    stats = store.stats()
    assert stats["disabled"] == 1 and stats["dropped"] == 2 and stats["pending"] == 0
    assert stats["endpoints_disabled"] == 1


def test_the_disabled_endpoints_kept_are_capped(redis_client: redis.Redis) -> None:
    store = CallbackStore(redis_client)
    extra = 5
    for i in range(DISABLED_KEPT + extra):
        assert store.disable(f"https://h{i}.example:443", {"at": 1000.0 + i})
    kept = store.disabled()
    assert len(kept) == DISABLED_KEPT
    assert f"https://h{DISABLED_KEPT + extra - 1}.example:443" in kept
    assert not any(f"https://h{i}.example:443" in kept for i in range(extra))


def test_enable_takes_a_url_of_a_disabled_origin(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    store = CallbackStore(client)
    store.disable("https://hooks.example.com:443", {"at": 1.0})
    store.disable("http://127.0.0.1:9/op?token=x", {"at": 2.0})
    env = {**os.environ, "HUDHUD_REDIS_URL": redis_server.url}
    done = run_cli(
        "callbacks", "enable", "https://hooks.example.com/orders/77?sig=abc", "--json", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"enabled": 1}
    assert list(store.disabled()) == ["http://127.0.0.1:9/op?token=x"]
    other = run_cli("callbacks", "enable", "http://127.0.0.1:9/other", "--json", env=env, cwd=tmp_path)
    assert other.returncode == 2 and json.loads(other.stdout)["field"] == "url"
    client.close()


# --- addresses that wrap an inside one ------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", True),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", True),  # a network's own NAT64 prefix
        ("::7f00:1", True),  # IPv4-compatible 127.0.0.1
        ("::c0a8:101", True),  # IPv4-compatible 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo, client 127.0.0.1
        ("2002:808:808::", False),  # 6to4 of 8.8.8.8
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8
        ("::ffff:8.8.8.8", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_an_ipv6_address_is_judged_by_the_ipv4_it_carries(address: str, inside: bool) -> None:
    assert targets.inside(address) is inside
