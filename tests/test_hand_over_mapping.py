"""A provider's report that comes while its message is being handed over, against a real
redis-server and the sandbox over HTTP: the provider's id already names the message, so the
report is answered 503 (the provider sends it again) rather than taken for someone else's."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker import runtime
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.status import Status
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.producer.api import Hudhud
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Inbound, InboundAnswer
from hudhud.worker.runtime import make_ledger
from tests.helpers import Sandbox

PHRASE = "hand-over-phrase-3Jx"
SECRET = "whsec_aGFuZC1vdmVyLXNlY3JldA=="

Report = Callable[[str], Inbound]


@pytest.fixture()
def settings(redis_client: redis.Redis, fresh_sandbox: Sandbox) -> Settings:
    url = redis_client.connection_pool.connection_kwargs
    return Settings(
        **fresh_sandbox.env(),
        HUDHUD_REDIS_URL=f"redis://{url['host']}:{url['port']}/0",
        TAQNYAT_DLR_PASSPHRASE=PHRASE,
        TAIFA_WEBHOOK_SECRET=SECRET,
    )


@pytest.fixture()
def delivery(settings: Settings, redis_client: redis.Redis) -> Delivery:
    runtime.reset()
    ledger = make_ledger(settings, redis_client)
    return Delivery(ledger, settings, lambda name: runtime.provider_client(name, settings))


def taqnyat_report(provider_id: str) -> Inbound:
    body = json.dumps({"messageId": provider_id, "status": "DELIVRD"}).encode()
    return Inbound({"content-type": "application/json"}, {"passphrase": PHRASE}, body)


def taifa_report(provider_id: str) -> Inbound:
    body = json.dumps({"type": "email.delivered", "email_id": provider_id, "data": {}}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return Inbound({"x-taifamail-signature": signature, "x-taifamail-delivery-id": "d-1"}, {}, body)


def report_at_the_sent_transition(
    delivery: Delivery, provider: str, report: Report, answers: list[InboundAnswer]
) -> None:
    """Have the provider report right before the message is marked `sent`."""
    ledger: Ledger = delivery.ledger
    transition = ledger.transition

    def reported_first(message_id: str, **kw: Any) -> Any:
        provider_id = (kw.get("fields") or {}).get("provider_message_id")
        if kw.get("to") == Status.SENT and provider_id:
            tracker = Tracker(ledger, provider)
            answers.append(
                registry.get(provider).receive(report(provider_id), tracker, delivery.settings, time.time())
            )
        return transition(message_id, **kw)

    ledger.transition = reported_first  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("provider", "report"),
    [("taqnyat", taqnyat_report), ("taifa", taifa_report)],
)
def test_a_report_before_the_sent_transition_is_503_then_lands(
    delivery: Delivery, settings: Settings, provider: str, report: Report
) -> None:
    hudhud = Hudhud(settings)
    if provider == "taqnyat":
        receipt = hudhud.send_sms("966500000441", "your parcel is on its way", sender="HUDHUD")
    else:
        receipt = hudhud.send_email(
            "someone@example.com", "Parcel", text="on its way", from_="noreply@example.com", provider="taifa"
        )
    answers: list[InboundAnswer] = []
    report_at_the_sent_transition(delivery, provider, report, answers)
    assert delivery.deliver(receipt.id, provider).result == "sent"
    assert [a.status for a in answers] == [503], answers
    provider_id = delivery.ledger.field(receipt.id, "provider_message_id")
    again = registry.get(provider).receive(
        report(provider_id), Tracker(delivery.ledger, provider), settings, time.time()
    )
    assert again.status == 200 and again.body != {"ignored": True}
    assert delivery.ledger.field(receipt.id, "status") == Status.DELIVERED
