"""Taifa's webhooks end to end: the sandbox posts signed deliveries to `hudhud api`, and an
email reaches `delivered` through them with no poll at all (no beat runs). A forged signature
and a delivery sent again change nothing; a delivery the API missed while down lands on one
of the sandbox's retries. First, the sandbox's webhook feature alone, against a receiver
that checks signatures and fails on purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from hudhud.worker.ledger.status import Status
from tests.helpers import SANDBOX_TAIFA_KEY, Sandbox, wait_for_port
from tests.stack import Stack, idle_stack, wait_until

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
FAST = 0.001  # the retry waits: 60 ms, 300 ms, 1.8 s, 7.2 s, 28.8 s


# -- the sandbox's webhook feature ----------------------------------------------------------


class Receiver:
    """An HTTP endpoint that keeps every call and answers `answers` in turn (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    made = Receiver([500, 503])
    yield made
    made.close()


@pytest.fixture()
def hooked(fresh_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox, its webhooks and deliveries forgotten again afterwards."""
    yield fresh_sandbox
    fresh_sandbox.reset()


def deliveries(sandbox_url: str, email_id: str) -> list[dict[str, Any]]:
    reply = requests.get(f"{sandbox_url}/_sandbox/taifa/webhooks", params={"email_id": email_id}, timeout=10)
    reply.raise_for_status()
    return list(reply.json()["deliveries"])


def send_at_sandbox(sandbox_url: str, to: str = "someone@example.com") -> str:
    body = {"from_": {"email": "noreply@example.com"}, "to": [{"email": to}], "subject": "s", "text": "t"}
    reply = requests.post(f"{sandbox_url}/v1/emails/", json=body, headers=AUTH, timeout=10)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def test_the_sandbox_registers_webhooks_as_taifa_does(hooked: Sandbox) -> None:
    sandbox = hooked
    url = f"{sandbox.url}/v1/webhooks/"
    assert requests.post(url, json={"url": "http://x.test/h"}, timeout=10).status_code == 401
    bad = requests.post(
        url, json={"url": "ftp://x.test/h", "events": ["email.sent"]}, headers=AUTH, timeout=10
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "url"]
    made = requests.post(
        url, json={"url": "http://x.test/h", "events": ["email.sent"]}, headers=AUTH, timeout=10
    )
    assert made.status_code == 201
    hook = made.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["email.sent"]
    listed = requests.get(url, headers=AUTH, timeout=10).json()["items"]
    assert [item["id"] for item in listed] == [hook["id"]] and "secret" not in listed[0]
    assert requests.delete(f"{url}{hook['id']}", headers=AUTH, timeout=10).status_code == 204
    assert requests.get(url, headers=AUTH, timeout=10).json()["items"] == []
    assert requests.delete(f"{url}{hook['id']}", headers=AUTH, timeout=10).status_code == 404


def test_the_sandbox_posts_signed_deliveries_and_retries_until_a_2xx(
    hooked: Sandbox, receiver: Receiver
) -> None:
    sandbox = hooked
    sandbox.knobs(progress_seconds=0.1, webhook_time_scale=FAST)
    body = {"url": receiver.url, "events": ["email.delivered"]}
    hook = requests.post(f"{sandbox.url}/v1/webhooks/", json=body, headers=AUTH, timeout=10).json()
    email_id = send_at_sandbox(sandbox.url)

    def landed() -> list[dict[str, Any]]:
        found = deliveries(sandbox.url, email_id)
        return found if found and found[0]["state"] == "delivered" else []

    [item] = wait_until(landed, timeout=20)
    assert [a["status"] for a in item["attempts"]] == [500, 503, 200], "only a 2xx counts"
    assert len(receiver.calls) == 3, "nothing but the wanted event type was posted"
    ids = {headers["x-taifamail-delivery-id"] for headers, _ in receiver.calls}
    assert ids == {item["id"]}, "one delivery id across the retries"
    for headers, raw in receiver.calls:
        expected = hmac.new(hook["secret"].encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-taifamail-signature"], expected)
        assert headers["x-taifamail-event"] == "email.delivered"
        payload = json.loads(raw)
        assert payload["type"] == "email.delivered" and payload["email_id"] == email_id
        assert payload["data"]["event_type"] == "delivered"


def test_a_delivery_nobody_takes_is_given_up_after_the_last_retry(hooked: Sandbox) -> None:
    sandbox = hooked
    sandbox.knobs(progress_seconds=0.05, webhook_time_scale=0.0001)
    body = {"url": "http://127.0.0.1:9/nobody", "events": ["email.queued"]}
    assert requests.post(f"{sandbox.url}/v1/webhooks/", json=body, headers=AUTH, timeout=10).ok
    email_id = send_at_sandbox(sandbox.url)

    def given_up() -> list[dict[str, Any]]:
        found = deliveries(sandbox.url, email_id)
        return found if found and found[0]["state"] == "failed" else []

    [item] = wait_until(given_up, timeout=30)
    assert len(item["attempts"]) == 6, "the first try and five retries"
    assert all(a["status"] is None and a["error"] for a in item["attempts"])


# -- end to end through hudhud api ------------------------------------------------------------


def start_api_on(stack: Stack, port: int) -> None:
    """`hudhud api` again, on the port the sandbox posts to."""
    saved = dict(stack.env)
    stack.env.update({"TAIFA_WEBHOOK_SECRET": SECRET, "HUDHUD_API_KEYS": "t:k"})
    try:
        proc = stack._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(port)])
    finally:
        stack.env = saved
    wait_for_port(port, 60, proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """redis-server, the sandbox, a worker and the API; no beat, so no poll ever runs."""
    knobs = {"progress_seconds": 0.3, "webhook_time_scale": FAST}
    with idle_stack(Path(tmp_path_factory.mktemp("taifa-webhooks")), knobs=knobs) as made:
        made.start_worker("w1", concurrency=4)
        api = made.start_api(extra_env={"TAIFA_WEBHOOK_SECRET": SECRET, "HUDHUD_API_KEYS": "t:k"})
        made.env["TEST_API_URL"] = api  # where the sandbox posts, for the tests below
        hook = {"url": f"{api}/webhooks/taifa", "secret": SECRET}
        reply = requests.post(f"{made.sandbox.url}/v1/webhooks/", json=hook, headers=AUTH, timeout=10)
        assert reply.status_code == 201, reply.text
        yield made


def events_of(stack: Stack, message_id: str) -> list[dict[str, Any]]:
    record = stack.ledger.get(message_id)
    assert record is not None
    return list(record["events"])


def provider_id(stack: Stack, message_id: str) -> str:
    stack.wait_status([message_id], {Status.SENT, Status.DELIVERED})
    record = stack.ledger.get(message_id)
    assert record is not None
    return str(record["provider_message_id"])


def settled(stack: Stack, email_id: str) -> None:
    """Wait until the sandbox has no delivery of this email still to post."""
    wait_until(lambda: all(d["state"] != "pending" for d in deliveries(stack.sandbox.url, email_id)))


def post_hook(stack: Stack, body: bytes, delivery: str, signature: str) -> requests.Response:
    headers = {
        "Content-Type": "application/json",
        "X-TaifaMail-Event": "email.delivered",
        "X-TaifaMail-Delivery-ID": delivery,
        "X-TaifaMail-Signature": signature,
    }
    url = f"{stack.env['TEST_API_URL']}/webhooks/taifa"
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_an_email_reaches_delivered_through_the_webhook_with_no_poll(stack: Stack) -> None:
    receipt = stack.hudhud.send_email(["person@example.com"], "hello", text="hi there")
    stack.wait_status([receipt.id], {Status.DELIVERED}, timeout=30)
    finished = [e for e in events_of(stack, receipt.id) if e["type"] == Status.DELIVERED]
    assert len(finished) == 1 and finished[0]["via"] == "webhook"
    email_id = provider_id(stack, receipt.id)
    landed = [d for d in deliveries(stack.sandbox.url, email_id) if d["type"] == "email.delivered"]
    assert landed and landed[0]["state"] == "delivered" and landed[0]["attempts"][-1]["status"] == 200
    settled(stack, email_id)
    before = events_of(stack, receipt.id)
    redo = requests.post(
        f"{stack.sandbox.url}/_sandbox/taifa/webhooks/deliveries/{landed[0]['id']}/redeliver", timeout=10
    )
    assert redo.json()["delivered"], "a delivery id seen before is answered 2xx"
    assert events_of(stack, receipt.id) == before, "and changes nothing"


def test_a_forged_signature_changes_nothing_and_a_delivery_counts_once(stack: Stack) -> None:
    stack.sandbox.knobs(progress_seconds=3600)  # Taifa holds this one: only our calls report it
    try:
        receipt = stack.hudhud.send_email(["held@example.com"], "hello", text="hi there")
        email_id = provider_id(stack, receipt.id)
    finally:
        stack.sandbox.knobs(progress_seconds=0.3)
    settled(stack, email_id)
    before = stack.ledger.get(receipt.id)
    body = json.dumps({"type": "email.delivered", "email_id": email_id, "data": {}}).encode()
    forged = hmac.new(b"whsec_guessed", body, hashlib.sha256).hexdigest()
    assert post_hook(stack, body, "forged-1", forged).status_code == 401
    assert post_hook(stack, body, "forged-1", "").status_code == 401
    assert stack.ledger.get(receipt.id) == before, "a forged call records nothing"
    right = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    first = post_hook(stack, body, "real-1", right)
    assert first.status_code == 200 and first.json() == {"recorded": True}
    after = stack.ledger.get(receipt.id)
    assert after is not None and after["status"] == Status.DELIVERED
    again = post_hook(stack, body, "real-1", right)
    assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert stack.ledger.get(receipt.id) == after


def test_a_delivery_missed_while_the_api_was_down_lands_on_a_retry(stack: Stack) -> None:
    port = int(stack.env["TEST_API_URL"].rsplit(":", 1)[1])
    stack.kill("api")
    receipt = stack.hudhud.send_email(["later@example.com"], "hello", text="hi there")
    email_id = provider_id(stack, receipt.id)

    def missed() -> bool:
        found = [d for d in deliveries(stack.sandbox.url, email_id) if d["type"] == "email.delivered"]
        return bool(found) and len(found[0]["attempts"]) >= 2

    wait_until(missed, timeout=30)
    assert stack.ledger.status_of([receipt.id]) == [Status.SENT], "nothing else reports it"
    start_api_on(stack, port)
    stack.wait_status([receipt.id], {Status.DELIVERED}, timeout=60)
    [item] = [d for d in deliveries(stack.sandbox.url, email_id) if d["type"] == "email.delivered"]
    assert item["state"] == "delivered" and len(item["attempts"]) >= 3
    assert item["attempts"][0]["status"] is None and item["attempts"][-1]["status"] == 200
    assert [e["via"] for e in events_of(stack, receipt.id) if e["type"] == Status.DELIVERED] == ["webhook"]
