"""The single sends are served by plain Starlette routes in front of their FastAPI routes:
the same key check and answers, and the OpenAPI document still shows the FastAPI ones."""

from __future__ import annotations

import redis
from starlette.routing import Route
from starlette.testclient import TestClient

from hudhud.config import Settings
from hudhud.worker.ledger import keys
from hudhud.worker.web.app import create_app
from tests.helpers import RedisServer

KEY = "hh_fast_key"


def client(redis_server: RedisServer) -> TestClient:
    settings = Settings(
        HUDHUD_REDIS_URL=redis_server.url, HUDHUD_API_KEYS=f"fast:{KEY}", TAQNYAT_SENDER="HUDHUD"
    )
    return TestClient(create_app(settings))


def test_the_fast_routes_come_first_and_the_document_keeps_the_others(redis_server: RedisServer) -> None:
    api = client(redis_server)
    first = api.app.router.routes[:3]
    assert all(isinstance(r, Route) and not r.include_in_schema for r in first)
    assert {r.path for r in first} == {"/v1/messages/sms", "/v1/messages/email", "/v1/messages/voice"}
    operations = {
        op["operationId"]
        for path in api.get("/openapi.json").json()["paths"].values()
        for op in path.values()
    }
    assert {"send_sms", "send_email", "send_voice"} <= operations


def test_a_fast_route_checks_the_key_as_the_others_do(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = client(redis_server)
    body = {"to": ["966500000000"], "body": "fast"}
    for header in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic " + KEY},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {KEY}x"},
    ):
        refused = api.post("/v1/messages/sms", json=body, headers=header)
        assert refused.status_code == 401, header
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"]["field"] == "authorization"
    assert not redis_client.keys(keys.msg_key("*"))
    accepted = api.post("/v1/messages/sms", json=body, headers={"Authorization": f"bearer {KEY}"})
    assert accepted.status_code == 202, accepted.text
    assert redis_client.exists(keys.msg_key(accepted.json()["id"]))
    bad = api.post(
        "/v1/messages/sms", json={"to": ["12"], "body": "x"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "to[0]"
