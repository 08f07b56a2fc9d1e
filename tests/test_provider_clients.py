"""Every client method against the running sandbox, over real HTTP."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests

from hudhud.worker.errors import InvalidInput
from hudhud.worker.providers import errors as pe
from hudhud.worker.providers.taifa import TaifaClient
from hudhud.worker.providers.taqnyat import TaqnyatClient
from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN, Sandbox

T = TypeVar("T")

NUMBER = "966500000000"
OTHER_NUMBER = "966500000001"
UNASSIGNED = "999500000000"
SENDER = "HUDHUD"
AUDIO = "https://cdn.example.sa/otp.mp3"
FROM = {"email": "no-reply@govconnect.ke", "name": "GovConnect"}


@pytest.fixture()
def taqnyat(fresh_sandbox: Sandbox) -> Iterator[TaqnyatClient]:
    with TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, read_timeout=5.0) as client:
        yield client


@pytest.fixture()
def taifa(fresh_sandbox: Sandbox) -> Iterator[TaifaClient]:
    with TaifaClient(fresh_sandbox.taifa_url, SANDBOX_TAIFA_KEY, read_timeout=5.0) as client:
        yield client


def set_balance(sandbox: Sandbox, amount: str) -> None:
    requests.post(f"{sandbox.url}/_sandbox/balance", json={"set": amount}, timeout=10).raise_for_status()


def eventually(check: Callable[[], T], *, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def assert_clean(error: pe.ProviderError, *secrets: str) -> None:
    for secret in (SANDBOX_TAQNYAT_TOKEN, SANDBOX_TAIFA_KEY, *secrets):
        assert secret not in str(error)


# --- Taqnyat SMS ---------------------------------------------------------------------


def test_sms_is_accepted_with_an_exact_big_id_and_its_cost(
    taqnyat: TaqnyatClient, fresh_sandbox: Sandbox
) -> None:
    result = taqnyat.send_sms([NUMBER], "Your code is 1234", SENDER, sms_id="m-1")
    assert result.status == "sent"
    assert result.provider_message_id is not None
    assert int(result.provider_message_id) > 2**32
    assert result.cost == Decimal("0.026")
    assert result.currency == "SAR"
    assert result.accepted == (NUMBER,)
    assert result.rejected == ()
    (send,) = fresh_sandbox.sends()
    assert send["channel"] == "sms"
    assert send["recipients"] == [NUMBER]
    assert str(send["provider_message_id"]) == result.provider_message_id


def test_sms_cost_given_as_a_string_is_read_alike(taqnyat: TaqnyatClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(cost_as_string=True)
    assert taqnyat.send_sms([NUMBER, OTHER_NUMBER], "hi", SENDER).cost == Decimal("0.052")


def test_sms_unassigned_recipients_come_back_rejected(taqnyat: TaqnyatClient) -> None:
    result = taqnyat.send_sms([NUMBER, UNASSIGNED], "hi", SENDER)
    assert result.accepted == (NUMBER,)
    assert result.rejected == (UNASSIGNED,)
    assert result.cost == Decimal("0.026")


def test_sms_with_no_valid_recipient_is_permanent_code_15(taqnyat: TaqnyatClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taqnyat.send_sms([UNASSIGNED], "hi", SENDER)
    assert (caught.value.code, caught.value.field, caught.value.http_status) == ("15", "recipients", 400)
    assert_clean(caught.value, UNASSIGNED)


def test_sms_unknown_sender_is_permanent_code_14(taqnyat: TaqnyatClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taqnyat.send_sms([NUMBER], "hi", "NOBODY")
    assert (caught.value.code, caught.value.field) == ("14", "sender")
    assert "Invalid sender" in str(caught.value)


@pytest.mark.parametrize(("balance", "code"), [("0", "2"), ("0.010", "3")])
def test_sms_without_enough_balance_is_a_balance_error(
    taqnyat: TaqnyatClient, fresh_sandbox: Sandbox, balance: str, code: str
) -> None:
    set_balance(fresh_sandbox, balance)
    with pytest.raises(pe.BalanceError) as caught:
        taqnyat.send_sms([NUMBER], "hi", SENDER)
    assert caught.value.code == code
    assert fresh_sandbox.sends() == []


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("wrong-token", None),
        ("sandbox-api-disabled", "101"),
        ("sandbox-ip-blocked", "102"),
    ],
)
def test_sms_refused_credentials_are_account_errors(
    fresh_sandbox: Sandbox, token: str, code: str | None
) -> None:
    with TaqnyatClient(fresh_sandbox.url, token) as client, pytest.raises(pe.AccountError) as caught:
        client.send_sms([NUMBER], "hi", SENDER)
    assert caught.value.code == code
    assert token not in str(caught.value)


def test_scheduled_sms_is_charged_then_refunded_when_deleted(taqnyat: TaqnyatClient) -> None:
    before = taqnyat.balance().balance
    assert before is not None
    later = datetime.now(UTC) + timedelta(hours=2)
    taqnyat.send_sms([NUMBER], "reminder", SENDER, scheduled_at=later, delete_id="d-42")
    assert taqnyat.balance().balance == before - Decimal("0.026")
    taqnyat.delete_scheduled_sms("d-42")
    assert taqnyat.balance().balance == before


def test_deleting_an_unknown_scheduled_sms_is_permanent(taqnyat: TaqnyatClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taqnyat.delete_scheduled_sms("never-sent")
    assert caught.value.http_status == 422
    assert caught.value.field == "deleteId"


@pytest.mark.parametrize(
    ("recipients", "body", "sender", "field"),
    [
        (["+966500000000"], "hi", SENDER, "recipients[0]"),
        (["00966500000000"], "hi", SENDER, "recipients[0]"),
        (["12ab"], "hi", SENDER, "recipients[0]"),
        ([], "hi", SENDER, "recipients"),
        ([NUMBER], "  ", SENDER, "body"),
        ([NUMBER], "hi", "", "sender"),
    ],
)
def test_sms_input_is_checked_before_any_request(
    taqnyat: TaqnyatClient, fresh_sandbox: Sandbox, recipients: list[str], body: str, sender: str, field: str
) -> None:
    fresh_sandbox.knobs(error_rate_5xx=1.0)  # any request would fail otherwise
    with pytest.raises(InvalidInput) as caught:
        taqnyat.send_sms(recipients, body, sender)
    assert caught.value.field == field


def test_sms_schedule_in_the_past_is_refused_before_any_request(taqnyat: TaqnyatClient) -> None:
    with pytest.raises(InvalidInput) as caught:
        taqnyat.send_sms([NUMBER], "hi", SENDER, scheduled_at=datetime.now(UTC) - timedelta(hours=1))
    assert caught.value.field == "scheduled_at"


# --- Taqnyat account -----------------------------------------------------------------


def test_balance_is_an_exact_decimal(taqnyat: TaqnyatClient) -> None:
    balance = taqnyat.balance()
    assert balance.balance == Decimal("2044.000")
    assert balance.currency == "SAR"
    assert balance.account_status == "active"
    assert balance.expires_on is not None


def test_balance_with_a_wrong_token_is_an_account_error(fresh_sandbox: Sandbox) -> None:
    with TaqnyatClient(fresh_sandbox.url, "wrong-token") as client, pytest.raises(pe.AccountError) as caught:
        client.balance()
    assert caught.value.http_status == 401
    assert "invalid credentials information" in str(caught.value)


def test_senders_include_the_sandbox_senders(taqnyat: TaqnyatClient) -> None:
    names = {sender.name for sender in taqnyat.senders()}
    assert {"HUDHUD", "Taqnyat"} <= names


def test_system_status_reports_operational_then_an_outage(
    taqnyat: TaqnyatClient, fresh_sandbox: Sandbox
) -> None:
    status = taqnyat.system_status()
    assert status.operational and status.services == ()
    fresh_sandbox.knobs(outage=True, outage_description="Maintenance")
    status = taqnyat.system_status()
    assert not status.operational
    assert set(status.services) == {"sms", "email", "voice"}
    assert status.description == "Maintenance"


# --- Taqnyat email and voice ---------------------------------------------------------


def test_email_is_sent_through_mail_send(taqnyat: TaqnyatClient, fresh_sandbox: Sandbox) -> None:
    result = taqnyat.send_email(
        ["a@example.com", "b@example.com"],
        "Receipt",
        "<b>Paid</b>",
        sender_email="billing@example.sa",
        campaign_name="receipts",
        html=True,
    )
    assert result.status == "sent"
    assert result.provider_message_id
    assert result.cost == Decimal("0.020")
    (send,) = fresh_sandbox.sends()
    assert send["channel"] == "email"
    assert sorted(str(r) for r in send["recipients"]) == [  # type: ignore[attr-defined]
        "a@example.com",
        "b@example.com",
    ]


@pytest.mark.parametrize("fail_status", [400, 200])
def test_email_failure_is_read_from_the_body_whatever_the_status(
    taqnyat: TaqnyatClient, fresh_sandbox: Sandbox, fail_status: int
) -> None:
    fresh_sandbox.knobs(form_fail_http_status=fail_status)
    with pytest.raises(pe.PermanentError) as caught:
        taqnyat.send_email(
            ["a@example.com"], "Hi", "Body", sender_email="x@unverified.example", campaign_name="c"
        )
    assert (caught.value.code, caught.value.field) == ("14", "from")
    assert "error From" in str(caught.value)
    assert caught.value.http_status == fail_status


def test_email_with_a_wrong_token_is_code_104(fresh_sandbox: Sandbox) -> None:
    with TaqnyatClient(fresh_sandbox.url, "wrong-token") as client, pytest.raises(pe.AccountError) as caught:
        client.send_email(["a@example.com"], "Hi", "Body", sender_email="x@example.sa", campaign_name="c")
    assert caught.value.code == "104"
    assert_clean(caught.value, "wrong-token", "a@example.com")


def test_email_without_balance_is_a_balance_error(taqnyat: TaqnyatClient, fresh_sandbox: Sandbox) -> None:
    set_balance(fresh_sandbox, "0")
    with pytest.raises(pe.BalanceError) as caught:
        taqnyat.send_email(["a@example.com"], "Hi", "Body", sender_email="x@example.sa", campaign_name="c")
    assert caught.value.code == "2"


@pytest.mark.parametrize(
    ("to", "subject", "field"),
    [
        (["not-an-address"], "Hi", "to[0]"),
        ([], "Hi", "to"),
        (["a@example.com"], " ", "subject"),
    ],
)
def test_email_input_is_checked_before_any_request(
    taqnyat: TaqnyatClient, to: list[str], subject: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        taqnyat.send_email(to, subject, "Body", sender_email="x@example.sa", campaign_name="c")
    assert caught.value.field == field


def test_voice_call_is_sent_with_its_price(taqnyat: TaqnyatClient, fresh_sandbox: Sandbox) -> None:
    result = taqnyat.send_voice([NUMBER], AUDIO, "966500000009")
    assert result.status == "sent"
    assert result.provider_message_id
    assert result.cost == Decimal("0.216")
    assert result.accepted == (NUMBER,)
    assert fresh_sandbox.sends()[0]["channel"] == "voice"


def test_voice_audio_that_is_not_mp3_or_wav_is_code_17(taqnyat: TaqnyatClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taqnyat.send_voice([NUMBER], "https://cdn.example.sa/otp.ogg", "966500000009")
    assert (caught.value.code, caught.value.field) == ("17", "audioUrl")


def test_voice_with_api_disabled_is_code_101(taqnyat: TaqnyatClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(api_disabled=True)
    with pytest.raises(pe.AccountError) as caught:
        taqnyat.send_voice([NUMBER], AUDIO, "966500000009")
    assert caught.value.code == "101"


@pytest.mark.parametrize(
    ("audio", "caller", "field"),
    [
        ("ftp://cdn.example.sa/a.mp3", "966500000009", "audio_url"),
        (AUDIO, "HUDHUD", "caller_id"),
        (AUDIO, "+966500000009", "caller_id"),
    ],
)
def test_voice_input_is_checked_before_any_request(
    taqnyat: TaqnyatClient, audio: str, caller: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        taqnyat.send_voice([NUMBER], audio, caller)
    assert caught.value.field == field


# --- faults: retries, timeouts, 429 --------------------------------------------------


def test_reads_ride_out_a_flaky_provider(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(error_rate_5xx=0.3)
    with TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, retries=10) as client:
        for _ in range(20):
            assert client.balance().currency == "SAR"


def test_sends_ride_out_5xx_without_duplicates(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(error_rate_5xx=0.3)
    with TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, retries=10) as client:
        ids = {client.send_sms([NUMBER], f"n{i}", SENDER).provider_message_id for i in range(20)}
    assert len(ids) == 20
    assert len(fresh_sandbox.sends()) == 20


def test_a_provider_that_always_fails_is_retryable_after_the_retries(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(error_rate_5xx=1.0)
    with (
        TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, retries=2) as client,
        pytest.raises(pe.RetryableError) as caught,
    ):
        client.balance()
    assert caught.value.http_status in (502, 503)
    assert not caught.value.in_doubt


def test_a_read_that_times_out_is_retryable(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(timeout_rate=1.0, timeout_seconds=2.0)
    started = time.monotonic()
    with (
        TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, read_timeout=0.3, retries=1) as client,
        pytest.raises(pe.RetryableError) as caught,
    ):
        client.balance()
    assert not caught.value.in_doubt
    assert time.monotonic() - started < 1.9


def test_a_send_that_times_out_is_in_doubt_and_sent_once(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(timeout_rate=1.0, timeout_seconds=2.0)
    started = time.monotonic()
    with (
        TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, read_timeout=0.3, retries=3) as client,
        pytest.raises(pe.InDoubtError) as caught,
    ):
        client.send_sms([NUMBER], "hi", SENDER)
    assert time.monotonic() - started < 1.0  # one attempt, no resend
    assert_clean(caught.value, NUMBER)


def test_a_send_answered_504_by_the_gateway_is_in_doubt(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(timeout_rate=1.0, timeout_seconds=0.1)
    with (
        TaifaClient(fresh_sandbox.taifa_url, SANDBOX_TAIFA_KEY, retries=3) as client,
        pytest.raises(pe.InDoubtError) as caught,
    ):
        client.send(FROM, "a@example.com", "Hi", text="Body")
    assert caught.value.http_status == 504
    assert "504 Gateway Time-out" in str(caught.value)


def test_429_surfaces_its_retry_after(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(rate_429=1.0, retry_after=30)
    with (
        TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN) as taqnyat,
        pytest.raises(pe.RetryableError) as caught,
    ):
        taqnyat.send_sms([NUMBER], "hi", SENDER)
    assert (caught.value.http_status, caught.value.retry_after) == (429, 30.0)
    with (
        TaifaClient(fresh_sandbox.taifa_url, SANDBOX_TAIFA_KEY) as taifa,
        pytest.raises(pe.RetryableError) as caught,
    ):
        taifa.list()
    assert (caught.value.http_status, caught.value.retry_after) == (429, 30.0)
    assert caught.value.code == "rate_limited"


def test_a_short_429_is_waited_out_inside_the_call(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(rate_429=0.3, retry_after=1)
    with TaifaClient(fresh_sandbox.taifa_url, SANDBOX_TAIFA_KEY, retries=10) as client:
        for _ in range(5):
            client.list(limit=1)


def test_a_lost_reply_after_acceptance_surfaces_as_retryable(fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(fault_after_accept=1.0)
    with (
        TaqnyatClient(fresh_sandbox.url, SANDBOX_TAQNYAT_TOKEN, retries=0) as client,
        pytest.raises(pe.RetryableError),
    ):
        client.send_sms([NUMBER], "hi", SENDER)
    assert len(fresh_sandbox.sends()) == 1


# --- Taifa: sending ------------------------------------------------------------------


def test_taifa_send_is_queued_with_a_uuid(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    result = taifa.send(
        FROM,
        ["a@example.com", {"email": "b@example.com", "name": "B"}],
        "Welcome",
        html="<p>Hi</p>",
        text="Hi",
        cc=["c@example.com"],
        reply_to="help@govconnect.ke",
        headers={"X-Ref": "42"},
        tags=["welcome", "hudhud:m-1"],
    )
    assert result.provider == "taifa"
    assert result.status == "queued"
    assert result.rejection_reason is None
    assert uuid.UUID(str(result.provider_message_id))
    (send,) = fresh_sandbox.sends()
    assert send["provider"] == "taifa"
    assert send["tags"] == ["welcome", "hudhud:m-1"]


def test_taifa_send_with_an_attachment(taifa: TaifaClient) -> None:
    attachment = {
        "filename": "receipt.txt",
        "content_type": "text/plain",
        "content_base64": base64.b64encode(b"paid").decode(),
    }
    assert (
        taifa.send(FROM, "a@example.com", "Receipt", text="see attached", attachments=[attachment]).status
        == "queued"
    )


def test_taifa_suppressed_recipient_is_rejected_not_raised(taifa: TaifaClient) -> None:
    result = taifa.send(FROM, "reject-me@example.com", "Hi", text="Body")
    assert result.status == "rejected"
    assert result.rejection_reason == "recipient is on the suppression list"


def test_taifa_unverified_sender_is_permanent_on_from(taifa: TaifaClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taifa.send({"email": "x@unverified.example"}, "a@example.com", "Hi", text="Body")
    assert caught.value.http_status == 422
    assert caught.value.field == "from_.email"
    assert "not verified" in str(caught.value)


def test_taifa_wrong_key_is_an_account_error(fresh_sandbox: Sandbox) -> None:
    with (
        TaifaClient(fresh_sandbox.taifa_url, "tfm_k_wrong") as client,
        pytest.raises(pe.AccountError) as caught,
    ):
        client.send(FROM, "a@example.com", "Hi", text="Body")
    assert caught.value.http_status == 401
    assert "tfm_k_wrong" not in str(caught.value)


def test_taifa_send_limit_is_an_account_error(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(send_limit=1)
    taifa.send(FROM, "a@example.com", "Hi", text="Body")
    with pytest.raises(pe.AccountError) as caught:
        taifa.send(FROM, "a@example.com", "Hi", text="Body")
    assert (caught.value.http_status, caught.value.code) == (403, "send_limit_reached")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "html"),
        ({"text": "x", "send_at": datetime.now(UTC) + timedelta(seconds=20)}, "send_at"),
        ({"text": "x", "send_at": datetime.now(UTC) + timedelta(days=31)}, "send_at"),
        ({"text": "x", "cc": ["nope"]}, "cc[0]"),
        (
            {"text": "x", "attachments": [{"filename": "a/b.txt", "content_base64": "cGFpZA=="}]},
            "attachments[0].filename",
        ),
        (
            {"text": "x", "attachments": [{"filename": "a.txt", "content_base64": "data:xx"}]},
            "attachments[0].content_base64",
        ),
        ({"text": "x", "headers": {"Bad Name": "v"}}, "headers.Bad Name"),
    ],
)
def test_taifa_input_is_checked_before_any_request(
    taifa: TaifaClient, fresh_sandbox: Sandbox, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        taifa.send(FROM, "a@example.com", "Hi", **options)
    assert caught.value.field == field
    assert fresh_sandbox.sends() == []


def test_taifa_validate_is_a_dry_run(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    ok = taifa.validate(FROM, "a@example.com", "Hi", text="Body")
    assert ok.valid and ok.can_send and ok.issues == ()
    bad = taifa.validate({"email": "x@unverified.example"}, "a@example.com", "Hi", text="Body")
    assert not bad.valid and not bad.can_send
    assert bad.issues and bad.issues[0].error
    assert fresh_sandbox.sends() == []


# --- Taifa: tracking -----------------------------------------------------------------


def test_taifa_get_and_events_follow_the_progress(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=0.05)
    sent = taifa.send(FROM, "open-me@example.com", "Hi", text="Body", tags=["t1"])
    email_id = str(sent.provider_message_id)

    def opened() -> tuple[Any, ...]:
        events = taifa.events(email_id)
        assert {"queued", "sent", "delivered", "opened"} <= {e.event_type for e in events}
        return events

    events = eventually(opened)
    assert all(e.created_at is not None for e in events)
    email = taifa.get(email_id)
    assert email.id == email_id
    assert email.status in ("delivered", "opened", "clicked")
    assert email.to_addresses == ("open-me@example.com",)
    assert email.tags == ("t1",)
    assert email.text == "Body"
    assert email.events


def test_taifa_get_unknown_id_is_permanent_not_found(taifa: TaifaClient) -> None:
    with pytest.raises(pe.PermanentError) as caught:
        taifa.get(str(uuid.uuid4()))
    assert (caught.value.http_status, caught.value.code) == (404, "not_found")
    assert "Email not found" in str(caught.value)


def test_taifa_retry_of_a_bounce_links_back(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(progress_seconds=0.05)
    first = str(taifa.send(FROM, "bounce@example.com", "Hi", text="Body").provider_message_id)

    def bounced() -> None:
        assert taifa.get(first).status == "bounced"

    eventually(bounced)
    again = taifa.retry(first)
    assert again.provider_message_id and again.provider_message_id != first
    assert taifa.get(again.provider_message_id).retry_of_id == first


def test_taifa_retry_of_a_queued_email_is_a_conflict(taifa: TaifaClient) -> None:
    sent = taifa.send(FROM, "a@example.com", "Hi", text="Body")
    with pytest.raises(pe.PermanentError) as caught:
        taifa.retry(str(sent.provider_message_id))
    assert (caught.value.http_status, caught.value.code) == (409, "not_retryable")


def test_taifa_search_and_list(taifa: TaifaClient) -> None:
    taifa.send(FROM, "x1@alpha.example", "Alpha one", text="Body", tags=["alpha"])
    taifa.send(FROM, "x2@beta.example", "Beta two", text="Body", tags=["beta"])
    found = taifa.search(q="to:alpha.example")
    assert [e.subject for e in found.items] == ["Alpha one"]
    assert found.total == 1 and found.page == 0 and found.limit == 20
    assert [e.subject for e in taifa.search(tag="beta").items] == ["Beta two"]
    assert [e.subject for e in taifa.search(q="tag:beta").items] == ["Beta two"]
    listed = taifa.list(limit=1)
    assert listed.total == 2 and len(listed.items) == 1 and listed.has_more
    assert listed.items[0].subject == "Beta two"  # newest first
    assert taifa.list(status="queued", page=1, limit=1).items[0].subject == "Alpha one"
    with pytest.raises(InvalidInput):
        taifa.list(limit=101)


def test_taifa_updates_since_a_time(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    sent = taifa.send(FROM, "a@example.com", "Hi", text="Body")
    updates = taifa.updates(since)
    assert sent.provider_message_id in {item.id for item in updates.items}
    assert updates.next_since
    assert isinstance(taifa.updates(updates.next_since).items, tuple)


# --- Taifa: scheduling and batches ---------------------------------------------------


def test_taifa_scheduled_email_can_be_listed_cancelled_or_sent_now(taifa: TaifaClient) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    first = taifa.send(FROM, "a@example.com", "Later 1", text="Body", send_at=at)
    second = taifa.send(FROM, "a@example.com", "Later 2", text="Body", send_at=at)
    assert first.status == second.status == "scheduled"
    assert taifa.scheduled().total == 2
    cancelled = taifa.cancel_scheduled(str(first.provider_message_id))
    assert (cancelled.id, cancelled.status) == (first.provider_message_id, "cancelled")
    now = taifa.send_now(str(second.provider_message_id))
    assert now.status == "queued"
    assert taifa.scheduled().total == 0
    with pytest.raises(pe.PermanentError) as caught:
        taifa.cancel_scheduled(str(first.provider_message_id))
    assert caught.value.http_status == 409


def test_taifa_batch_sends_the_good_and_reports_the_refused(
    taifa: TaifaClient, fresh_sandbox: Sandbox
) -> None:
    messages = [
        {"from_": FROM, "to": [f"user{i}@example.com"], "subject": f"n{i}", "text": "Body"} for i in range(3)
    ] + [
        {"from_": {"email": "x@unverified.example"}, "to": "z@example.com", "subject": "bad", "text": "Body"}
    ]
    batch = taifa.batch_send(messages)
    assert (batch.total, batch.sent, batch.failed) == (4, 3, 1)
    assert [r.status for r in batch.results][:3] == ["queued"] * 3
    assert batch.results[3].status == "failed"
    assert batch.results[3].provider_message_id is None
    assert batch.results[3].rejection_reason
    assert len(fresh_sandbox.sends()) == 3


def test_taifa_batch_on_the_free_plan_is_an_account_error(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(plan="free")
    with pytest.raises(pe.AccountError) as caught:
        taifa.batch_send([{"from_": FROM, "to": "a@example.com", "subject": "s", "text": "t"}])
    assert caught.value.code == "plan_feature"


def test_taifa_batch_over_the_plan_limit_is_permanent(taifa: TaifaClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.knobs(plan="starter")
    message = {"from_": FROM, "to": "a@example.com", "subject": "s", "text": "t"}
    with pytest.raises(pe.PermanentError) as caught:
        taifa.batch_send([message] * 26)
    assert (caught.value.http_status, caught.value.code) == (400, "batch_too_large")


def test_taifa_batch_items_are_checked_before_any_request(taifa: TaifaClient) -> None:
    with pytest.raises(InvalidInput) as caught:
        taifa.batch_send(
            [
                {"from_": FROM, "to": "a@example.com", "subject": "s", "text": "t"},
                {"from_": FROM, "to": "nope", "subject": "s", "text": "t"},
            ]
        )
    assert caught.value.field == "messages[1].to[0]"
    with pytest.raises(InvalidInput) as caught:
        taifa.batch_send([{"from": FROM, "to": "a@example.com", "subject": "s", "text": "t"}])
    assert caught.value.field == "messages[0].from"


def test_the_environments_proxy_and_ca_bundle_are_read_once_when_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    remote = TaqnyatClient("https://api.taqnyat.sa", "t")
    local = TaqnyatClient(sandbox.url, SANDBOX_TAQNYAT_TOKEN)
    assert remote.http.session.proxies.get("https") == "http://proxy.internal:3128"
    assert remote.http.session.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert "https" not in local.http.session.proxies, "NO_PROXY holds for the sandbox"
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # read at creation only
    assert local.balance().balance >= 0
    assert not remote.http.session.trust_env
