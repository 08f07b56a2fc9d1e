"""Taqnyat's delivery reports read from every shape a call may take, the pass phrase checked,
and what the endpoint answers before anything reaches a message (a real Redis shows that
nothing was written)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from pydantic import SecretStr

from hudhud.config import Settings
from hudhud.worker.ledger.status import Status
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Inbound
from hudhud.worker.providers.taqnyat import pass_phrase, report_shapes, reports
from hudhud.worker.providers.taqnyat.report_shapes import Report, outcome, read
from hudhud.worker.runtime import make_ledger

PHRASE = "dlr-phrase-7Kq"
NUMBER = "966500000123"
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def call(
    body: Any = b"", headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> Inbound:
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    return Inbound(headers=headers or {}, query=query or {}, body=body)


def reports_of(inbound: Inbound) -> list[Report]:
    return read(inbound, PHRASE).reports


def only(inbound: Inbound) -> Report:
    found = reports_of(inbound)
    assert len(found) == 1, found
    return found[0]


# --- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "provider_id", "word"),
    [
        ({"messageId": 5452899970123, "mobile": NUMBER, "status": "DELIVRD"}, "5452899970123", "DELIVRD"),
        ({"msgId": "77", "recipient": "+" + NUMBER, "dlr_status": "delivered"}, "77", "delivered"),
        ({"message_id": "78", "to": "00" + NUMBER, "state": "Delivered"}, "78", "Delivered"),
        ({"MessageID": 79, "Number": int(NUMBER), "DeliveryStatus": "UNDELIV"}, "79", "UNDELIV"),
        ({"id": "80", "phone": NUMBER, "stat": "REJECTD"}, "80", "REJECTD"),
        ({"requestId": "81", "msisdn": NUMBER, "status": 1}, "81", "1"),
        ({"messageId": 5.452899970123e12, "mobile": NUMBER, "status": "EXPIRED"}, "5452899970123", "EXPIRED"),
    ],
)
def test_a_json_object_gives_its_id_number_and_word(
    fields: dict[str, Any], provider_id: str, word: str
) -> None:
    report = only(call(fields, JSON))
    assert (report.provider_id, report.number, report.word) == (provider_id, NUMBER, word)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("DELIVRD", Status.DELIVERED),
        ("delivered", Status.DELIVERED),
        ("Delivered", Status.DELIVERED),
        ("success", Status.DELIVERED),
        ("1", Status.DELIVERED),
        ("UNDELIV", Status.FAILED),
        ("failed", Status.FAILED),
        ("REJECTD", Status.FAILED),
        ("EXPIRED", Status.FAILED),
        ("undelivered", Status.FAILED),
        ("Delivery failed", Status.FAILED),
        ("0", Status.FAILED),
        ("sent", None),
        ("ENROUTE", None),
        ("UNKNOWN", None),
        ("submitted", None),
        (None, None),
    ],
)
def test_status_words_map_to_delivered_failed_or_nothing_final(
    word: str | None, status: Status | None
) -> None:
    assert outcome(word) == status


def test_a_list_of_reports_gives_each() -> None:
    body = [
        {"messageId": "1", "mobile": "966500000001", "status": "DELIVRD"},
        {"messageId": "2", "mobile": "966500000002", "status": "UNDELIV", "reason": "Absent subscriber"},
    ]
    found = reports_of(call(body, JSON))
    assert [(r.provider_id, r.number, r.status) for r in found] == [
        ("1", "966500000001", Status.DELIVERED),
        ("2", "966500000002", Status.FAILED),
    ]
    assert found[1].description == "Absent subscriber"


def test_recipients_under_one_message_id_inherit_it() -> None:
    body = {
        "messageId": 9,
        "recipients": [
            {"mobile": "966500000001", "status": "delivered"},
            {"mobile": "966500000002", "status": "failed"},
        ],
    }
    found = reports_of(call(body, JSON))
    assert [(r.provider_id, r.number, r.status) for r in found] == [
        ("9", "966500000001", Status.DELIVERED),
        ("9", "966500000002", Status.FAILED),
    ]


def test_a_list_of_numbers_with_one_status_is_one_report_per_number() -> None:
    body = {"messageId": 9, "status": "DELIVRD", "numbers": ["966500000001", "966500000002"]}
    found = reports_of(call(body, JSON))
    assert [r.number for r in found] == ["966500000001", "966500000002"]
    assert {r.provider_id for r in found} == {"9"}


def test_reports_nested_under_data_are_found() -> None:
    body = {"data": {"reports": [{"requestId": "a1", "phone": NUMBER, "DLR_STATUS": "REJECTD"}]}}
    report = only(call(body, JSON))
    assert (report.provider_id, report.number, report.status) == ("a1", NUMBER, Status.FAILED)


def test_form_fields_are_read_in_any_spelling() -> None:
    body = urlencode(
        {"MessageID": "7", "Mobile": NUMBER, "Delivery-Status": "EXPIRED", "pass_phrase": PHRASE}
    )
    inbound = call(body, FORM)
    report = only(inbound)
    assert (report.provider_id, report.number, report.status) == ("7", NUMBER, Status.FAILED)
    assert pass_phrase.offered(inbound) == [PHRASE]


def test_form_fields_without_a_content_type_are_read_too() -> None:
    report = only(call(f"msgId=8&to={NUMBER}&status=DELIVRD"))
    assert (report.provider_id, report.status) == ("8", Status.DELIVERED)


def test_multipart_form_fields_are_read() -> None:
    boundary = "xYzBoundary"
    parts = [("messageId", "10"), ("mobile", NUMBER), ("status", "DELIVRD")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    body += f"--{boundary}--\r\n"
    inbound = call(body, {"content-type": f"multipart/form-data; boundary={boundary}"})
    report = only(inbound)
    assert (report.provider_id, report.number, report.status) == ("10", NUMBER, Status.DELIVERED)


def test_query_parameters_alone_make_a_report() -> None:
    inbound = call(query={"messageId": "5", "number": NUMBER, "dlr_status": "0", "passphrase": PHRASE})
    report = only(inbound)
    assert (report.provider_id, report.number, report.status) == ("5", NUMBER, Status.FAILED)
    assert "passphrase" not in report.raw


def test_an_smpp_receipt_text_is_read_without_its_text() -> None:
    receipt = (
        "id:123 sub:001 dlvrd:001 submit date:2612020553 done date:2612020554 stat:DELIVRD err:000 text:Hi"
    )
    report = only(call(receipt, {"content-type": "text/plain"}))
    assert (report.provider_id, report.status) == ("123", Status.DELIVERED)
    assert report.reported_at == "2026-12-02T05:54:00.000Z"
    assert "Hi" not in json.dumps(report.raw)


def test_a_receipt_inside_a_field_is_read() -> None:
    body = {"mobile": NUMBER, "receipt": "id:55 sub:001 dlvrd:001 stat:UNDELIV err:001"}
    report = only(call(body, JSON))
    assert (report.provider_id, report.number, report.status) == ("55", NUMBER, Status.FAILED)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-02T05:54:00Z", "2026-12-02T05:54:00.000Z"),
        ("2026-12-02 05:54:00", "2026-12-02T05:54:00.000Z"),
        (1796190840, "2026-12-02T05:54:00.000Z"),
        ("1796190840000", "2026-12-02T05:54:00.000Z"),
    ],
)
def test_a_time_is_read_in_the_ledgers_format(value: Any, expected: str) -> None:
    report = only(call({"messageId": "1", "status": "DELIVRD", "deliveredAt": value}, JSON))
    assert report.reported_at == expected


def test_what_is_kept_has_no_number_no_text_no_pass_phrase() -> None:
    body = {
        "messageId": 5452899970123,
        "mobile": NUMBER,
        "to": int(NUMBER),
        "status": "UNDELIV",
        "reason": f"subscriber {NUMBER} absent, see ops@example.com",
        "text": "your code is 4921",
        "passPhrase": PHRASE,
        "note": f"phrase {PHRASE}",
    }
    raw = only(call(body, JSON)).raw
    kept = json.dumps(raw)
    assert NUMBER not in kept and PHRASE not in kept and "4921" not in kept and "ops@example.com" not in kept
    assert raw["messageId"] == 5452899970123  # the provider's id is kept as it came
    assert raw["status"] == "UNDELIV"


def test_a_body_that_reads_as_nothing_is_unreadable() -> None:
    assert read(call("\x00\x01 not a report", {"content-type": "text/plain"}), PHRASE).readable is False
    assert read(call("{not json", JSON), PHRASE).readable is False


# --- the pass phrase --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inbound",
    [
        call(query={"passphrase": PHRASE}),
        call(query={"pass": PHRASE}),
        call({"secret": PHRASE}, JSON),
        call({"token": PHRASE}, JSON),
        call([{"passPhrase": PHRASE, "messageId": "1"}], JSON),
        call(headers={"x-taqnyat-passphrase": PHRASE}),
        call(headers={"passphrase": PHRASE}),
        call(headers={"authorization": f"Bearer {PHRASE}"}),
    ],
)
def test_the_pass_phrase_is_found_wherever_it_comes(inbound: Inbound) -> None:
    assert pass_phrase.matches(pass_phrase.offered(inbound), PHRASE)


def test_a_wrong_pass_phrase_does_not_match() -> None:
    assert not pass_phrase.matches(pass_phrase.offered(call(query={"passphrase": PHRASE + "x"})), PHRASE)
    assert not pass_phrase.matches([], PHRASE)


# --- the answers, on a real Redis -------------------------------------------------------------


@pytest.fixture()
def tracker(redis_client: redis.Redis) -> Iterator[Tracker]:
    yield Tracker(make_ledger(Settings(), redis_client), "taqnyat")


def receive(inbound: Inbound, tracker: Tracker, phrase: str | None = PHRASE) -> tuple[int, Any]:
    settings = Settings(taqnyat_dlr_passphrase=SecretStr(phrase) if phrase else None)
    answer = registry.get("taqnyat").receive(inbound, tracker, settings, 1_800_000_000.0)
    return answer.status, answer.body


def test_taqnyat_takes_webhooks() -> None:
    assert registry.get("taqnyat").takes_webhooks


def test_without_the_setting_the_call_is_refused_naming_it(
    tracker: Tracker, redis_client: redis.Redis
) -> None:
    status, body = receive(call(query={"passphrase": PHRASE}), tracker, phrase=None)
    assert status == 503
    assert body["error"]["field"] == "TAQNYAT_DLR_PASSPHRASE"


@pytest.mark.parametrize("query", [{}, {"passphrase": "wrong"}])
def test_a_missing_or_wrong_pass_phrase_is_401_and_nothing_is_written(
    tracker: Tracker, redis_client: redis.Redis, query: dict[str, str]
) -> None:
    status, body = receive(call({"messageId": "1", "status": "DELIVRD"}, JSON, query), tracker)
    assert status == 401
    assert body["error"]["field"] == "passphrase"
    assert redis_client.dbsize() == 0


def test_the_portals_check_gets_the_pass_phrase_back(tracker: Tracker) -> None:
    assert receive(call(query={"passphrase": PHRASE}), tracker) == (200, PHRASE)
    assert receive(call({"pass_phrase": PHRASE}, JSON), tracker) == (200, PHRASE)


def test_a_report_of_no_message_of_ours_is_ignored_and_only_counted(
    tracker: Tracker, redis_client: redis.Redis
) -> None:
    before = sum(reports.IGNORED.values())
    inbound = call(
        {"messageId": "404404", "mobile": NUMBER, "status": "DELIVRD"}, JSON, {"passphrase": PHRASE}
    )
    assert receive(inbound, tracker) == (200, {"ignored": True})
    assert sum(reports.IGNORED.values()) == before + 1
    assert redis_client.dbsize() == 0


def test_an_unreadable_body_with_the_pass_phrase_is_ignored(
    tracker: Tracker, redis_client: redis.Redis
) -> None:
    assert receive(call("{broken", JSON, {"passphrase": PHRASE}), tracker) == (200, {"ignored": True})
    assert redis_client.dbsize() == 0


def test_a_redis_error_is_raised_so_taqnyat_sends_again() -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)
    tracker = Tracker(make_ledger(Settings(), dead), "taqnyat")
    inbound = call({"messageId": "1", "status": "DELIVRD"}, JSON, {"passphrase": PHRASE})
    with pytest.raises(redis.RedisError):
        receive(inbound, tracker)


@pytest.mark.parametrize("value", [10**30, "9" * 40, -5, "tomorrow-ish", {"nested": 1}])
def test_a_time_that_reads_as_none_is_left_out(value: Any) -> None:
    report = only(call({"messageId": "1", "status": "DELIVRD", "deliveredAt": value}, JSON))
    assert report.reported_at is None


# --- the pass phrase before the body ------------------------------------------------------------


def deep(levels: int, inner: str = '{"messageId": "1", "status": "DELIVRD"}') -> str:
    return '{"x": ' * levels + inner + "}" * levels


def multipart(parts: list[tuple[str, str]], boundary: str = "xYzBoundary") -> Inbound:
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    return call(body + f"--{boundary}--\r\n", {"content-type": f"multipart/form-data; boundary={boundary}"})


MANY = [{"messageId": str(i), "mobile": NUMBER, "status": "DELIVRD"} for i in range(20_000)]


@pytest.mark.parametrize(
    "inbound",
    [
        call(MANY, JSON),
        call({"data": MANY}, JSON),
        call("&".join(f"messageId={i}&mobile={NUMBER}&status=DELIVRD" for i in range(20_000)), FORM),
        multipart([(f"messageId{i}", str(i)) for i in range(20_000)]),
    ],
    ids=["json-list", "json-object", "form", "multipart"],
)
def test_a_body_without_the_pass_phrase_is_refused_unread(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch, inbound: Inbound
) -> None:
    read_bodies: list[Inbound] = []
    monkeypatch.setattr(reports, "read", lambda inbound, secret: read_bodies.append(inbound))
    status, _ = receive(inbound, tracker)
    assert status == 401
    assert read_bodies == [], "the reports were parsed before the pass phrase was checked"


def test_the_pass_phrase_is_found_among_multipart_fields() -> None:
    inbound = multipart([("messageId", "10"), ("passphrase", PHRASE)])
    assert pass_phrase.offered(inbound) == [PHRASE]
    assert only(inbound).provider_id == "10"


def test_a_deeply_nested_body_is_401_without_the_phrase_and_400_with_it(
    tracker: Tracker, redis_client: redis.Redis
) -> None:
    assert receive(call(deep(900), JSON), tracker)[0] == 401
    status, body = receive(call(deep(900), JSON, {"passphrase": PHRASE}), tracker)
    assert status == 400 and body["error"]["field"] == "body"
    assert redis_client.dbsize() == 0


def test_the_pass_phrase_is_found_among_a_json_objects_top_level_fields_only() -> None:
    nested = {"data": {"passphrase": PHRASE}, "messageId": "1"}
    assert pass_phrase.offered(call(nested, JSON)) == []
    text = '{"data": [{"x": "}"}, {"passphrase": "no"}], "note": "{\\"pass\\": 1}", "passPhrase": '
    text += json.dumps(PHRASE) + "}"
    assert pass_phrase.offered(call(text, JSON)) == [PHRASE]


def test_at_most_one_candidate_is_taken_of_each_place(tracker: Tracker) -> None:
    body = {f"passphrase{i}": "wrong" for i in range(49)} | {"passphrase49": PHRASE}
    headers = {**JSON, "x-passphrase": "wrong", "passphrase": "wrong too", "authorization": "Bearer no"}
    offered = pass_phrase.offered(call(body, headers, {"pass": "no", "secret": "none"}))
    assert offered == ["no", "wrong", "no", "wrong"]
    assert receive(call(body, JSON), tracker)[0] == 401


def test_pass_phrases_are_compared_as_digests_of_one_length(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[int, int]] = []
    real = pass_phrase.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(pass_phrase.hmac, "compare_digest", spy)
    assert pass_phrase.matches(["x", PHRASE * 3, PHRASE], PHRASE)
    assert compared == [(32, 32)] * 3


def test_what_is_kept_of_a_report_is_bounded_in_depth_and_size() -> None:
    body = {"messageId": "1", "status": "DELIVRD", "a": {"b": {"c": {"d": {"e": NUMBER}}}}}
    body |= {f"list{i}": list(range(100)) for i in range(20)}
    raw = only(call(body, JSON)).raw
    assert raw["a"]["b"]["c"] == {"d": report_shapes.NESTED_MASK}
    kept = json.dumps(raw)
    assert kept.count(",") < report_shapes.MAX_KEPT + 10


def test_a_body_nested_up_to_the_bound_is_read(tracker: Tracker) -> None:
    limit = report_shapes.MAX_BODY_DEPTH
    assert receive(call(deep(limit - 1), JSON, {"passphrase": PHRASE}), tracker)[0] == 200
    assert receive(call(deep(limit), JSON, {"passphrase": PHRASE}), tracker)[0] == 400
