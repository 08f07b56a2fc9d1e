"""The suppression list: normalized keyed fingerprints, the claim, the CLI and the HTTP API,
Taifa's hard bounces and complaints, and campaign planning (a real redis-server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import ClaimOutcome, Ledger, NewMessage, keys
from hudhud.worker.ledger.status import DeliveryOutcome, Status
from hudhud.worker.ledger.suppression import Source, Suppressions, automatic
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.producer import campaign
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Inbound
from hudhud.worker.providers.taifa import suppressing
from hudhud.worker.runtime import make_ledger
from hudhud.worker.web.app import create_app
from tests.helpers import RedisServer, Sandbox
from tests.stack import FAST_BEAT
from tests.test_taifa_webhooks import SECRET, hex_sig

NUMBER = "966500000777"
OTHER = "966500000778"
ADDRESS = "amina.bounce@example.com"
KEY = "k-suppress-1"


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30)


def listed_raw(ledger: Ledger) -> str:
    return json.dumps({str(k): str(v) for k, v in ledger.redis.hgetall(keys.SUPPRESSED).items()})


def test_every_way_of_writing_a_number_or_address_is_one_fingerprint(ledger: Ledger) -> None:
    prints = Suppressions(ledger).fingerprints(["+" + NUMBER, "00" + NUMBER, NUMBER, "+966 50 000 0777"])
    assert len({fp for fp, _ in prints}) == 1
    assert prints[0][0] == ledger.fingerprints.of(NUMBER), "the claim's fingerprint of a sent number"
    upper = Suppressions(ledger).fingerprints([ADDRESS.upper(), f" {ADDRESS} "])
    assert {fp for fp, _ in upper} == {ledger.fingerprints.of(ADDRESS)}


def test_add_remove_and_list_hold_no_plain_value(ledger: Ledger) -> None:
    suppressions = Suppressions(ledger)
    assert suppressions.add(["+" + NUMBER, ADDRESS], reason="asked", source=Source.OPERATOR, now=1.0) == [
        True,
        True,
    ]
    assert suppressions.add([NUMBER], source=Source.API, now=2.0) == [False]
    assert suppressions.count() == 2
    _, page = suppressions.page()
    assert {(e.kind, e.source, e.reason) for e in page} == {
        ("number", "operator", "asked"),
        ("address", "operator", "asked"),
    }
    raw = listed_raw(ledger)
    assert NUMBER not in raw and "amina" not in raw
    found = suppressions.contains([ADDRESS.upper(), OTHER])
    assert found[0] is not None and found[1] is None
    assert suppressions.remove([ADDRESS, ADDRESS + "x"]) == [True, False]
    assert suppressions.count() == 1


def test_a_bad_value_writes_nothing_and_is_named(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput) as caught:
        Suppressions(ledger).add([NUMBER, "12"], source=Source.OPERATOR, now=1.0)
    assert caught.value.field == "to[1]"
    assert Suppressions(ledger).count() == 0


def test_the_claim_ends_a_message_suppressed_or_drops_one_of_two(ledger: Ledger) -> None:
    Suppressions(ledger).add(["+" + NUMBER], source=Source.OPERATOR, now=1.0)
    now = time.time()
    ledger.create(NewMessage("all", "sms", "taqnyat", {"to": [NUMBER], "body": "x"}, "h1"), now=now)
    ledger.create(NewMessage("half", "sms", "taqnyat", {"to": [NUMBER, OTHER], "body": "x"}, "h2"), now=now)
    assert ledger.claim("all", "taqnyat", now=now, rate=0.0, burst=1.0).outcome is ClaimOutcome.SUPPRESSED
    assert ledger.field("all", "status") == Status.SUPPRESSED
    half = ledger.claim("half", "taqnyat", now=now, rate=0.0, burst=1.0)
    assert half.outcome is ClaimOutcome.CLAIMED and half.suppressed == (0,)


def test_the_cli_adds_checks_lists_and_removes(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUDHUD_")}
    env["HUDHUD_REDIS_URL"] = redis_server.url

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hudhud.worker.ops.cli", "suppress", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    bad = cli("add", NUMBER, "not-a-number", "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["field"] == "to[1]"
    assert redis_client.hlen(keys.SUPPRESSED) == 0
    added = cli("add", "00" + NUMBER, ADDRESS, "--reason", "asked by phone", "--json")
    assert added.returncode == 0 and json.loads(added.stdout)["added"] == 2
    checked = json.loads(cli("list", NUMBER, OTHER, "--json").stdout)
    assert [v["listed"] for v in checked["values"]] == [True, False]
    listing = cli("list", "--json")
    assert json.loads(listing.stdout)["count"] == 2 and NUMBER not in listing.stdout
    assert json.loads(cli("remove", ADDRESS.upper(), "--json").stdout)["removed"] == 1
    assert redis_client.hlen(keys.SUPPRESSED) == 1


def test_the_api_adds_checks_lists_and_removes(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    settings = Settings(HUDHUD_REDIS_URL=redis_server.url, HUDHUD_API_KEYS=f"ops:{KEY}")
    api = TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"})
    assert (
        api.post("/v1/suppressions", json={"to": [NUMBER]}, headers={"Authorization": ""}).status_code == 401
    )
    bad = api.post("/v1/suppressions", json={"to": [NUMBER, "x@"]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "to[1]"
    assert redis_client.hlen(keys.SUPPRESSED) == 0
    added = api.post("/v1/suppressions", json={"to": ["+" + NUMBER, ADDRESS], "reason": "asked"})
    assert added.status_code == 200 and added.json()["changed"] == 2
    checked = api.post("/v1/suppressions/check", json={"to": [ADDRESS.upper(), OTHER]}).json()
    assert [v["listed"] for v in checked["values"]] == [True, False]
    page = api.get("/v1/suppressions")
    assert page.json()["count"] == 2 and NUMBER not in page.text
    assert api.post("/v1/suppressions/remove", json={"to": [NUMBER]}).json()["changed"] == 1
    assert api.get("/v1/suppressions?cursor=x").status_code == 422
    document = api.get("/openapi.json").json()
    assert {"/v1/suppressions", "/v1/suppressions/remove", "/v1/suppressions/check"} <= set(document["paths"])


# --- Taifa's bounces and complaints ------------------------------------------------------


def sent_email(ledger: Ledger, mid: str, email_id: str, to: list[str]) -> None:
    now = time.time()
    ledger.create(NewMessage(mid, "email", "taifa", {"to": to, "subject": "s", "text": "t"}, mid), now=now)
    claim = ledger.claim(mid, "taifa", now=now, rate=0.0, burst=1.0)
    ledger.transition(
        mid,
        to=Status.SENT,
        expect=Status.SENDING,
        now=now,
        token=claim.attempts,
        fields={"provider_message_id": email_id},
    )
    campaign.follow_recipients(ledger, mid, {"": email_id}, provider="taifa", now=now, keep_seconds=600)


def hook(ledger: Ledger, payload: dict[str, Any], on: str = "bounce,complaint") -> int:
    body = json.dumps(payload).encode()
    headers = {
        "x-taifamail-delivery-id": str(time.time_ns()),
        "x-taifamail-signature": hex_sig(SECRET.encode(), body),
    }
    settings = Settings(TAIFA_WEBHOOK_SECRET=SECRET, HUDHUD_SUPPRESS_ON=on)
    return (
        registry.get("taifa")
        .receive(Inbound(headers, {}, body), Tracker(ledger, "taifa"), settings, time.time())
        .status
    )


HARD = {"metadata": {"bounce_type": "hard", "reason": "550 5.1.1 no such user"}}
SOFT = {"metadata": {"bounce_type": "soft", "reason": "452 4.2.2 mailbox full"}}


def test_a_hard_bounce_lists_the_address_and_the_next_email_ends_suppressed(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1", [ADDRESS])
    assert hook(ledger, {"type": "email.bounced", "email_id": "e-1", "data": HARD}) == 200
    assert Suppressions(ledger).contains([ADDRESS.upper()])[0] is not None
    record = ledger.get("m1")
    assert record is not None and "suppression_added" in [e["type"] for e in record["events"]]
    now = time.time()
    ledger.create(
        NewMessage("m2", "email", "taifa", {"to": [ADDRESS], "subject": "s", "text": "t"}, "m2"), now=now
    )
    assert ledger.claim("m2", "taifa", now=now, rate=0.0, burst=1.0).outcome is ClaimOutcome.SUPPRESSED


def test_a_soft_bounce_or_a_setting_of_none_lists_nobody(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1", [ADDRESS])
    assert hook(ledger, {"type": "email.bounced", "email_id": "e-1", "data": SOFT}) == 200
    sent_email(ledger, "m2", "e-2", [ADDRESS])
    assert hook(ledger, {"type": "email.bounced", "email_id": "e-2", "data": HARD}, on="") == 200
    assert Suppressions(ledger).count() == 0


def test_a_complaint_names_its_address_among_several(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1", [ADDRESS, "other@example.com"])
    assert hook(ledger, {"type": "email.complained", "email_id": "e-1", "data": {"email": ADDRESS}}) == 200
    entry = Suppressions(ledger).contains([ADDRESS])[0]
    assert entry is not None and entry.source == "complaint" and entry.message == "m1"
    assert Suppressions(ledger).count() == 1


@pytest.mark.parametrize(
    ("kind", "metadata", "meant"),
    [
        ("email.bounced", {"bounce_type": "hard"}, Source.BOUNCE),
        ("bounced", {"reason": "550 5.1.1 unknown"}, Source.BOUNCE),
        ("bounced", {}, Source.BOUNCE),
        ("bounced", {"bounceType": "Transient"}, Source.BOUNCE),
        ("bounced", {"bounce_type": "Soft"}, None),
        ("bounced", {"reason": "421 4.7.0 try later"}, None),
        ("email.soft_bounce", {}, None),
        ("email.complaint", {}, Source.COMPLAINT),
        ("spam_report", {}, Source.COMPLAINT),
        ("delivered", {}, None),
    ],
)
def test_taifas_words_for_hard_soft_and_complaint(
    kind: str, metadata: dict[str, Any], meant: Source | None
) -> None:
    assert suppressing.cause(kind, metadata) == meant


def test_the_setting_names_what_suppresses() -> None:
    assert automatic("bounce,complaint") == {Source.BOUNCE, Source.COMPLAINT}
    assert automatic(" Complaints ") == {Source.COMPLAINT}
    assert automatic("") == frozenset()


# --- campaigns -------------------------------------------------------------------------


def test_a_campaign_drops_and_counts_suppressed_recipients(ledger: Ledger) -> None:
    settings = Settings(TAQNYAT_SENDER="HUDHUD")
    Suppressions(ledger).add([NUMBER], source=Source.OPERATOR, now=1.0)
    fields = {"to": [NUMBER, OTHER, "966500000779"], "body": "hi"}
    plan = campaign.plan("sms", fields, settings)
    kept = campaign.without_suppressed(plan, ledger, settings)
    assert kept.suppressed == 1 and kept.recipients == 2 and NUMBER not in kept.batches[0]
    assert kept.request_hash == plan.request_hash, "the idempotency hash is that of the given recipients"
    with pytest.raises(InvalidInput) as caught:
        campaign.without_suppressed(
            campaign.plan("sms", {"to": [NUMBER], "body": "hi"}, settings), ledger, settings
        )
    assert caught.value.field == "to"


def test_the_worker_sends_only_to_the_unsuppressed_number(
    redis_client: redis.Redis, fresh_sandbox: Sandbox
) -> None:
    """The worker's delivery against the sandbox over HTTP: one of two numbers listed."""
    url = redis_client.connection_pool.connection_kwargs
    env: dict[str, Any] = {**FAST_BEAT, **fresh_sandbox.env()}
    settings = Settings(**env, HUDHUD_REDIS_URL=f"redis://{url['host']}:{url['port']}/0")
    runtime.reset()
    try:
        delivery = Delivery(
            make_ledger(settings, redis_client), settings, lambda n: runtime.provider_client(n, settings)
        )
        Suppressions(delivery.ledger).add(["+" + NUMBER], source=Source.OPERATOR, now=1.0)
        payload = {"to": [NUMBER, OTHER], "body": "hello", "sender": "HUDHUD"}
        delivery.ledger.create(NewMessage("half", "sms", "taqnyat", payload, "h"), now=time.time())
        assert delivery.deliver("half", "taqnyat").result is DeliveryOutcome.SENT
    finally:
        runtime.reset()
    assert [s["recipients"] for s in fresh_sandbox.sends()] == [[OTHER]]
    record = delivery.ledger.get("half")
    assert record is not None and "recipients_suppressed" in [e["type"] for e in record["events"]]


def test_a_campaigns_receipt_and_status_count_the_suppressed(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    hudhud = Hudhud(Settings(HUDHUD_REDIS_URL=redis_server.url, TAQNYAT_SENDER="HUDHUD"))
    Suppressions(hudhud.ledger).add([NUMBER], source=Source.API, now=1.0)
    receipt = hudhud.send_campaign("sms", {"to": [NUMBER, OTHER], "body": "hi"}, campaign_id="c-supp")
    assert (receipt.recipients, receipt.suppressed, receipt.batches) == (1, 1, 1)
    shown = hudhud.status("c-supp")
    assert shown["suppressed"] == 1 and shown["recipients"] == 1
    assert redis_client.hlen(keys.recipients_key("c-supp")) == 1
