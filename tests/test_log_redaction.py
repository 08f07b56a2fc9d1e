"""A worker that discards a message it cannot run logs the fault, never the message's
contents: a foreign producer's message carries recipients and text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from hudhud.worker.broker.transport import UNREADABLE_KEY
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

NUMBER = "966512340987"
BODY = "secret text 5521"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("redaction"), beat=False) as made:
        yield made


def test_unregistered_and_undecodable_messages_are_logged_without_their_contents(stack: Stack) -> None:
    stack.app.send_task("hudhud.send_smss", kwargs={"to": [NUMBER], "body": BODY}, queue="sms")
    raw = {
        "body": f"not base64 {NUMBER} {BODY}",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "hudhud.send_sms", "id": "x-1", "kwargsrepr": f"{{'to': ['{NUMBER}']}}"},
        "properties": {
            "delivery_info": {"exchange": "", "routing_key": "sms"},
            "body_encoding": "base64",
            "delivery_tag": "t-1",
            "priority": 0,
        },
    }
    stack.redis.lpush("sms", json.dumps(raw))
    wait_until(lambda: "hudhud.send_smss" in stack.log("w1").read_text(errors="replace"), timeout=30)
    ok = stack.hudhud.send_sms([NUMBER], "after the bad ones")
    stack.wait_status([ok.id], {"sent"}, timeout=30)  # the worker lives on
    log = stack.log("w1").read_text(errors="replace")
    assert "Received unregistered task of type 'hudhud.send_smss'" in log
    assert f"a broker message could not be read (Error): it is set aside in {UNREADABLE_KEY}" in log
    kept = stack.redis.lrange(UNREADABLE_KEY, 0, -1)
    assert [json.loads(item)["id"] for item in kept] == ["x-1"], "noted for a look, outside the queues"
    assert not any(NUMBER.encode() in item or BODY.encode() in item for item in kept), "without contents"
    assert "Unrecoverable error" not in log and stack.procs["w1"].poll() is None
    assert stack.redis.hlen("unacked") == 0, "the unreadable message is not left for redelivery"
    assert NUMBER not in log and BODY not in log
