"""Checks of a send's fields before anything is recorded (pure: no server)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hudhud.config import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.producer import messages

CFG = Settings(
    TAQNYAT_SENDER="HUDHUD",
    TAQNYAT_CALLER_ID="966500000001",
    TAIFA_FROM="a@example.com",
    TAQNYAT_EMAIL_FROM="b@example.com",
)
BARE = Settings()


def field_of(channel: str, fields: dict[str, object], cfg: Settings = CFG) -> str:
    with pytest.raises(InvalidInput) as info:
        messages.build(channel, fields, cfg)
    return info.value.field


def test_sms_is_checked_and_defaults_filled() -> None:
    request = messages.sms({"to": ["966500000000", "966500000000"], "body": "hi"}, CFG)
    assert request.payload == {"to": ["966500000000"], "body": "hi", "sender": "HUDHUD"}
    assert request.due is None and request.provider == "taqnyat"


@pytest.mark.parametrize("number", ["+966500000000", "00966500000000", "96650000abc", "123", ""])
def test_bad_numbers_name_the_field(number: str) -> None:
    assert field_of("sms", {"to": [number], "body": "x"}) in ("to[0]", "to")


def test_missing_sender_names_the_variable() -> None:
    with pytest.raises(InvalidInput, match="TAQNYAT_SENDER"):
        messages.sms({"to": ["966500000000"], "body": "x"}, BARE)


def test_unknown_fields_are_refused() -> None:
    assert field_of("sms", {"to": ["966500000000"], "body": "x", "colour": "red"}) == "colour"


def test_times_need_an_offset_and_the_future() -> None:
    base = {"to": ["966500000000"], "body": "x"}
    assert field_of("sms", {**base, "at": "2030-01-01T10:00:00"}) == "at"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert field_of("sms", {**base, "at": past}) == "at"
    future = datetime.now(UTC) + timedelta(hours=2)
    request = messages.sms({**base, "at": future.isoformat().replace("+00:00", "Z")}, CFG)
    assert request.due is not None and abs((request.due - future).total_seconds()) < 0.001


def test_email_attachment_rules() -> None:
    base = {"to": ["x@example.com"], "subject": "s", "text": "t"}
    good = base64.b64encode(b"hello").decode()
    ok = messages.email({**base, "attachments": [{"filename": "a.txt", "content_base64": good}]}, CFG)
    assert ok.payload["attachments"][0]["filename"] == "a.txt"
    for bad, field in [
        ({"filename": "../a", "content_base64": good}, "attachments[0].filename"),
        ({"filename": "a\\b", "content_base64": good}, "attachments[0].filename"),
        (
            {"filename": "a", "content_base64": "data:text/plain;base64," + good},
            "attachments[0].content_base64",
        ),
        ({"filename": "a", "content_base64": "***"}, "attachments[0].content_base64"),
        ({"filename": "a", "content_base64": "A" * (33 * 1024 * 1024)}, "attachments[0].content_base64"),
    ]:
        assert field_of("email", {**base, "attachments": [bad]}) == field


def test_attachments_over_24_mib_in_total_are_refused() -> None:
    half = base64.b64encode(b"\0" * (13 * 1024 * 1024)).decode()
    items = [{"filename": f"{i}.bin", "content_base64": half} for i in range(2)]
    assert (
        field_of("email", {"to": ["x@example.com"], "subject": "s", "text": "t", "attachments": items})
        == "attachments"
    )


def test_taqnyat_email_refuses_what_it_cannot_carry() -> None:
    fields = {
        "to": ["x@example.com"],
        "subject": "s",
        "text": "t",
        "provider": "taqnyat",
        "cc": ["c@example.com"],
    }
    assert field_of("email", fields) == "cc"


def test_email_needs_text_or_html_and_a_single_line_subject() -> None:
    assert field_of("email", {"to": ["x@example.com"], "subject": "s"}) == "text"
    assert field_of("email", {"to": ["x@example.com"], "subject": "a\nb", "text": "t"}) == "subject"


def test_request_hash_ignores_nothing_that_matters() -> None:
    one = messages.sms({"to": ["966500000000"], "body": "a"}, CFG)
    two = messages.sms({"to": ["966500000000"], "body": "b"}, CFG)
    assert one.request_hash != two.request_hash
    assert one.request_hash == messages.sms({"to": ["966500000000"], "body": "a"}, CFG).request_hash


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12),
        st.one_of(
            st.none(),
            st.text(),
            st.integers(),
            st.lists(st.text(max_size=20), max_size=3),
            st.binary(max_size=10),
        ),
        max_size=6,
    ),
    st.sampled_from(["sms", "email", "voice"]),
)
def test_arbitrary_fields_are_either_accepted_or_refused_with_a_field(
    fields: dict[str, object], channel: str
) -> None:
    try:
        request = messages.build(channel, fields, CFG)
    except InvalidInput as exc:
        assert exc.field and str(exc).startswith(exc.field)
    else:
        assert request.channel == channel


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_strings_as_numbers_never_crash(value: str) -> None:
    try:
        messages.sms({"to": [value], "body": "x"}, CFG)
    except InvalidInput as exc:
        assert exc.field in ("to", "to[0]")


def test_non_utf8_text_is_refused() -> None:
    broken = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert field_of("sms", {"to": ["966500000000"], "body": broken}) == "body"
