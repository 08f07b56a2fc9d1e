"""The one redaction module: URLs, a provider's words and data, task arguments, Celery's log
lines and queue items set aside keep no secret and no personal data."""

from __future__ import annotations

import json
import logging

import pytest
from celery.worker.consumer import consumer

from hudhud.worker import redaction
from hudhud.worker.redaction import NO_SECRETS, Redactor, argument_shape, mask_url, scrubbed

NUMBER = "966512340987"
ADDRESS = "someone@example.com"
TOKEN = "tok-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:s3cret@redis.example.com:6380/2", "rediss://user:***@redis.example.com:6380/2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_a_urls_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_providers_words_lose_its_token_addresses_and_numbers() -> None:
    words = f"token {TOKEN} refused for {ADDRESS} and +{NUMBER}; code 4831 at v1.2"
    assert Redactor((TOKEN,))(words) == "token *** refused for <address> and <number>; code 4831 at v1.2"
    assert TOKEN in NO_SECRETS(words), "a redactor knows only the secrets it is given"


def test_provider_data_is_scrubbed_at_every_depth() -> None:
    metadata = {
        "reason": f"550 mailbox {ADDRESS} unknown",
        "attempts": 3,
        "hops": [{"to": f"+{NUMBER}", "ok": False}, "relay.example.net"],
        "input": "an echoed value",
    }
    assert scrubbed(metadata, drop={"input"}) == {
        "reason": "550 mailbox <address> unknown",
        "attempts": 3,
        "hops": [{"to": "<number>", "ok": False}, "relay.example.net"],
    }


def test_scrubbing_without_a_redactor_only_drops_the_echoing_keys() -> None:
    reply = {"detail": [{"loc": ["body", "to"], "input": ADDRESS, "ctx": {"x": 1}, "msg": ADDRESS}]}
    assert scrubbed(reply, drop={"input", "ctx"}, redact=None) == {
        "detail": [{"loc": ["body", "to"], "msg": ADDRESS}]
    }


def test_task_arguments_show_their_shape_never_their_values() -> None:
    assert argument_shape({"to": [NUMBER], "body": "code 4831"}) == "{to: …, body: …}"
    assert argument_shape([NUMBER, "code 4831"]) == "(2 args)"
    assert argument_shape(NUMBER) == "…"


def record_of(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(redaction.CONSUMER_LOGGER, logging.ERROR, __file__, 1, msg, args, None)


def test_celerys_line_about_an_unregistered_task_names_the_task_only() -> None:
    body = f"{{'to': ['{NUMBER}'], 'body': 'secret 5521'}}"
    record = record_of(consumer.UNKNOWN_TASK_ERROR, "'hudhud.send_smss'", body, {"kwargsrepr": body}, "raw")
    assert redaction.MessageContentFilter().filter(record)
    line = record.getMessage()
    assert line.startswith("Received unregistered task of type 'hudhud.send_smss'; the message was discarded")
    assert NUMBER not in line and "secret 5521" not in line


def test_celerys_line_about_an_undecodable_body_names_the_fault_only() -> None:
    record = record_of(consumer.MESSAGE_DECODE_ERROR, ValueError(NUMBER), "application/json", NUMBER)
    redaction.MessageContentFilter().filter(record)
    assert "ValueError" in record.getMessage() and NUMBER not in record.getMessage()


def test_other_log_lines_pass_unchanged() -> None:
    record = record_of("message %s sent", "abc")
    assert redaction.MessageContentFilter().filter(record) and record.getMessage() == "message abc sent"


def test_a_queue_item_set_aside_keeps_its_name_id_and_digest_only() -> None:
    item = json.dumps({"headers": {"task": "hudhud.send_sms", "id": "x-1"}, "body": f"{NUMBER} {ADDRESS}"})
    summary = json.loads(redaction.set_aside_summary(item, "Error", 1_800_000_000.0))
    assert summary["task"] == "hudhud.send_sms" and summary["id"] == "x-1"
    assert summary["bytes"] == len(item) and len(summary["sha256"]) == 16
    assert NUMBER not in json.dumps(summary) and ADDRESS not in json.dumps(summary)
