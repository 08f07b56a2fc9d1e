"""Every send takes `reference` (the producer's own id) and `callback_url` (where its status
callbacks go): checked before anything is recorded, kept on the record, the reference shown
by `status` and carried on the change stream."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from hudhud.config import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import CHANGES, keys
from hudhud.worker.producer import messages, targets
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict
from hudhud.worker.runtime import make_ledger
from tests.helpers import RedisServer

SMS = {"to": ["966500000000"], "body": "hello", "sender": "HUDHUD"}


def settings(**env: str) -> Settings:
    return Settings(TAQNYAT_SENDER="HUDHUD", **env)


def test_a_reference_is_one_line_of_text() -> None:
    request = messages.build("sms", {**SMS, "reference": "order-81"}, settings())
    assert request.reference == "order-81"
    for bad in ("two\nlines", "x" * 201, 12):
        with pytest.raises(InvalidInput) as refused:
            messages.build("sms", {**SMS, "reference": bad}, settings())
        assert refused.value.field == "reference"


def test_a_callback_url_needs_a_listed_host() -> None:
    with pytest.raises(InvalidInput, match="HUDHUD_CALLBACK_HOSTS lists no host") as refused:
        messages.build("sms", {**SMS, "callback_url": "https://hooks.example.com/x"}, settings())
    assert refused.value.field == "callback_url"
    listed = settings(HUDHUD_CALLBACK_HOSTS="hooks.example.com, *.shop.example")
    ok = messages.build("sms", {**SMS, "callback_url": "https://hooks.example.com/x"}, listed)
    assert ok.callback_url == "https://hooks.example.com/x"
    assert messages.build("sms", {**SMS, "callback_url": "https://a.shop.example/cb"}, listed).callback_url
    for bad in (
        "https://evil.example.com/x",
        "https://shop.example/x",  # the wildcard covers names below the domain only
        "https://user:pw@hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "not a url",
    ):
        with pytest.raises(InvalidInput) as refused:
            messages.build("sms", {**SMS, "callback_url": bad}, listed)
        assert refused.value.field == "callback_url", bad


def test_only_a_host_listed_by_name_may_be_inside_the_network() -> None:
    listed = settings(HUDHUD_CALLBACK_HOSTS="127.0.0.1,*.0.0.2")
    assert targets.reachable_safely("http://127.0.0.1:9/cb", listed, listed_only=True) is None
    # matched by a wildcard only, so it must resolve to public addresses
    why = targets.reachable_safely("http://127.0.0.2:9/cb", listed, listed_only=True)
    assert why is not None and "loopback" in why
    assert targets.reachable_safely("http://10.1.2.3/cb", listed, listed_only=True) is not None
    operator = settings()
    assert targets.reachable_safely("http://127.0.0.1:9/cb", operator, listed_only=False) is None
    for address, inside in (
        ("127.0.0.1", True),
        ("10.0.0.8", True),
        ("169.254.1.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("::ffff:192.168.1.1", True),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
    ):
        assert targets.inside(address) is inside, address


def test_the_record_keeps_them_and_the_stream_carries_the_reference(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    cfg = settings(HUDHUD_REDIS_URL=redis_server.url, HUDHUD_CALLBACK_HOSTS="hooks.example.com")
    hudhud = Hudhud(cfg)
    fields: dict[str, Any] = {**SMS, "reference": "order-82", "callback_url": "https://hooks.example.com/h"}
    receipt = hudhud.send("sms", {**fields, "key": "ref-1"})
    record = redis_client.hgetall(keys.msg_key(receipt.id))
    assert record[b"reference"] == b"order-82"
    assert record[b"callback_url"] == b"https://hooks.example.com/h"
    assert hudhud.status(receipt.id)["reference"] == "order-82"
    entry = redis_client.xrange(CHANGES)[-1][1]
    assert entry[b"id"] == receipt.id.encode() and entry[b"reference"] == b"order-82"
    # the same key with another reference is another request
    with pytest.raises(IdempotencyConflict):
        hudhud.send("sms", {**fields, "reference": "order-83", "key": "ref-1"})
    assert hudhud.send("sms", {**fields, "key": "ref-1"}).duplicate
    many = hudhud.send_many("sms", [{**SMS, "reference": f"bulk-{n}"} for n in range(3)])
    ledger = make_ledger(cfg, redis_client)
    assert [ledger.field(r.id, "reference") for r in many] == ["bulk-0", "bulk-1", "bulk-2"]
