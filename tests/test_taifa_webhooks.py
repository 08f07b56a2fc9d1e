"""Taifa's webhook calls: every signature form Taifa may use, the one meaning of its words
(shared with the poller), and what a call records in a real Redis: once per delivery id,
only what a sent message of ours can take, nothing without a valid signature or a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.ledger import Ledger, NewMessage, campaigns
from hudhud.worker.ledger.status import Status
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.producer import campaign
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Inbound, InboundAnswer
from hudhud.worker.providers.taifa import tracking, webhooks
from hudhud.worker.providers.taifa.tracking import Meaning
from tests.helpers import free_port

RAW_KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(RAW_KEY).decode()
BODY = b'{"type":"email.delivered","email_id":"e-1","data":{}}'


def hex_sig(key: bytes, body: bytes = BODY) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def b64_sig(key: bytes, body: bytes = BODY) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


# -- the signature ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        hex_sig(SECRET.encode()),
        "sha256=" + hex_sig(SECRET.encode()),
        hex_sig(SECRET.encode()).upper(),
        b64_sig(SECRET.encode()),
        "sha256=" + b64_sig(SECRET.encode()),
        b64_sig(SECRET.encode()).rstrip("="),
        hex_sig(RAW_KEY),
        "sha256=" + b64_sig(RAW_KEY),
        base64.urlsafe_b64encode(hmac.new(RAW_KEY, BODY, hashlib.sha256).digest()).decode(),
        f"sha256={'0' * 64}, sha256={hex_sig(RAW_KEY)}",
    ],
    ids=[
        "hex-text-key",
        "prefixed-hex",
        "upper-hex",
        "base64",
        "prefixed-base64",
        "unpadded-base64",
        "hex-decoded-key",
        "prefixed-base64-decoded-key",
        "urlsafe-base64",
        "one-of-several",
    ],
)
def test_every_form_of_a_right_signature_is_accepted(header: str) -> None:
    assert webhooks.signed(BODY, header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=",
        "not a signature",
        hex_sig(b"whsec_another"),
        hex_sig(SECRET.encode(), BODY + b" "),
        hex_sig(SECRET.encode())[:-2],
        "sha1=" + hashlib.sha1(BODY).hexdigest(),
    ],
    ids=["empty", "bare-prefix", "words", "other-secret", "other-body", "cut-short", "sha1"],
)
def test_a_wrong_signature_is_refused(header: str) -> None:
    assert not webhooks.signed(BODY, header, SECRET)


def test_a_secret_that_is_not_base64_is_used_as_text() -> None:
    secret = "whsec_not*base64!"
    assert webhooks.signing_keys(secret) == [secret.encode()]
    assert webhooks.signed(BODY, hex_sig(secret.encode()), secret)


# -- one meaning of Taifa's words -----------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "meant"),
    [
        ("delivered", (Meaning.FINISH, Status.DELIVERED)),
        ("email.delivered", (Meaning.FINISH, Status.DELIVERED)),
        ("email.bounced", (Meaning.FINISH, Status.BOUNCED)),
        ("failed", (Meaning.FINISH, Status.FAILED)),
        ("email.rejected", (Meaning.FINISH, Status.REJECTED)),
        ("error", (Meaning.FINISH, Status.FAILED)),
        ("email.cancelled", (Meaning.FINISH, Status.FAILED)),
        ("email.sent", (Meaning.STEP, None)),
        ("queued", (Meaning.STEP, None)),
        ("email.opened", (Meaning.EVENT, None)),
        ("clicked", (Meaning.EVENT, None)),
        ("email.complained", (Meaning.EVENT, None)),
    ],
)
def test_taifas_words_mean_one_thing_to_the_poll_and_the_webhook(word: str, meant: tuple[Any, Any]) -> None:
    assert tracking.meaning(word) == meant


def test_every_final_status_of_the_poll_finishes_through_the_webhook_too() -> None:
    for word, status in tracking.FINAL.items():
        assert tracking.meaning(f"email.{word}") == (Meaning.FINISH, status)
    assert tracking.recipient_status(Status.REJECTED) == Status.FAILED
    assert (
        tracking.reason("email.bounced", {"reason": "550 no such user"}) == "taifa: bounced: 550 no such user"
    )


def test_taifa_takes_webhooks_through_the_provider_interface() -> None:
    assert registry.get("taifa").takes_webhooks


# -- what a call records -----------------------------------------------------------------------


@pytest.fixture()
def ledger(redis_client: redis.Redis) -> Ledger:
    return Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )


def sent_email(ledger: Ledger, mid: str, email_id: str, recipient: str = "") -> None:
    """A message of ours handed to Taifa as `email_id` (as a campaign recipient if named)."""
    now = time.time()
    ledger.create(NewMessage(mid, "email", "taifa", {}, "h"), now=now)
    claim = ledger.claim(mid, "taifa", now=now, rate=0.0, burst=1.0)
    fields = {"provider_message_id": email_id}
    ledger.transition(
        mid, to=Status.SENT, expect=Status.SENDING, now=now, token=claim.attempts, fields=fields
    )
    campaign.follow_recipients(
        ledger, mid, {recipient: email_id}, provider="taifa", now=now, keep_seconds=600
    )


def call(
    ledger: Ledger,
    payload: dict[str, Any],
    *,
    delivery: str = "d-1",
    secret: str | None = SECRET,
    signature: str | None = None,
) -> InboundAnswer:
    body = json.dumps(payload).encode()
    headers = {"x-taifamail-delivery-id": delivery, "x-taifamail-event": str(payload.get("type"))}
    headers["x-taifamail-signature"] = signature if signature is not None else hex_sig(SECRET.encode(), body)
    options: dict[str, Any] = {"TAIFA_WEBHOOK_SECRET": secret} if secret else {}
    settings = Settings(**options)
    return registry.get("taifa").receive(
        Inbound(headers, {}, body), Tracker(ledger, "taifa"), settings, time.time()
    )


def kinds(ledger: Ledger, mid: str) -> list[str]:
    record = ledger.get(mid)
    assert record is not None
    return [e["type"] for e in record["events"]]


def test_delivered_finishes_the_message_once_per_delivery(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    answer = call(ledger, {"type": "email.delivered", "email_id": "e-1", "data": {}})
    assert answer.status == 200 and answer.body == {"recorded": True}
    record = ledger.get("m1")
    assert record is not None and record["status"] == Status.DELIVERED
    assert record["events"][-1]["via"] == "webhook" and "error" not in record["events"][-1]
    again = call(ledger, {"type": "email.delivered", "email_id": "e-1", "data": {}})
    assert again.body == {"duplicate": True}
    assert kinds(ledger, "m1").count(Status.DELIVERED) == 1


def test_a_report_applied_half_way_is_applied_once_when_sent_again(ledger: Ledger) -> None:
    """The change is recorded, the delivery id is not (the answer never left): Taifa sends the
    delivery again, and it lands without a second event."""
    sent_email(ledger, "m1", "e-1")
    tracker = Tracker(ledger, "taifa")
    tracking.finish_message(tracker, "m1", Status.DELIVERED, None, now=time.time(), via="webhook")
    answer = call(ledger, {"type": "email.delivered", "email_id": "e-1", "data": {}})
    assert answer.status == 200
    assert kinds(ledger, "m1").count(Status.DELIVERED) == 1
    assert call(ledger, {"type": "email.delivered", "email_id": "e-1"}).body == {"duplicate": True}


def test_a_bounce_keeps_taifas_reason_as_the_poll_does(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    data = {"event_type": "bounced", "metadata": {"reason": "550 5.1.1 no such user"}}
    assert call(ledger, {"type": "email.bounced", "email_id": "e-1", "data": data}).status == 200
    record = ledger.get("m1")
    assert record is not None and record["status"] == Status.BOUNCED
    assert record["error"] == "taifa: bounced: 550 5.1.1 no such user"
    assert record["events"][-1]["error"] == record["error"]


def test_opens_and_steps_are_events_each_kept_once(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    opened = {"type": "email.opened", "email_id": "e-1", "data": {"metadata": {"user_agent": "Mail"}}}
    assert call(ledger, opened, delivery="d-open").body == {"recorded": True}
    assert call(ledger, opened, delivery="d-open").body == {"duplicate": True}
    assert call(ledger, {"type": "email.sent", "email_id": "e-1"}, delivery="d-sent").status == 200
    assert call(ledger, {"type": "email.complained", "email_id": "e-1"}, delivery="d-new").status == 200
    record = ledger.get("m1")
    assert record is not None and record["status"] == Status.SENT, "no event type but a final one ends it"
    taifas = [e for e in record["events"] if e.get("source") == "taifa"]
    assert [e["type"] for e in taifas] == ["opened", "sent", "complained"]
    assert all(e["via"] == "webhook" for e in taifas)
    assert taifas[0]["metadata"] == {"user_agent": "Mail"}


def test_a_campaign_recipient_finishes_as_the_feed_finishes_it(ledger: Ledger) -> None:
    fingerprint = "0123456789abcdef0123456789abcdef"
    sent_email(ledger, "c1.0", "e-9", recipient=fingerprint)
    answer = call(ledger, {"type": "email.rejected", "email_id": "e-9", "data": {"reason": "suppressed"}})
    assert answer.body == {"recorded": True}
    outcome = campaigns.recipient_outcome(ledger, "c1.0", fingerprint)
    assert outcome is not None and outcome["status"] == Status.FAILED
    assert outcome["error"] == "taifa: rejected: suppressed"


def test_an_email_of_no_message_of_ours_is_ignored(ledger: Ledger) -> None:
    answer = call(ledger, {"type": "email.delivered", "email_id": "someone-elses"})
    assert answer.status == 200 and answer.body == {"ignored": True}


def test_no_valid_signature_no_secret_or_a_bad_body_records_nothing(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    delivered = {"type": "email.delivered", "email_id": "e-1"}
    before = ledger.get("m1")
    forged = call(ledger, delivered, signature=hex_sig(b"whsec_guess", json.dumps(delivered).encode()))
    assert forged.status == 401
    assert call(ledger, delivered, signature="").status == 401
    unset = call(ledger, delivered, secret=None)
    assert unset.status == 503 and "TAIFA_WEBHOOK_SECRET" in json.dumps(unset.body)
    bad = call(ledger, {"type": "email.delivered"})
    assert bad.status == 400 and isinstance(bad.body, dict) and bad.body["error"]["field"] == "email_id"
    assert ledger.get("m1") == before
    assert call(ledger, delivered).body == {"recorded": True}, "the delivery id was not spent"


def test_redis_unreachable_raises_so_the_answer_is_no_2xx() -> None:
    gone = Ledger(
        redis.Redis(port=free_port(), socket_connect_timeout=0.5),
        retention_seconds=3600,
        idempotency_ttl=86400,
        lease_seconds=30,
        park_after=60,
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        call(gone, {"type": "email.delivered", "email_id": "e-1"})


def test_a_signed_body_replayed_with_new_delivery_ids_is_kept_once(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    opened = {"type": "email.opened", "email_id": "e-1", "data": {"metadata": {"user_agent": "Mail"}}}
    assert call(ledger, opened, delivery="d-1").body == {"recorded": True}
    for replay in ("d-2", "d-3", "forged-id"):
        assert call(ledger, opened, delivery=replay).body == {"duplicate": True}
    assert kinds(ledger, "m1").count("opened") == 1


def test_a_final_body_replayed_with_a_new_delivery_id_is_a_duplicate(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    delivered = {"type": "email.delivered", "email_id": "e-1", "data": {}}
    assert call(ledger, delivered, delivery="d-1").body == {"recorded": True}
    assert call(ledger, delivered, delivery="d-2").body == {"duplicate": True}


def test_nested_metadata_loses_personal_fields_and_long_numbers(ledger: Ledger) -> None:
    sent_email(ledger, "m1", "e-1")
    metadata = {
        "user_agent": "Mail",
        "subject": "your code is 4921",
        "text": "hello",
        "hop": {"to": "someone@example.com", "ip": "10.0.0.1"},
        "phone": 254712345678,
        "count": 3,
    }
    opened = {"type": "email.opened", "email_id": "e-1", "data": {"metadata": metadata}}
    assert call(ledger, opened).body == {"recorded": True}
    record = ledger.get("m1")
    assert record is not None
    kept = record["events"][-1]["metadata"]
    assert kept == {"user_agent": "Mail", "hop": {"ip": "10.0.0.1"}, "phone": "<number>", "count": 3}
    assert "254712345678" not in json.dumps(record["events"])


def test_a_report_during_the_hand_over_is_503_and_lands_once_sent(ledger: Ledger) -> None:
    now = time.time()
    ledger.create(NewMessage("m1", "email", "taifa", {}, "h"), now=now)
    claim = ledger.claim("m1", "taifa", now=now, rate=0.0, burst=1.0)
    campaign.follow_recipients(ledger, "m1", {"": "e-1"}, provider="taifa", now=now, keep_seconds=600)
    delivered = {"type": "email.delivered", "email_id": "e-1", "data": {}}
    early = call(ledger, delivered)
    assert early.status == 503 and isinstance(early.body, dict) and early.body["error"]["field"] == "email_id"
    assert ledger.field("m1", "status") == Status.SENDING
    ledger.transition("m1", to=Status.SENT, expect=Status.SENDING, now=now, token=claim.attempts)
    assert call(ledger, delivered).body == {"recorded": True}, "the 503 spent no delivery id"
    assert ledger.field("m1", "status") == Status.DELIVERED
