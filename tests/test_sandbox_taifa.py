"""The sandbox answers as Taifa Mail does (seed 004 and PROVIDERS.md) over real HTTP."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.helpers import SANDBOX_TAIFA_KEY, Sandbox

AUTH = {"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"}
EMAIL: dict[str, Any] = {
    "from_": {"email": "hello@govconnect.ke", "name": "Hudhud"},
    "to": [{"email": "amina@example.com", "name": "Amina"}],
    "subject": "Welcome",
    "html": "<p>Hi</p>",
    "text": "Hi",
    "tags": ["welcome"],
}
STEP = 0.1


def url(sandbox: Sandbox, path: str) -> str:
    return f"{sandbox.taifa_url}/emails{path}"


def send(sandbox: Sandbox, body: Any = None, **change: Any) -> requests.Response:
    payload = {**EMAIL, **change} if body is None else body
    return requests.post(url(sandbox, "/"), json=payload, headers=AUTH, timeout=30)


def send_to(sandbox: Sandbox, address: str, **change: Any) -> str:
    reply = send(sandbox, to=[{"email": address}], **change)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def get(sandbox: Sandbox, path: str, **params: Any) -> requests.Response:
    return requests.get(url(sandbox, path), params=params, headers=AUTH, timeout=30)


def status_of(sandbox: Sandbox, email_id: str) -> str:
    return str(get(sandbox, f"/{email_id}").json()["status"])


def in_future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def detail(reply: requests.Response) -> dict[str, Any]:
    return dict(reply.json()["detail"])


# send


def test_send_is_202_queued(fresh_sandbox: Sandbox) -> None:
    reply = send(fresh_sandbox)
    assert reply.status_code == 202
    body = reply.json()
    assert set(body) == {"id", "status", "message_id", "rejection_reason"}
    assert uuid.UUID(body["id"]).version == 4
    assert body["status"] == "queued" and body["rejection_reason"] is None
    assert body["message_id"].endswith("@govconnect.ke>")
    [entry] = fresh_sandbox.sends()
    assert entry["provider"] == "taifa" and entry["provider_message_id"] == body["id"]
    assert entry["recipients"] == ["amina@example.com"] and entry["tags"] == ["welcome"]


def test_send_without_trailing_slash_redirects(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(
        fresh_sandbox.taifa_url + "/emails", json=EMAIL, headers=AUTH, allow_redirects=False, timeout=10
    )
    assert reply.status_code == 307
    assert reply.headers["Location"].endswith("/v1/emails/")
    followed = requests.post(fresh_sandbox.taifa_url + "/emails", json=EMAIL, headers=AUTH, timeout=10)
    assert followed.status_code == 202


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer tfm_k_wrong"}])
def test_bad_key_is_401(fresh_sandbox: Sandbox, headers: dict[str, str]) -> None:
    reply = requests.post(url(fresh_sandbox, "/"), json=EMAIL, headers=headers, timeout=10)
    assert reply.status_code == 401
    assert reply.json() == {"detail": {"code": "unauthorized", "message": "Missing or invalid API key"}}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"from_": None}, ["body", "from_"]),
        ({"to": None}, ["body", "to"]),
        ({"to": []}, ["body", "to"]),
        ({"subject": None}, ["body", "subject"]),
        ({"to": [{"email": "not-an-address"}]}, ["body", "to", 0, "email"]),
        ({"from_": {"email": "news@unverified.example"}}, ["body", "from_", "email"]),
        ({"html": None, "text": None}, ["body"]),
        ({"cc": [{"email": "x@"}]}, ["body", "cc", 0, "email"]),
    ],
)
def test_body_errors_are_422(fresh_sandbox: Sandbox, change: dict[str, Any], loc: list[Any]) -> None:
    body = {key: value for key, value in {**EMAIL, **change}.items() if value is not None}
    reply = send(fresh_sandbox, body)
    assert reply.status_code == 422
    errors = reply.json()["detail"]
    assert isinstance(errors, list)
    assert loc in [error["loc"] for error in errors]
    assert all({"loc", "msg", "type"} <= set(error) for error in errors)
    assert fresh_sandbox.sends() == []


def test_unknown_fields_are_ignored(fresh_sandbox: Sandbox) -> None:
    assert send(fresh_sandbox, surprise=True).status_code == 202


def test_invalid_json_is_422(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(url(fresh_sandbox, "/"), data="{nope", headers=AUTH, timeout=10)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "attachment",
    [
        {"filename": "a.txt", "content_base64": "data:text/plain;base64,aGk="},
        {"filename": "a.txt", "content_base64": "not base64!"},
        {"filename": "../a.txt", "content_base64": "aGk="},
        {"filename": "a\\b.txt", "content_base64": "aGk="},
    ],
)
def test_bad_attachment_is_400(fresh_sandbox: Sandbox, attachment: dict[str, str]) -> None:
    reply = send(fresh_sandbox, attachments=[attachment])
    assert reply.status_code == 400
    assert detail(reply)["code"] == "invalid_attachment"


def test_good_attachment_is_accepted(fresh_sandbox: Sandbox) -> None:
    attachment = {
        "filename": "a.pdf",
        "content_base64": base64.b64encode(b"%PDF").decode(),
        "content_type": "application/pdf",
    }
    assert send(fresh_sandbox, attachments=[attachment]).status_code == 202


def test_attachment_over_24_mib_is_413(fresh_sandbox: Sandbox) -> None:
    big = base64.b64encode(bytes(24 * 1024 * 1024 + 1)).decode()
    reply = send(fresh_sandbox, attachments=[{"filename": "big.bin", "content_base64": big}])
    assert reply.status_code == 413
    assert detail(reply)["code"] == "payload_too_large"


def test_attachments_together_over_24_mib_is_413(fresh_sandbox: Sandbox) -> None:
    half = base64.b64encode(bytes(12 * 1024 * 1024 + 1)).decode()
    files = [{"filename": f"{n}.bin", "content_base64": half} for n in range(2)]
    reply = send(fresh_sandbox, attachments=files)
    assert reply.status_code == 413


@pytest.mark.parametrize(
    "send_at",
    ["tomorrow", in_future(10), in_future(31 * 24 * 3600)],
    ids=["words", "ten-seconds-ahead", "31-days-ahead"],
)
def test_bad_send_at_is_400(fresh_sandbox: Sandbox, send_at: str) -> None:
    reply = send(fresh_sandbox, send_at=send_at)
    assert reply.status_code == 400
    assert detail(reply)["code"] == "invalid_send_at"


def test_send_limit_is_403(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(send_limit=1)
    assert send(fresh_sandbox).status_code == 202
    reply = send(fresh_sandbox)
    assert reply.status_code == 403
    assert detail(reply)["code"] == "send_limit_reached"


def test_rate_limit_is_429_with_retry_after(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(rate_429=1.0, retry_after=7)
    reply = send(fresh_sandbox)
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "7"
    assert reply.json() == {"detail": {"code": "rate_limited", "message": "Too many requests"}}
    assert fresh_sandbox.sends() == []


def test_unknown_email_is_404(fresh_sandbox: Sandbox) -> None:
    reply = get(fresh_sandbox, f"/{uuid.uuid4()}")
    assert reply.status_code == 404
    assert reply.json() == {"detail": {"code": "not_found", "message": "Email not found"}}


# life of an email


def test_normal_email_is_delivered(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=STEP)
    email_id = send_to(fresh_sandbox, "amina@example.com")
    item = get(fresh_sandbox, f"/{email_id}").json()
    assert item["status"] == "queued"
    assert {
        "id",
        "from_address",
        "to_addresses",
        "subject",
        "status",
        "tags",
        "scheduled_at",
        "created_at",
        "sent_at",
        "delivered_at",
        "retry_of_id",
        "html",
        "text",
        "headers",
        "events",
    } <= set(item)
    assert item["from_address"] == "hello@govconnect.ke"
    assert item["to_addresses"] == ["amina@example.com"]
    time.sleep(2.5 * STEP)
    item = get(fresh_sandbox, f"/{email_id}").json()
    assert item["status"] == "delivered"
    assert item["sent_at"] and item["delivered_at"]
    assert [event["event_type"] for event in item["events"]] == ["queued", "sent", "delivered"]


def test_bounce_over_time(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=STEP)
    email_id = send_to(fresh_sandbox, "Bounce.me@example.com")
    assert status_of(fresh_sandbox, email_id) == "queued"
    time.sleep(1.3 * STEP)
    assert status_of(fresh_sandbox, email_id) == "sent"
    time.sleep(STEP)
    assert status_of(fresh_sandbox, email_id) == "bounced"
    events = get(fresh_sandbox, f"/{email_id}/events").json()
    assert isinstance(events, list)
    assert [event["event_type"] for event in events] == ["queued", "sent", "bounced"]
    assert all(set(event) == {"id", "event_type", "metadata", "created_at"} for event in events)


@pytest.mark.parametrize(
    ("recipient", "steps", "status", "types"),
    [
        ("fail@example.com", 2.5, "failed", ["queued", "failed"]),
        ("open@example.com", 3.5, "delivered", ["queued", "sent", "delivered", "opened", "clicked"]),
    ],
    ids=["fail-recipient-fails", "open-recipient-opens-and-clicks"],
)
def test_special_recipients_follow_their_story(
    fresh_sandbox: Sandbox, recipient: str, steps: float, status: str, types: list[str]
) -> None:
    fresh_sandbox.knobs(progress_seconds=STEP)
    email_id = send_to(fresh_sandbox, recipient)
    time.sleep(steps * STEP)
    assert status_of(fresh_sandbox, email_id) == status
    assert [event["event_type"] for event in get(fresh_sandbox, f"/{email_id}/events").json()] == types


def test_reject_recipient_is_rejected_at_once(fresh_sandbox: Sandbox) -> None:
    reply = send(fresh_sandbox, to=[{"email": "amina@example.com"}, {"email": "REJECT@x.org"}])
    assert reply.status_code == 202
    body = reply.json()
    assert body["status"] == "rejected"
    assert body["rejection_reason"] == "recipient is on the suppression list"
    assert fresh_sandbox.sends() == []


def test_retry_is_409_unless_failed(fresh_sandbox: Sandbox) -> None:
    email_id = send_to(fresh_sandbox, "amina@example.com")
    reply = requests.post(url(fresh_sandbox, f"/{email_id}/retry"), headers=AUTH, timeout=10)
    assert reply.status_code == 409
    assert detail(reply)["code"] == "not_retryable"


def test_retry_after_bounce_links_the_new_email(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=STEP)
    email_id = send_to(fresh_sandbox, "bounce@example.com")
    time.sleep(2.5 * STEP)
    reply = requests.post(url(fresh_sandbox, f"/{email_id}/retry"), headers=AUTH, timeout=10)
    assert reply.status_code == 202
    body = reply.json()
    assert set(body) == {"id", "status", "message_id", "rejection_reason"}
    assert body["id"] != email_id and body["status"] == "queued"
    assert get(fresh_sandbox, f"/{body['id']}").json()["retry_of_id"] == email_id
    assert status_of(fresh_sandbox, email_id) == "bounced"
    assert len(fresh_sandbox.sends()) == 2


def test_retry_unknown_is_404(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(url(fresh_sandbox, f"/{uuid.uuid4()}/retry"), headers=AUTH, timeout=10)
    assert reply.status_code == 404


# scheduling


def test_scheduled_email_list_cancel_and_send_now(fresh_sandbox: Sandbox) -> None:
    later = send(fresh_sandbox, send_at=in_future(3600))
    assert later.status_code == 202 and later.json()["status"] == "scheduled"
    first, second = later.json()["id"], send(fresh_sandbox, send_at=in_future(7200)).json()["id"]
    page = get(fresh_sandbox, "/scheduled").json()
    assert [item["id"] for item in page["items"]] == [first, second] and page["total"] == 2
    assert page["items"][0]["scheduled_at"]
    cancel = requests.delete(url(fresh_sandbox, f"/scheduled/{first}"), headers=AUTH, timeout=10)
    assert cancel.status_code == 200 and cancel.json() == {"id": first, "status": "cancelled"}
    assert status_of(fresh_sandbox, first) == "cancelled"
    again = requests.delete(url(fresh_sandbox, f"/scheduled/{first}"), headers=AUTH, timeout=10)
    assert again.status_code == 409
    now = requests.post(url(fresh_sandbox, f"/scheduled/{second}/send-now"), headers=AUTH, timeout=10)
    assert now.status_code == 200 and now.json() == {"id": second, "status": "queued"}
    assert get(fresh_sandbox, "/scheduled").json()["total"] == 0
    missing = requests.delete(url(fresh_sandbox, f"/scheduled/{uuid.uuid4()}"), headers=AUTH, timeout=10)
    assert missing.status_code == 404


# listing and search


def test_list_is_newest_first_and_paginated(fresh_sandbox: Sandbox) -> None:
    ids = [send_to(fresh_sandbox, f"user{n}@example.com") for n in range(5)]
    page = get(fresh_sandbox, "/", page=1, limit=2).json()
    assert page["total"] == 5 and page["page"] == 1 and page["limit"] == 2
    assert [item["id"] for item in page["items"]] == [ids[2], ids[1]]
    first = get(fresh_sandbox, "/").json()
    assert first["limit"] == 20 and first["page"] == 0
    assert [item["id"] for item in first["items"]] == ids[::-1]
    assert get(fresh_sandbox, "/", status="queued").json()["total"] == 5
    assert get(fresh_sandbox, "/", status="delivered").json()["total"] == 0


def seed_for_search(sandbox: Sandbox) -> dict[str, str]:
    sandbox.knobs(progress_seconds=STEP)
    ids = {
        "gmail": send_to(sandbox, "ali@gmail.com", subject="Invoice 42", tags=["billing"]),
        "bounce": send_to(sandbox, "bounce@yahoo.com", subject="Hello there"),
        "other": send_to(
            sandbox,
            "sara@example.com",
            subject="Newsletter",
            from_={"email": "news@mail.hudhud.example"},
            tags=["news", "weekly"],
        ),
    }
    time.sleep(2.5 * STEP)
    return ids


@pytest.mark.parametrize(
    ("query", "params", "expected"),
    [
        ("to:gmail.com", {}, ["gmail"]),
        ("from:news@", {}, ["other"]),
        ("status:bounced", {}, ["bounce"]),
        ("domain:hudhud.example", {}, ["other"]),
        ("tag:billing", {}, ["gmail"]),
        ("tag:bill", {}, []),
        ("invoice", {}, ["gmail"]),
        ("hello to:yahoo", {}, ["bounce"]),
        ("", {"status": "delivered"}, ["other", "gmail"]),
        ("", {"tag": "weekly"}, ["other"]),
    ],
)
def test_search_tokens(
    fresh_sandbox: Sandbox, query: str, params: dict[str, str], expected: list[str]
) -> None:
    ids = seed_for_search(fresh_sandbox)
    reply = get(fresh_sandbox, "/search", q=query, **params)
    assert reply.status_code == 200
    body = reply.json()
    assert [item["id"] for item in body["items"]] == [ids[name] for name in expected]
    assert body["total"] == len(expected)


def test_search_pagination_and_limits(fresh_sandbox: Sandbox) -> None:
    for n in range(3):
        send_to(fresh_sandbox, f"p{n}@example.com")
    body = get(fresh_sandbox, "/search", q="example.com", page=1, limit=2).json()
    assert body["total"] == 3 and len(body["items"]) == 1
    assert get(fresh_sandbox, "/search", limit=101).status_code == 422
    assert get(fresh_sandbox, "/search", page=-1).status_code == 422


# validate


def test_validate_valid(fresh_sandbox: Sandbox) -> None:
    reply = requests.post(url(fresh_sandbox, "/validate"), json=EMAIL, headers=AUTH, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"valid": True, "can_send": True, "issues": []}
    assert fresh_sandbox.sends() == []


def test_validate_invalid(fresh_sandbox: Sandbox) -> None:
    body = {**EMAIL, "to": [{"email": "broken"}], "from_": {"email": "a@unverified.example"}}
    reply = requests.post(url(fresh_sandbox, "/validate"), json=body, headers=AUTH, timeout=10)
    assert reply.status_code == 200
    result = reply.json()
    assert result["valid"] is False and result["can_send"] is False
    assert {"to.0.email", "from_.email"} <= {issue["field"] for issue in result["issues"]}
    unauthorised = requests.post(url(fresh_sandbox, "/validate"), json=body, timeout=10)
    assert unauthorised.status_code == 401


# batch


def test_batch_sends_valid_items(fresh_sandbox: Sandbox) -> None:
    items = [EMAIL, {**EMAIL, "to": [{"email": "nope"}]}, {**EMAIL, "subject": "Second"}]
    reply = requests.post(url(fresh_sandbox, "/batch"), json=items, headers=AUTH, timeout=10)
    assert reply.status_code == 202
    body = reply.json()
    assert (body["total"], body["sent"], body["failed"]) == (3, 2, 1)
    statuses = [row["status"] for row in body["results"]]
    assert statuses == ["queued", "failed", "queued"]
    assert body["results"][1]["id"] is None and body["results"][1]["rejection_reason"]
    assert len(fresh_sandbox.sends()) == 2


@pytest.mark.parametrize(("plan", "limit"), [("starter", 25), ("pro", 50), ("business", 100)])
def test_batch_plan_limits(fresh_sandbox: Sandbox, plan: str, limit: int) -> None:
    fresh_sandbox.knobs(plan=plan)
    over = requests.post(url(fresh_sandbox, "/batch"), json=[EMAIL] * (limit + 1), headers=AUTH, timeout=30)
    assert over.status_code == 400
    assert detail(over)["code"] == "batch_too_large"
    fits = requests.post(url(fresh_sandbox, "/batch"), json=[EMAIL] * limit, headers=AUTH, timeout=30)
    assert fits.status_code == 202 and fits.json()["sent"] == limit


def test_batch_on_free_plan_is_403(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(plan="free")
    reply = requests.post(url(fresh_sandbox, "/batch"), json=[EMAIL], headers=AUTH, timeout=10)
    assert reply.status_code == 403
    assert detail(reply)["code"] == "plan_feature"


# updates feed


def test_updates_since(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=STEP)
    email_id = send_to(fresh_sandbox, "amina@example.com")
    first = get(fresh_sandbox, "/updates", since="2000-01-01T00:00:00Z").json()
    assert [(row["id"], row["status"]) for row in first["items"]] == [(email_id, "queued")]
    time.sleep(2.5 * STEP)
    later = get(fresh_sandbox, "/updates", since=first["next_since"]).json()
    assert [(row["id"], row["status"]) for row in later["items"]] == [(email_id, "delivered")]
    quiet = get(fresh_sandbox, "/updates", since=later["next_since"]).json()
    assert quiet["items"] == [] and quiet["next_since"] == later["next_since"]
    assert get(fresh_sandbox, "/updates", since="yesterday").status_code == 422


def test_updates_pages_hold_at_most_50(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(plan="business")
    requests.post(url(fresh_sandbox, "/batch"), json=[EMAIL] * 60, headers=AUTH, timeout=30)
    page = get(fresh_sandbox, "/updates").json()
    assert len(page["items"]) == 50
    rest = get(fresh_sandbox, "/updates", since=page["next_since"]).json()
    assert len(rest["items"]) == 10
    assert not {row["id"] for row in page["items"]} & {row["id"] for row in rest["items"]}
