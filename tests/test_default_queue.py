"""A producer that names no queue: its own plain Celery app (only `celery` installed, no hudhud
routes) puts `send_task("hudhud.send_sms", ...)` on Celery's default queue `celery`. `hudhud
worker` consumes that queue too, so each of the five contract tasks is delivered when sent by
its name alone; and `hudhud check` names the tasks that wait on a queue no running worker
consumes.

Each test runs a real redis-server, the sandbox and `hudhud worker` (and `hudhud beat`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.stack import Stack, idle_stack, wait_until

pytestmark = pytest.mark.e2e


def stack_in(workdir: Path) -> Iterator[Stack]:
    with idle_stack(workdir, knobs={"progress_seconds": 0.2}) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`hudhud worker` with its default queues (no `-Q`), and beat."""
    for made in stack_in(tmp_path_factory.mktemp("default-queue")):
        made._spawn("w1", ["worker", "-P", "gevent", "-c", "20", "-n", "w1@%h"])
        made.wait_log("w1", " ready.", timeout=60)
        made.start_beat()
        yield made


@pytest.fixture()
def bare_stack(tmp_path: Path) -> Iterator[Stack]:
    """No worker yet: each test starts the workers it needs."""
    yield from stack_in(tmp_path)


def plain_app(stack: Stack) -> Celery:
    """A producer's own Celery app: the broker URL and nothing of hudhud's configuration."""
    app = Celery("producer", broker=stack.redis_server.url, set_as_current=False)
    assert app.conf.task_default_queue == "celery" and not app.conf.task_routes
    return app


@pytest.fixture()
def foreign(stack: Stack) -> Iterator[Celery]:
    app = plain_app(stack)
    yield app
    app.close()


def number(seed: int) -> str:
    return f"9665{seed:08d}"


def accepted_recipients(stack: Stack) -> set[str]:
    return {str(r) for send in stack.sandbox.sends() for r in send.get("recipients") or []}  # type: ignore[attr-defined]


def retry_of(stack: Stack, original: str) -> str | None:
    for key in stack.redis.scan_iter(match="hudhud:m:*", count=1000):
        if stack.redis.type(key) == b"hash" and stack.redis.hget(key, "retry_of") == original.encode():
            found = stack.redis.hget(key, "id")
            return found.decode() if found else None
    return None


def test_each_contract_task_sent_by_name_alone_takes_effect(stack: Stack, foreign: Celery) -> None:
    def send(name: str, **fields: Any) -> str:
        return str(foreign.send_task(name, kwargs=fields).id)

    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    sms = send("hudhud.send_sms", to=[number(9101)], body="no queue named")
    email = send("hudhud.send_email", to=["noqueue-9102@example.com"], subject="s", text="no queue named")
    voice = send("hudhud.send_voice", to=[number(9103)], audio_url="https://example.com/a.mp3")
    parked = send("hudhud.send_sms", to=[number(9104)], body="to be cancelled", at=later)
    bounced = send("hudhud.send_email", to=["bounce-9105@example.com"], subject="s", text="bounce me")

    stack.wait_status([sms, voice], {"sent"}, timeout=30)
    stack.wait_status([email], {"delivered"}, timeout=30)
    stack.wait_status([parked], {"scheduled"}, timeout=30)
    stack.wait_status([bounced], {"bounced"}, timeout=30)
    assert {number(9101), number(9103), "noqueue-9102@example.com"} <= accepted_recipients(stack)

    send("hudhud.cancel", id=parked)
    stack.wait_status([parked], {"cancelled"}, timeout=30)
    send("hudhud.retry_email", id=bounced)
    retry = wait_until(lambda: retry_of(stack, bounced), timeout=30)
    stack.wait_status([retry], {"sent", "bounced", "delivered"}, timeout=30)
    assert number(9104) not in accepted_recipients(stack), "the cancelled message was never sent"
    assert stack.redis.llen("celery") == 0


