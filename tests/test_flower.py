"""Flower as an operator uses it, against real processes: redis-server, the sandbox over HTTP,
`hudhud worker`, `hudhud beat` and `hudhud flower`.

- Its Broker tab and `/api/queues/length` answer the depth of hudhud's queues, with hudhud's
  own broker transport, a password (an ACL user) or TLS with a private CA, and show the
  broker URL with its password masked.
- A delivery's result names its outcome and its message (`rejected: message <id>`), a hold
  names the paused provider and why, and Flower's search finds them (`result:rejected`).
- Beat's jobs stay out of the task list unless the workers run with HUDHUD_BEAT_EVENTS=1.
- A delivery's arguments show its message id; nothing personal shows anywhere.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hudhud.worker.broker.celery_app import CELERY_DEFAULT_QUEUE, CONTROL_QUEUE, DELIVERY_QUEUES
from hudhud.worker.ledger.inspect import queue_depths
from hudhud.worker.ops.processes import flower_argv
from tests.helpers import RedisServer, Sandbox, TlsFiles, make_tls_files
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

AUTH = ("ops", "flower-pass")
PASSWORD = "flower-redis-pw-7Qx2"
ALL_QUEUES = {*DELIVERY_QUEUES, CONTROL_QUEUE, CELERY_DEFAULT_QUEUE}
BEAT_SUCCEEDED = re.compile(r"Task hudhud\.beat\.\w+\[[^\]]+\] succeeded")


class FlowerClient:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.seen: list[str] = []  # every answer, to look for personal data in

    def get(self, path: str, **params: Any) -> requests.Response:
        reply = requests.get(self.base + path, params=params, auth=AUTH, timeout=15)
        assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
        self.seen.append(reply.text)
        return reply

    def tasks(self, **params: Any) -> dict[str, dict[str, Any]]:
        return dict(self.get("/api/tasks", limit=100000, **params).json())

    def queue_lengths(self) -> dict[str, int]:
        answer = self.get("/api/queues/length").json()
        return {q["name"]: q["messages"] for q in answer["active_queues"]}

    def task_of(self, message_id: str, outcome: str) -> dict[str, Any]:
        """The delivery task of `message_id` whose result starts with `outcome`, once Flower has it."""

        def found() -> dict[str, Any] | None:
            for task in self.tasks(taskname="hudhud.deliver").values():
                if message_id in str(task.get("args")) and str(task.get("result")).startswith(f"'{outcome}"):
                    return task
            return None

        return wait_until(found, timeout=30, interval=0.5)


def events_flow(stack: Stack, flower: FlowerClient) -> None:
    """Wait until Flower lists a delivery sent now: Flower turns on the workers' task events
    every few seconds, and only events sent after that reach it."""
    probes: list[str] = []

    def listed() -> bool:
        probes.append(stack.hudhud.send_sms(["966500000901"], "probe").id)
        args = {str(t.get("args")) for t in flower.tasks(taskname="hudhud.deliver").values()}
        return any(probe in arg for probe in probes for arg in args)

    wait_until(listed, timeout=45, interval=1)


# --- a running deployment ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("flower"), knobs={"progress_seconds": 0.2}) as made:
        yield made


@pytest.fixture(scope="module")
def flower(stack: Stack) -> FlowerClient:
    client = FlowerClient(stack.start_flower(":".join(AUTH)))
    wait_until(lambda: _answers(client), timeout=30, interval=0.5)
    events_flow(stack, client)
    return client


def _answers(client: FlowerClient) -> bool:
    try:
        return requests.get(client.base + "/api/workers", auth=AUTH, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_flower_runs_on_the_app_that_teaches_it_hudhuds_broker() -> None:
    argv = flower_argv(["--port=5555"])
    assert argv[argv.index("-A") + 1] == "hudhud.worker.ops.flower" and argv[-2:] == ["flower", "--port=5555"]


def test_a_delivery_names_its_outcome_and_message_and_search_finds_the_refused(
    stack: Stack, flower: FlowerClient
) -> None:
    sent = stack.hudhud.send_sms(["966500000911"], "a body for flower")
    refused = stack.hudhud.send_sms(["999500000912"], "a body for flower")  # the sandbox's unassigned prefix
    stack.wait_status([sent.id], {"sent"})
    stack.wait_status([refused.id], {"rejected"})

    ok = flower.task_of(sent.id, "sent")
    bad = flower.task_of(refused.id, "rejected")
    assert ok["result"] == f"'sent: message {sent.id}'" and ok["state"] == "SUCCESS"
    assert bad["result"] == f"'rejected: message {refused.id}'"
    assert json.loads(bad["args"].replace("'", '"')) == [refused.id, "taqnyat"], "the message id shows"

    found = flower.tasks(search="result:rejected")
    assert bad["uuid"] in found and ok["uuid"] not in found
    by_id = flower.tasks(search=f"args:{refused.id}")
    assert set(by_id) == {bad["uuid"]}, "a message's tasks are found by its id"
    page = flower.get(f"/task/{bad['uuid']}").text
    assert f"rejected: message {refused.id}" in page


def test_a_hold_names_the_paused_provider_and_why(stack: Stack, flower: FlowerClient) -> None:
    stack.sandbox.knobs(api_disabled=True)
    try:
        held = stack.hudhud.send_sms(["966500000921"], "held for flower")
        task = flower.task_of(held.id, "held")
    finally:
        stack.sandbox.knobs(api_disabled=False)
    assert task["result"] == f"'held: message {held.id}: taqnyat paused (account)'"
    stack.wait_status([held.id], {"sent"}, timeout=60)
    assert flower.task_of(held.id, "sent")["uuid"] != task["uuid"], "resumed by a task of its own"


def test_beat_jobs_stay_out_of_the_task_list_unless_asked_for(stack: Stack, flower: FlowerClient) -> None:
    def beat_jobs_run() -> int:
        return len(BEAT_SUCCEEDED.findall(stack.log("w1").read_text(errors="replace")))

    before = beat_jobs_run()
    wait_until(lambda: beat_jobs_run() >= before + 10, timeout=30, interval=0.3)
    events_flow(stack, flower)  # events sent after those jobs ran have arrived
    names = {str(t.get("name")) for t in flower.tasks().values()}
    assert "hudhud.deliver" in names and not any(n.startswith("hudhud.beat.") for n in names), names
    types = flower.get("/api/task/types").json()["task-types"]
    assert not any(str(n).startswith("hudhud.beat.") for n in types)

    stack.env["HUDHUD_BEAT_EVENTS"] = "1"
    try:
        stack.start_worker("w2", queues=CONTROL_QUEUE)
    finally:
        del stack.env["HUDHUD_BEAT_EVENTS"]

    def listed() -> dict[str, dict[str, Any]]:
        return flower.tasks(search="name:hudhud.beat.release_due")

    def done() -> dict[str, dict[str, Any]]:
        jobs = listed()
        return jobs if any(t.get("state") == "SUCCESS" for t in jobs.values()) else {}

    jobs = wait_until(done, timeout=45, interval=0.5)
    assert {str(t.get("worker")).split("@")[0] for t in jobs.values()} == {"w2"}, "w1 sends none"


def test_flower_shows_the_queues_and_a_masked_broker_url(stack: Stack, flower: FlowerClient) -> None:
    lengths = flower.queue_lengths()
    assert ALL_QUEUES <= set(lengths), lengths
    assert all(isinstance(n, int) and n >= 0 for n in lengths.values())
    page = flower.get("/broker").text
    assert f"127.0.0.1:{stack.redis_server.port}" in page and "hudhud.worker.broker.transport" not in page
    assert all(f">{name}<" in page for name in (CONTROL_QUEUE, "sms", "sms.bulk"))


def test_flower_shows_no_personal_data(stack: Stack, flower: FlowerClient) -> None:
    marker = uuid.uuid4().hex[:10]
    receipt = stack.hudhud.send_sms(["966512340931"], f"personal body {marker}")
    stack.wait_status([receipt.id], {"sent"})
    task = flower.task_of(receipt.id, "sent")
    uuid_ = task["uuid"]
    for path in ("/api/tasks", "/tasks", "/api/workers", f"/api/task/info/{uuid_}", f"/task/{uuid_}"):
        flower.get(path)
    table = flower.get(
        "/tasks/datatable",
        draw=1,
        start=0,
        length=1000,
        **{"search[value]": f"args:{receipt.id}", "order[0][column]": 0, "columns[0][data]": "name"},
    ).json()
    assert [row["uuid"] for row in table["data"]] == [uuid_], "the Tasks page finds it by its message id"
    text = "\n".join(flower.seen)
    assert receipt.id in text
    for needle in ("966512340931", "966500000911", "999500000912", marker, "a body for flower"):
        assert needle not in text, needle


# --- queue lengths on a Redis with a password or TLS, no worker taking anything -----------


def stack_on(server: RedisServer, workdir: Path, sandbox: Sandbox) -> Stack:
    server.start()
    return Stack(workdir, redis_server=server, sandbox=sandbox)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    made = Sandbox(log=tmp_path_factory.mktemp("flower-sandbox") / "sandbox.log").start()
    yield made
    made.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("flower-tls"))


def assert_queue_lengths(stack: Stack) -> FlowerClient:
    for n in range(3):
        stack.hudhud.send_sms([f"96650000094{n}"], "waiting")
    stack.hudhud.send_email(["waiting@example.com"], "waiting", text="waiting")
    stack.hudhud.send_campaign("sms", {"to": [f"96650001{n:04d}" for n in range(3)], "body": "bulk"})
    flower = FlowerClient(stack.start_flower(":".join(AUTH)))
    lengths = flower.queue_lengths()
    assert ALL_QUEUES <= set(lengths), lengths
    depths = queue_depths(stack.ledger, ALL_QUEUES)
    assert {q: lengths[q] for q in ALL_QUEUES} == {q: depths[q] for q in ALL_QUEUES}, "as hudhud reads them"
    assert lengths["sms"] == 3 and lengths["email"] == 1 and lengths["sms.bulk"] >= 1
    page = flower.get("/broker").text
    assert re.search(r">\s*sms\.bulk\s*<", page) and "not supported" not in page
    text = "\n".join(flower.seen) + stack.log("flower").read_text(errors="replace")
    assert PASSWORD not in text and "96650000094" not in text
    return flower


def test_queue_lengths_with_an_acl_user_and_a_password(tmp_path: Path, sandbox: Sandbox) -> None:
    server = RedisServer(tmp_path / "redis", user="hudhud", password=PASSWORD)
    stack = stack_on(server, tmp_path, sandbox)
    try:
        page = assert_queue_lengths(stack).get("/broker").text
        assert f"redis://hudhud:***@127.0.0.1:{server.port}/0" in page
    finally:
        stack.stop()
        server.stop()


def test_queue_lengths_over_tls_with_a_private_ca(tmp_path: Path, sandbox: Sandbox, tls: TlsFiles) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD, tls=tls)
    stack = stack_on(server, tmp_path, sandbox)
    try:
        assert server.url.startswith("rediss://")
        assert_queue_lengths(stack)
    finally:
        stack.stop()
        server.stop()
