"""Bad input from foreign producers, through the broker to a real `hudhud worker`.

A producer in another language enqueues `hudhud.send_sms/send_email/send_voice` with
whatever it likes. Every malformed send must end as a complete `failed` record whose error
names the field, with no payload kept, nothing sent to a provider, no retry, and the worker
alive; malformed broker messages must not take the worker down either.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from kombu import Connection, Exchange, Producer

from hudhud.worker.broker.transport import UNREADABLE_KEY
from hudhud.worker.ledger import LEASES, QUEUED, SCHEDULED, msg_key
from tests.bad_input import BadSend, bad_sends, good_fields
from tests.helpers import RedisServer, Sandbox
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

SECRET = "Zq7-secret-body"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("bad-tasks"), concurrency=8) as made:
        yield made


def send_task(stack: Stack, channel: str, kwargs: object, args: object = ()) -> str:
    return str(stack.app.send_task(f"hudhud.send_{channel}", args=args, kwargs=kwargs).id)


def assert_failed_cleanly(stack: Stack, task_id: str, timeout: float = 60) -> str:
    """The record is a complete `failed` one without payload, and is in no queue; its error."""
    stack.wait_status([task_id], {"failed"}, timeout=timeout)
    record = stack.hudhud.status(task_id)
    assert record["attempts"] == 0
    assert [e["type"] for e in record["events"]] == ["failed"]
    assert stack.redis.hget(msg_key(task_id), "payload") in (None, b"{}")
    for zset in (QUEUED, SCHEDULED, LEASES):
        assert stack.redis.zscore(zset, task_id) is None
    assert stack.procs["w1"].poll() is None, "the worker must stay up"
    return str(record["error"])


def with_secret(bad: BadSend) -> BadSend:
    """Put a recognisable body into the bad send, to look for it in the logs afterwards."""
    fields = dict(bad.fields)
    if bad.channel == "sms" and isinstance(fields.get("body"), str) and "body" not in bad.blame:
        fields["body"] = f"{SECRET} {fields['body']}"
    if bad.channel == "email" and isinstance(fields.get("text"), str) and "text" not in bad.blame:
        fields["text"] = f"{SECRET} {fields['text']}"
    return BadSend(bad.channel, fields, bad.blame, bad.args, bad.secret)


@settings(
    max_examples=35,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# (A keyword named `self` is left to the test of its own below.)
@given(bad=bad_sends(positional=True).filter(lambda b: "self" not in b.fields).map(with_secret))
def test_malformed_send_task_ends_failed_naming_the_field(stack: Stack, bad: BadSend) -> None:
    sent_before = len(stack.sandbox.sends())
    task_id = send_task(stack, bad.channel, bad.fields, bad.args)
    error = assert_failed_cleanly(stack, task_id)
    field = error.partition(": ")[0]
    assert bad.names(field), (error, bad.blame, bad.fields)
    assert not bad.leaks(error)
    assert len(stack.sandbox.sends()) == sent_before, "nothing may reach a provider"


def test_huge_bodies_through_the_broker_end_failed(stack: Stack) -> None:
    ids = {
        send_task(stack, "sms", {**good_fields("sms"), "body": "x" * 200_000}): "body",
        send_task(stack, "email", {**good_fields("email"), "text": "y" * (10 * 1024 * 1024 + 1)}): "text",
        send_task(stack, "sms", {**good_fields("sms"), "to": [f"9665{i:08d}" for i in range(100_001)]}): "to",
    }
    for task_id, field in ids.items():
        assert assert_failed_cleanly(stack, task_id).startswith(f"{field}: ")


def publish_raw(stack: Stack, body: bytes, *, content_type: str, headers: dict[str, object]) -> None:
    with Connection(stack.redis_server.url) as conn:
        Producer(conn).publish(
            body,
            exchange=Exchange("hudhud", type="direct"),
            routing_key="sms",
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers,
            declare=[],
        )


def task_headers(task_id: str, name: str = "hudhud.send_sms") -> dict[str, object]:
    return {
        "lang": "py",
        "task": name,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "",
        "kwargsrepr": "",
    }


def test_raw_malformed_broker_messages_do_not_take_the_worker_down(stack: Stack) -> None:
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    cases = {
        "kwargs-not-a-dict": (json.dumps([[], ["966500000000", "x"], embed]).encode(), "application/json"),
        "args-not-a-list": (json.dumps([{"to": "x"}, {}, embed]).encode(), "application/json"),
        "body-not-json": (b"{not json at all", "application/json"),
        "body-not-utf8": (b'[[], {"body": "\xff\xfe"}, {}]', "application/json"),
        "untrusted-pickle": (b"\x80\x04K\x01.", "application/x-python-serialize"),
        "unknown-type": (b"<xml/>", "application/xml"),
        "deeply-nested": (b"[" * 50_000 + b"]" * 50_000, "application/json"),
    }
    ids = {}
    for name, (body, content_type) in cases.items():
        task_id = str(uuid.uuid4())
        ids[name] = task_id
        publish_raw(stack, body, content_type=content_type, headers=task_headers(task_id))
    publish_raw(stack, b"[[], {}, {}]", content_type="application/json", headers={"lang": "py"})
    unknown = str(uuid.uuid4())
    publish_raw(
        stack,
        json.dumps([[], good_fields("sms"), embed]).encode(),
        content_type="application/json",
        headers=task_headers(unknown, "hudhud.send_fax"),
    )
    # The worker stays up and still delivers a good send sent after all of them.
    good = send_task(stack, "sms", good_fields("sms", 777))
    stack.wait_status([good], {"sent"}, timeout=60)
    assert stack.procs["w1"].poll() is None
    # A message the task could still read ends as a failed record; the others leave nothing.
    assert assert_failed_cleanly(stack, ids["args-not-a-list"]).startswith("args: ")
    for name in ("kwargs-not-a-dict", "body-not-json", "body-not-utf8", "untrusted-pickle", "deeply-nested"):
        record = stack.ledger.get(ids[name])
        assert record is None or record["status"] == "failed", (name, record)
    assert stack.ledger.get(unknown) is None
    assert not [s for s in stack.sandbox.sends() if s.get("sms_id") in ids.values()]


def test_failed_sends_stay_failed_while_beat_runs(stack: Stack) -> None:
    ids = [
        send_task(stack, "sms", {"to": ["+966500000000"], "body": "x"}),
        send_task(stack, "voice", {**good_fields("voice"), "audio_url": "ftp://x/a.mp3"}),
        send_task(
            stack,
            "email",
            {**good_fields("email"), "attachments": [{"filename": "../a", "content_base64": ""}]},
        ),
        send_task(stack, "sms", good_fields("sms"), ["positional"]),
    ]
    stack.wait_status(ids, {"failed"}, timeout=60)
    first = {i: stack.ledger.get(i) for i in ids}
    time.sleep(4)  # several rounds of release-due, requeue-stale and recover-leases
    for task_id in ids:
        assert stack.ledger.get(task_id) == first[task_id], "a failed send must not be retried"
    assert stack.procs["w1"].poll() is None


def test_no_body_number_or_address_of_a_refused_send_reaches_the_logs(stack: Stack) -> None:
    task_id = send_task(stack, "sms", {"to": ["+966512349876"], "body": f"{SECRET} 4471"})
    assert_failed_cleanly(stack, task_id)
    task_id = send_task(stack, "email", {"to": ["bad-address.example.com"], "subject": "s", "text": SECRET})
    assert_failed_cleanly(stack, task_id)
    time.sleep(0.5)

    def logs() -> str:
        return stack.log("w1").read_text(errors="replace") + stack.log("beat").read_text(errors="replace")

    wait_until(lambda: "refused" in logs(), timeout=10)
    text = logs()
    for needle in (SECRET, "966512349876", "bad-address.example.com"):
        assert needle not in text, needle


# --- faults outside the intake ------------------------------------------------------------
def test_a_keyword_named_self_ends_failed_like_any_unknown_field(stack: Stack) -> None:
    task_id = send_task(stack, "sms", {**good_fields("sms"), "self": "x"})
    assert assert_failed_cleanly(stack, task_id, timeout=8).startswith("self: ")


@pytest.mark.parametrize("body", [json.dumps("hello").encode(), json.dumps([[]]).encode()])
def test_a_body_of_the_wrong_shape_does_not_stop_the_worker(
    tmp_path_factory: pytest.TempPathFactory, body: bytes
) -> None:
    workdir = tmp_path_factory.mktemp("bad-shape")
    redis_server = RedisServer(workdir / "redis").start()
    sandbox = Sandbox(log=workdir / "sandbox.log").start()
    own = Stack(workdir, redis_server=redis_server, sandbox=sandbox)
    try:
        worker = own.start_worker("w1", concurrency=2)
        publish_raw(own, body, content_type="application/json", headers=task_headers(str(uuid.uuid4())))
        good = send_task(own, "sms", good_fields("sms", 778))
        wait_until(lambda: worker.poll() is not None or own.ledger.status_of([good]) == ["sent"], timeout=60)
        assert worker.poll() is None, "the worker stopped"
        assert own.ledger.status_of([good]) == ["sent"]
    finally:
        own.stop()
        sandbox.stop()
        redis_server.stop()


def test_raw_queue_items_that_are_no_broker_message_do_not_stop_the_worker(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Whatever another program pushes onto a queue's list in Redis (not JSON, not UTF-8,
    JSON of another shape) is set aside; the worker goes on delivering."""
    workdir = tmp_path_factory.mktemp("raw-items")
    redis_server = RedisServer(workdir / "redis").start()
    sandbox = Sandbox(log=workdir / "sandbox.log").start()
    own = Stack(workdir, redis_server=redis_server, sandbox=sandbox)
    personal = b'{"headers": {"task": "hudhud.send_sms", "id": "t-1"}, "body": "966500000777 code 4821"}'
    items = [b"{not json", b"\xff\xfe\x00", b"5", b'"text"', b"null", b"[1, 2]", b"{}", b"", personal]
    try:
        worker = own.start_worker("w1", concurrency=2)
        first = send_task(own, "sms", good_fields("sms", 779))
        own.wait_status([first], {"sent"}, timeout=60)
        for item in items:
            own.redis.lpush("sms", item)
        good = send_task(own, "sms", good_fields("sms", 780))
        wait_until(lambda: worker.poll() is not None or own.ledger.status_of([good]) == ["sent"], timeout=60)
        assert worker.poll() is None, "the worker stopped"
        assert own.ledger.status_of([good]) == ["sent"]
        assert own.redis.llen("sms") == 0
        kept = own.redis.lrange(UNREADABLE_KEY, 0, -1)
        assert len(kept) == len(items), "each one noted for a look"
        notes = [json.loads(k) for k in kept]
        assert all(n["bytes"] >= 0 and len(n["sha256"]) == 16 and n["reason"] for n in notes)
        assert not any(b"966500000777" in k or b"4821" in k for k in kept), "no contents kept"
        assert any(n.get("task") == "hudhud.send_sms" and n.get("id") == "t-1" for n in notes)
        assert "could not be read" in own.log("w1").read_text(errors="replace")
    finally:
        own.stop()
        sandbox.stop()
        redis_server.stop()