def test_every_way_a_plain_app_sends_without_a_queue_is_delivered(stack: Stack, foreign: Celery) -> None:
    fields = {"to": [number(9201)], "body": "signature"}
    ids = {
        "apply_async": foreign.signature("hudhud.send_sms", kwargs=fields).apply_async().id,
        "delay": foreign.signature("hudhud.send_sms").delay(to=[number(9202)], body="delay").id,
        # a priority puts the message on the list `celery\x06\x16<step>`
        "priority": foreign.send_task(
            "hudhud.send_sms", kwargs={"to": [number(9203)], "body": "priority"}, priority=5
        ).id,
        # published to the exchange `celery`: routed through the binding `_kombu.binding.celery`
        "exchange": foreign.send_task(
            "hudhud.send_sms",
            kwargs={"to": [number(9204)], "body": "exchange"},
            exchange="celery",
            routing_key="celery",
        ).id,
        "channel queue": foreign.send_task(
            "hudhud.send_sms", kwargs={"to": [number(9205)], "body": "queue"}, queue="sms"
        ).id,
    }
    stack.wait_status([str(i) for i in ids.values()], {"sent"}, timeout=30)
    assert {number(n) for n in range(9201, 9206)} <= accepted_recipients(stack)
    members = stack.redis.smembers("_kombu.binding.celery")
    assert b"celery\x06\x16\x06\x16celery" in members, "the worker binds `celery` as Celery does"


def check(stack: Stack) -> tuple[int, dict[str, Any]]:
    run = stack.cli("check", "--json")
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, json.loads(run.stdout)


def test_check_names_tasks_waiting_on_a_queue_no_worker_consumes(bare_stack: Stack) -> None:
    stack = bare_stack
    stack.start_worker("w1", queues="sms")
    producer = plain_app(stack)
    try:
        producer.send_task(
            "hudhud.send_email", kwargs={"to": ["wait@example.com"], "subject": "s", "text": "t"}
        )
        consumed = producer.send_task(
            "hudhud.send_sms", kwargs={"to": [number(9301)], "body": "x"}, queue="sms"
        )
    finally:
        producer.close()
    waiting = stack.hudhud.send_email(["wait2@example.com"], "s", text="on the email queue")
    stack.wait_status([str(consumed.id)], {"sent"}, timeout=30)
    assert stack.ledger.status_of([waiting.id]) == ["queued"]

    code, report = check(stack)
    assert code == 1 and report["ok"] is False
    assert "queues: 1 task waits on queue celery, which no running worker consumes" in report["problems"]
    assert "queues: 1 task waits on queue email, which no running worker consumes" in report["problems"]
    assert not [p for p in report["problems"] if "queue sms" in p or "answered" in p], report["problems"]
    assert report["queues"]["depths"]["celery"] == 1 and report["queues"]["depths"]["email"] == 1
    assert report["queues"]["depths"]["sms"] == 0
    assert [queues for name, queues in report["queues"]["workers"].items() if name.startswith("w1@")] == [
        ["sms"]
    ]
    text = stack.cli("check")
    assert text.returncode == 1
    assert "problem: queues: 1 task waits on queue celery" in text.stdout

    stack.kill("w1")
    code, report = check(stack)
    assert code == 1
    assert [p for p in report["problems"] if p.startswith("queues: no running worker answered")], report[
        "problems"
    ]
    assert "queues: 1 task waits on queue celery, which no running worker consumes" in report["problems"]


def test_check_has_no_queue_problem_once_a_default_worker_drains_them(bare_stack: Stack) -> None:
    stack = bare_stack
    producer = plain_app(stack)
    try:
        sent = producer.send_task("hudhud.send_sms", kwargs={"to": [number(9401)], "body": "x"})
    finally:
        producer.close()
    code, report = check(stack)
    assert code == 1 and report["queues"]["depths"]["celery"] == 1
    stack._spawn("w1", ["worker", "-P", "gevent", "-c", "10", "-n", "w1@%h"])
    stack.wait_log("w1", " ready.", timeout=60)
    stack.wait_status([str(sent.id)], {"sent"}, timeout=30)
    code, report = check(stack)
    assert (code, report["problems"]) == (0, [])
    assert report["queues"]["depths"]["celery"] == 0
