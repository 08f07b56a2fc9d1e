"""Django's email through hudhud: `EMAIL_BACKEND = "hudhud.integrations.django.EmailBackend"`
sends `send_mail`, `EmailMessage` and `EmailMultiAlternatives` through the producer API.

Django is configured in this process from the settings module `tests.django_site.settings`
(only when nothing configured it before); one test runs a Django process of its own with
`DJANGO_SETTINGS_MODULE`, as a project would. Sends go to a real redis-server; those that
must be delivered go through a real `hudhud worker` to the sandbox.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.mime.application import MIMEApplication
from pathlib import Path
from typing import Any

import django
import pytest
import redis
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection, send_mail
from django.test.utils import override_settings

from hudhud.config import Settings
from hudhud.integrations.django import EmailBackend, message_fields, renamed
from hudhud.worker.errors import InvalidInput, RedisFull
from hudhud.worker.producer.api import Hudhud, IdempotencyConflict
from tests.django_site import settings as site
from tests.helpers import SANDBOX_TAIFA_KEY, RedisServer, free_port
from tests.stack import Stack, running_stack, wait_until

ROOT = Path(__file__).resolve().parent.parent
SITE = "tests.django_site.settings"
SENDER = "noreply@example.com"  # TAIFA_FROM of the stack


@pytest.fixture(scope="module", autouse=True)
def django_site() -> None:
    if not settings.configured:
        settings.configure(**{name: getattr(site, name) for name in dir(site) if name.isupper()})
        django.setup()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("django"), beat=False) as stack:
        yield stack


def hudhud_settings(url: str) -> dict[str, str]:
    return {"HUDHUD_REDIS_URL": url, "TAIFA_FROM": SENDER, "HUDHUD_EMAIL_PROVIDER": "taifa"}


def keys(client: redis.Redis) -> set[bytes]:
    return set(client.keys("*"))


def payload_of(stack: Stack, message_id: str) -> dict[str, Any]:
    record = stack.ledger.get(message_id)
    assert record is not None
    return dict(json.loads(record["payload"]))


def taifa_email(stack: Stack, email_id: str) -> dict[str, Any]:
    reply = requests.get(
        f"{stack.sandbox.taifa_url}/emails/{email_id}",
        headers={"Authorization": f"Bearer {SANDBOX_TAIFA_KEY}"},
        timeout=10,
    )
    reply.raise_for_status()
    return dict(reply.json())


def sandbox_sends(stack: Stack, subject: str) -> list[dict[str, Any]]:
    return [send for send in stack.sandbox.sends() if send["subject"] == subject]


# --- what a message becomes (no Redis) --------------------------------------------------
def test_display_names_are_dropped_and_the_headers_reply_to_and_from_win() -> None:
    message = EmailMessage(
        "Hello",
        "Body",
        "Shop <shop@example.com>",
        ["Ann Example <ann@example.com>", "bob@example.com"],
        cc=['"Doe, Jo" <jo@example.com>'],
        reply_to=["first@example.com"],
        headers={"reply-to": "Help <help@example.com>", "From": "Desk <desk@example.com>", "X-Order": "81"},
    )
    fields, names = message_fields(message)
    assert fields["to"] == ["ann@example.com", "bob@example.com"]
    assert fields["cc"] == ["jo@example.com"]
    assert fields["from"] == "desk@example.com"
    assert fields["reply_to"] == "help@example.com"
    assert fields["headers"] == {"X-Order": "81"}
    assert names["reply_to"] == "extra_headers.reply-to"
    assert names["from"] == "extra_headers.From"


def test_djangos_unset_default_sender_leaves_hudhuds_default_and_a_set_one_is_used() -> None:
    assert not settings.is_overridden("DEFAULT_FROM_EMAIL")
    assert message_fields(EmailMessage("Hi", "Body", None, ["a@example.com"]))[0]["from"] is None
    admins = EmailMessage("Error", "Body", settings.SERVER_EMAIL, ["a@example.com"])  # as mail_admins
    assert message_fields(admins)[0]["from"] is None
    with override_settings(DEFAULT_FROM_EMAIL="Shop <shop@example.com>"):
        assert message_fields(EmailMessage("Hi", "Body", None, ["a@example.com"]))[0]["from"] == (
            "shop@example.com"
        )


def test_bodies_come_from_the_body_and_one_html_alternative() -> None:
    message = EmailMultiAlternatives("Hi", "Plain words", "shop@example.com", ["a@example.com"])
    message.attach_alternative("<p>Words</p>", "text/html; charset=utf-8")
    fields, names = message_fields(message)
    assert (fields["text"], fields["html"], names["html"]) == (
        "Plain words",
        "<p>Words</p>",
        "alternatives[0]",
    )
    html_only = EmailMessage("Hi", "<p>Only</p>", "shop@example.com", ["a@example.com"])
    html_only.content_subtype = "html"
    fields, names = message_fields(html_only)
    assert (fields["text"], fields["html"], names["html"]) == (None, "<p>Only</p>", "body")


@pytest.mark.parametrize(
    ("alternatives", "field", "words"),
    [
        ([("BEGIN:VCALENDAR", "text/calendar")], "alternatives[0]", "text/calendar"),
        ([("<p>a</p>", "text/html"), ("<p>b</p>", "text/html")], "alternatives[1]", "second HTML body"),
    ],
)
def test_an_alternative_hudhud_cannot_send_is_refused_naming_it(
    alternatives: list[tuple[str, str]], field: str, words: str
) -> None:
    message = EmailMultiAlternatives("Hi", "Body", "shop@example.com", ["a@example.com"])
    for content, mimetype in alternatives:
        message.attach_alternative(content, mimetype)
    with pytest.raises(InvalidInput) as refused:
        message_fields(message)
    assert refused.value.field == field and words in refused.value.message


@pytest.mark.parametrize(
    ("reply_to", "headers", "field"),
    [
        (["a@example.com", "b@example.com"], {}, "reply_to"),
        ([], {"Reply-To": "a@example.com, B <b@example.com>"}, "extra_headers.Reply-To"),
    ],
)
def test_more_than_one_reply_to_address_is_refused_naming_where_it_came_from(
    reply_to: list[str], headers: dict[str, str], field: str
) -> None:
    message = EmailMessage(
        "Hi", "Body", "shop@example.com", ["c@example.com"], reply_to=reply_to, headers=headers
    )
    with pytest.raises(InvalidInput) as refused:
        message_fields(message)
    assert refused.value.field == field
    assert "one Reply-To" in refused.value.message and "example.com" not in str(refused.value)


def test_attachments_from_tuples_files_and_mime_parts(tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 \x00\xff")
    part = MIMEApplication(b"\x01\x02\x03", "octet-stream")
    part.add_header("Content-Disposition", "attachment", filename="blob.bin")
    message = EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"], attachments=[part])
    message.attach("notes.txt", "ملاحظات", None)
    message.attach_file(report)
    found = message_fields(message)[0]["attachments"]
    assert [(a["filename"], a["content_type"]) for a in found] == [
        ("blob.bin", "application/octet-stream"),
        ("notes.txt", "text/plain"),
        ("report.pdf", "application/pdf"),
    ]
    decoded = [base64.b64decode(a["content_base64"]) for a in found]
    assert decoded == [b"\x01\x02\x03", "ملاحظات".encode(), b"%PDF-1.4 \x00\xff"]


def test_hudhuds_own_attributes_and_a_naive_send_at_in_djangos_time_zone() -> None:
    message = EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"])
    message.tags = ["orders"]
    message.idempotency_key = "order-81"
    message.reference = "ref-81"
    message.provider = "taifa"
    message.campaign = "autumn"
    message.callback_url = "https://hooks.example.com/hudhud"
    message.send_at = datetime(2030, 1, 2, 9, 0)
    fields = message_fields(message)[0]
    assert {k: fields[k] for k in ("tags", "key", "reference", "provider", "campaign", "callback_url")} == {
        "tags": ["orders"],
        "key": "order-81",
        "reference": "ref-81",
        "provider": "taifa",
        "campaign": "autumn",
        "callback_url": "https://hooks.example.com/hudhud",
    }
    assert fields["at"].astimezone(UTC) == datetime(2030, 1, 2, 6, 0, tzinfo=UTC)  # Riyadh is UTC+3


def test_hudhuds_field_names_become_the_message_attributes_keeping_the_error_class() -> None:
    names = {"headers": "extra_headers", "key": "idempotency_key"}
    header = renamed(InvalidInput("headers.To", "is not a custom header"), names)
    assert (header.field, str(header)) == ("extra_headers.To", "extra_headers.To: is not a custom header")
    conflict = renamed(IdempotencyConflict("m-1"), names)
    assert isinstance(conflict, IdempotencyConflict) and conflict.existing_id == "m-1"
    assert conflict.field == "idempotency_key" and str(conflict).startswith("idempotency_key: ")
    untouched = InvalidInput("to[0]", "is not a valid email address")
    assert renamed(untouched, names) is untouched


# --- through a real Redis (no worker) ---------------------------------------------------
@pytest.fixture()
def site_redis(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[redis.Redis]:
    with override_settings(HUDHUD_SETTINGS=hudhud_settings(redis_server.url)):
        yield redis_client


def test_bad_input_with_fail_silently_counts_nothing_records_nothing_and_logs_no_address(
    site_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    before = keys(site_redis)
    with caplog.at_level(logging.WARNING, logger="hudhud.integrations.django"):
        sent = send_mail("Hi", "Body", "shop@example.com", ["ann@example"], fail_silently=True)
    assert sent == 0
    assert keys(site_redis) == before
    assert "to[0]" in caplog.text and "ann@example" not in caplog.text


def test_bad_input_without_fail_silently_raises_naming_the_attribute(site_redis: redis.Redis) -> None:
    before = keys(site_redis)
    message = EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"], headers={"To": "x"})
    with pytest.raises(InvalidInput) as refused:
        message.send()
    assert refused.value.field == "extra_headers.To"
    with pytest.raises(InvalidInput) as refused:
        send_mail("Hi", "Body", "shop@example", ["ann@example.com"])
    assert refused.value.field == "from_email"
    assert keys(site_redis) == before
    assert message.hudhud_id is None and message.hudhud_status is None


def test_of_several_messages_a_bad_one_raises_after_the_earlier_ones_were_sent(
    site_redis: redis.Redis, redis_server: RedisServer
) -> None:
    hudhud = Hudhud(Settings(HUDHUD_REDIS_URL=redis_server.url))
    good = [EmailMessage(f"Hi {n}", "Body", "shop@example.com", [f"u{n}@example.com"]) for n in range(2)]
    bad = EmailMessage("Hi", "Body", "shop@example.com", ["u@example.com"], reply_to=["a@x.com", "b@x.com"])
    with pytest.raises(InvalidInput) as refused:
        get_connection().send_messages([good[0], bad, good[1]])
    assert refused.value.field == "reply_to"
    assert hudhud.status(good[0].hudhud_id)["status"] == "queued"
    assert getattr(good[1], "hudhud_id", None) is None
    again = [EmailMessage(f"Again {n}", "Body", "shop@example.com", [f"u{n}@example.com"]) for n in range(2)]
    assert get_connection(fail_silently=True).send_messages([again[0], bad, again[1]]) == 2
    assert [hudhud.status(m.hudhud_id)["status"] for m in again] == ["queued", "queued"]
    assert bad.hudhud_id is None


def test_an_idempotency_key_used_for_another_email_is_refused_naming_it(site_redis: redis.Redis) -> None:
    first = EmailMessage("Receipt 7", "Body", "shop@example.com", ["ann@example.com"])
    first.idempotency_key = "receipt-7"
    other = EmailMessage("Receipt 8", "Body", "shop@example.com", ["ann@example.com"])
    other.idempotency_key = "receipt-7"
    assert first.send() == 1
    with pytest.raises(IdempotencyConflict) as refused:
        other.send()
    assert refused.value.field == "idempotency_key" and first.hudhud_id in str(refused.value)
    assert get_connection(fail_silently=True).send_messages([other]) == 0


def test_a_redis_that_does_not_answer_raises_unless_fail_silently() -> None:
    message = EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"])
    with override_settings(HUDHUD_SETTINGS=hudhud_settings(f"redis://127.0.0.1:{free_port()}/0")):
        assert get_connection(fail_silently=True).send_messages([message]) == 0
        with pytest.raises(redis.ConnectionError):
            message.send()


def test_send_at_reaches_hudhud_as_a_scheduled_email(
    site_redis: redis.Redis, redis_server: RedisServer
) -> None:
    message = EmailMessage("Later", "Body", "shop@example.com", ["ann@example.com"])
    message.send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert message.send() == 1
    assert message.hudhud_status == "scheduled"
    status = Hudhud(Settings(HUDHUD_REDIS_URL=redis_server.url)).status(message.hudhud_id)
    assert status["status"] == "scheduled"


def test_a_full_redis_is_swallowed_with_fail_silently_and_raised_without(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "full", extra_args=["--maxmemory-policy", "noeviction"]).start()
    client = redis.Redis.from_url(server.url)
    try:
        client.config_set("maxmemory", 1)
        message = EmailMessage("Hi", "Body", "shop@example.com", ["ann@example.com"])
        with override_settings(HUDHUD_SETTINGS=hudhud_settings(server.url)):
            assert get_connection(fail_silently=True).send_messages([message]) == 0
            with pytest.raises(RedisFull):
                message.send()
        client.config_set("maxmemory", 0)
        assert client.dbsize() == 0
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"HUDHUD_REDIS_URLL": "redis://127.0.0.1:6379/0"}, "'HUDHUD_REDIS_URLL', not a hudhud variable"),
        ({"HUDHUD_REDIS_URL": "http://127.0.0.1:6379"}, "HUDHUD_SETTINGS['HUDHUD_REDIS_URL'] is invalid"),
        (["HUDHUD_REDIS_URL"], "must be a dict of hudhud variables"),
    ],
)
def test_a_wrong_hudhud_settings_is_improperly_configured(variables: Any, words: str) -> None:
    with override_settings(HUDHUD_SETTINGS=variables), pytest.raises(ImproperlyConfigured) as refused:
        EmailBackend().open()
    assert words in str(refused.value)


def test_one_backend_opens_its_producer_once() -> None:
    with override_settings(HUDHUD_SETTINGS=hudhud_settings("redis://127.0.0.1:6379/3")):
        backend = EmailBackend()
        assert backend.open() is True
        producer = backend.producer
        assert backend.open() is False and backend.producer is producer
        assert producer is not None and producer.settings.redis_url.endswith("/3")
        backend.close()
        assert backend.producer is None
        assert EmailBackend().send_messages([]) == 0
        nobody = EmailMessage("Hi", "Body", "shop@example.com", [])
        assert EmailBackend().send_messages([nobody]) == 0, "as Django's SMTP backend: skipped"
        assert nobody.hudhud_id is None


# --- delivered through a real worker to the sandbox ---------------------------------------
REPORT = b"%PDF-1.4 quarterly \x00\xff"
ITEMS = b"item,price\nbook,12\n"
HEADERS = {"X-Order": "81", "List-Unsubscribe": "<mailto:stop@example.com>"}


def order_email(tmp_path: Path, subject: str) -> EmailMultiAlternatives:
    """An email with everything: html, two attachments, cc, bcc, reply-to, headers, tags, key."""
    report = tmp_path / "report.pdf"
    report.write_bytes(REPORT)
    message = EmailMultiAlternatives(
        subject=subject,
        body="Your order 81 ships today.",
        from_email="Shop <shop@example.com>",
        to=["Ann <ann@example.com>"],
        cc=["cc@example.com"],
        bcc=["audit@example.com"],
        reply_to=["Help desk <help@example.com>"],
        headers=dict(HEADERS),
    )
    message.attach_alternative("<p>Your order <b>81</b> ships today.</p>", "text/html")
    message.attach("items.csv", ITEMS, "text/csv")
    message.attach_file(report)
    message.tags = ["orders"]
    message.idempotency_key = f"{subject}-key"
    message.reference = "order-81"
    return message


def test_everything_an_email_carries_is_recorded_for_the_worker(
    site_redis: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    message = order_email(tmp_path, "Order 81 is recorded")
    assert message.send() == 1
    hudhud = Hudhud(Settings(HUDHUD_REDIS_URL=redis_server.url))
    record = hudhud.ledger.get(message.hudhud_id)
    assert record is not None and record["reference"] == "order-81"
    payload = json.loads(record["payload"])
    attached = {
        a["filename"]: (a["content_type"], base64.b64decode(a["content_base64"]))
        for a in payload.pop("attachments")
    }
    assert attached == {"items.csv": ("text/csv", ITEMS), "report.pdf": ("application/pdf", REPORT)}
    assert payload == {
        "to": ["ann@example.com"],
        "subject": "Order 81 is recorded",
        "text": "Your order 81 ships today.",
        "html": "<p>Your order <b>81</b> ships today.</p>",
        "from": "shop@example.com",
        "cc": ["cc@example.com"],
        "bcc": ["audit@example.com"],
        "reply_to": "help@example.com",
        "headers": HEADERS,
        "tags": ["orders"],
    }


@pytest.mark.e2e
def test_an_email_with_html_attachments_and_every_attribute_is_delivered_once(
    stack: Stack, tmp_path: Path
) -> None:
    message = order_email(tmp_path, "Order 81 ships today")
    with override_settings(HUDHUD_SETTINGS=hudhud_settings(stack.redis_server.url)):
        assert message.send() == 1
        first = message.hudhud_id
        assert message.hudhud_status == "queued"
        stack.wait_status([first], {"sent"})
        assert order_email(tmp_path, "Order 81 ships today").send() == 1, "a replay is accepted"
        assert get_connection().send_messages([message]) == 1
    assert message.hudhud_id == first and message.hudhud_status == "sent"

    (received,) = sandbox_sends(stack, "Order 81 ships today")
    assert received["recipients"] == ["ann@example.com"]
    assert received["body"] == "<p>Your order <b>81</b> ships today.</p>"
    assert "orders" in received["tags"]
    email = taifa_email(stack, str(received["provider_message_id"]))
    assert email["from_address"] == "shop@example.com"
    assert email["text"] == "Your order 81 ships today."
    assert email["headers"] == HEADERS


@pytest.mark.e2e
def test_a_django_project_sends_with_send_mail_and_hudhuds_settings_from_the_environment(
    stack: Stack,
) -> None:
    script = textwrap.dedent(
        """
        import json
        import django
        django.setup()
        from django.core.mail import EmailMessage, send_mail

        count = send_mail(
            "Welcome aboard", "Hello Ann", None, ["Ann <ann@example.com>"], html_message="<p>Hello Ann</p>"
        )
        message = EmailMessage("Your code", "Code 4831", "Shop <shop@example.com>", ["bob@example.com"])
        message.send()
        print(json.dumps({"count": count, "id": message.hudhud_id}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**stack.env, "DJANGO_SETTINGS_MODULE": SITE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["count"] == 1
    stack.wait_status([result["id"]], {"sent"})
    assert sandbox_sends(stack, "Your code")[0]["recipients"] == ["bob@example.com"]
    (welcome,) = wait_until(lambda: sandbox_sends(stack, "Welcome aboard"), timeout=60)
    assert welcome["recipients"] == ["ann@example.com"] and welcome["body"] == "<p>Hello Ann</p>"
    email = taifa_email(stack, str(welcome["provider_message_id"]))
    assert email["from_address"] == SENDER, "Django's unset DEFAULT_FROM_EMAIL gives way to TAIFA_FROM"
    assert email["text"] == "Hello Ann"
