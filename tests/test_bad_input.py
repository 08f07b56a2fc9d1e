"""Bad input at scale through the Python producer API and the command line.

Every bad send is refused with `InvalidInput` (the CLI: exit 2 and one line) naming the
field, the error text carries no drawn value, and Redis holds exactly the keys it held
before: no record, no idempotency key, no Celery message.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hudhud.config.settings import reset_settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ops import cli
from hudhud.worker.producer import messages
from hudhud.worker.producer.api import Hudhud
from tests.bad_input import (
    CHANNELS,
    SETTINGS,
    BadSend,
    bad_at_text,
    bad_email_text,
    bad_key_text,
    bad_number_text,
    bad_send,
    bad_sends,
    bad_url_text,
    blank,
    good_fields,
    multi_line,
    not_unicode,
    too_long,
)
from tests.bad_input import settings as make_settings
from tests.helpers import RedisServer

FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def keys(client: redis.Redis) -> set[bytes]:
    return set(client.keys("*"))


@pytest.fixture()
def producer(redis_server: RedisServer, redis_client: redis.Redis) -> Hudhud:
    cfg = make_settings(redis_server.url)
    return Hudhud(cfg, app=create_app(cfg))


def refused(call: Any, *args: Any, **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        call(*args, **kwargs)
    return info.value


def check_refusal(bad: BadSend, exc: InvalidInput) -> None:
    assert bad.names(exc.field), (exc.field, bad.blame, bad.fields)
    assert str(exc) == f"{exc.field}: {exc.message}"
    assert not bad.leaks(str(exc)), "the error text repeats the value"
    str(exc).encode("utf-8")  # always printable and storable


# --- the Python producer API --------------------------------------------------------------
def test_a_good_send_leaves_a_record_and_a_message_that_the_checks_below_would_see(
    producer: Hudhud, redis_client: redis.Redis
) -> None:
    before = keys(redis_client)
    receipt = producer.send("sms", {**good_fields("sms"), "key": "k-1"})
    added = {k.decode() for k in keys(redis_client) - before}
    assert f"hudhud:m:{receipt.id}" in added and "hudhud:idem:k-1" in added
    assert "sms" in added, "the delivery task went to the broker (the same Redis)"


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(bad=bad_sends(python=True))
def test_producer_send_refuses_one_bad_field_naming_it_and_records_nothing(
    producer: Hudhud, redis_client: redis.Redis, bad: BadSend
) -> None:
    before = keys(redis_client)
    exc = refused(producer.send, bad.channel, bad.fields)
    check_refusal(bad, exc)
    assert keys(redis_client) == before


TYPED_FIELDS = {
    "sms": {"to", "body", "sender", "at", "key"},
    "voice": {"to", "audio_url", "caller_id", "at", "key"},
    "email": messages.EMAIL_FIELDS - {"header", "tag", "from_"},
}


def typed_call(producer: Hudhud, bad: BadSend) -> None:
    fields = dict(bad.fields)
    if bad.channel == "sms":
        producer.send_sms(fields.pop("to", None), fields.pop("body", None), **fields)
    elif bad.channel == "voice":
        producer.send_voice(fields.pop("to", None), fields.pop("audio_url", None), **fields)
    else:
        if "from" in fields:
            fields["from_"] = fields.pop("from")
        producer.send_email(fields.pop("to", None), fields.pop("subject", None), **fields)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(bad=bad_sends(python=True).filter(lambda b: set(b.fields) <= TYPED_FIELDS[b.channel]))
def test_typed_producer_methods_refuse_bad_fields_the_same_way(
    producer: Hudhud, redis_client: redis.Redis, bad: BadSend
) -> None:
    before = keys(redis_client)
    exc = refused(typed_call, producer, bad)
    check_refusal(bad, exc)
    assert keys(redis_client) == before


def test_huge_bodies_and_attachments_are_refused_without_a_trace(
    producer: Hudhud, redis_client: redis.Redis
) -> None:
    before = keys(redis_client)
    one_mib = "x" * (1024 * 1024)
    over = base64.b64encode(b"\0" * (24 * 1024 * 1024 + 3)).decode()
    half = base64.b64encode(b"\0" * (13 * 1024 * 1024)).decode()
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("sms", {"body": "x" * 10_001}, "body"),
        ("email", {"text": one_mib * 10 + "x"}, "text"),
        ("email", {"html": one_mib * 10 + "x"}, "html"),
        ("email", {"attachments": [{"filename": "big.bin", "content_base64": over}]}, "attachments[0]"),
        (
            "email",
            {"attachments": [{"filename": f"{i}.bin", "content_base64": half} for i in range(2)]},
            "attachments",
        ),
        ("sms", {"to": ["966500000000"] * 100_001}, "to"),
    ]
    for channel, change, field in cases:
        exc = refused(producer.send, channel, {**good_fields(channel), **change})
        assert exc.field == field or exc.field.startswith(field + "."), (field, exc.field)
    assert keys(redis_client) == before


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    channel=st.sampled_from(CHANNELS),
    data=st.data(),
    count=st.integers(1, 6),
)
def test_send_many_with_one_bad_item_records_none_of_them(
    producer: Hudhud, redis_client: redis.Redis, channel: str, data: st.DataObject, count: int
) -> None:
    bad = data.draw(bad_send(channel, python=True))
    index = data.draw(st.integers(0, count))
    items: list[dict[str, Any]] = [good_fields(channel, 1000 + i) for i in range(count)]
    items.insert(index, bad.fields)
    before = keys(redis_client)
    exc = refused(producer.send_many, channel, items)
    reported = exc.field.removeprefix(f"items[{index}].")
    assert bad.names(reported), (exc.field, bad.blame)
    assert keys(redis_client) == before, "the good items must not be recorded either"


@settings(max_examples=200, deadline=None)
@given(channel=st.sampled_from(CHANNELS), data=st.data(), count=st.integers(0, 5))
def test_build_many_names_the_bad_item_and_its_field(channel: str, data: st.DataObject, count: int) -> None:
    bad = data.draw(bad_send(channel, python=True))
    index = data.draw(st.integers(0, count))
    items: list[Any] = [good_fields(channel, i) for i in range(count)]
    items.insert(index, bad.fields)
    exc = refused(messages.build_many, channel, items, make_settings("redis://unused:1/0"))
    prefix = f"items[{index}]."
    assert exc.field.startswith(prefix) and bad.names(exc.field[len(prefix) :]), exc.field


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([good_fields("sms"), "966500000000"], "items[1]"),
        ([good_fields("sms"), None], "items[1]"),
        ("966500000000", "items"),
        ({"to": ["966500000000"], "body": "x"}, "items"),
    ],
)
def test_build_many_refuses_items_that_are_not_objects(items: Any, field: str) -> None:
    exc = refused(messages.build_many, "sms", items, make_settings("redis://unused:1/0"))
    assert exc.field == field


def test_unknown_channel_is_refused_before_anything(producer: Hudhud, redis_client: redis.Redis) -> None:
    before = keys(redis_client)
    assert refused(producer.send, "fax", good_fields("sms")).field == "channel"
    assert refused(producer.send_many, "fax", [good_fields("sms")]).field.endswith("channel")
    assert keys(redis_client) == before


# --- the command line, in process ---------------------------------------------------------
@st.composite
def cli_case(draw: st.DrawFn) -> tuple[list[str], tuple[str, ...]]:
    """`send` arguments with one bad value (strings only, as a shell passes them)."""
    channel = draw(st.sampled_from(CHANNELS))
    if channel == "sms":
        base = {"--to": "966500000000", "--body": "Your code is 4831"}
        bad = {
            "--to": st.one_of(bad_number_text(), st.just("")),
            "--body": st.one_of(blank, not_unicode, too_long(10_000), st.just("")),
            "--sender": st.one_of(blank, multi_line, too_long(64), not_unicode, st.just("HU\x01D")),
        }
    elif channel == "voice":
        base = {"--to": "966500000000", "--audio-url": "https://cdn.example.com/hello.mp3"}
        bad = {
            "--to": bad_number_text(),
            "--audio-url": st.one_of(bad_url_text(), st.just("")),
            "--caller-id": bad_number_text(),
        }
    else:
        base = {"--to": "person@example.com", "--subject": "Hello", "--text": "Hi there"}
        bad = {
            "--to": bad_email_text(),
            "--subject": st.one_of(blank, multi_line, too_long(998), not_unicode, st.just("")),
            "--text": st.one_of(blank, not_unicode),
            "--from": bad_email_text(),
            "--cc": bad_email_text(),
            "--bcc": bad_email_text(),
            "--reply-to": bad_email_text(),
            "--tag": st.one_of(multi_line, too_long(100), not_unicode, blank),
            "--header": st.one_of(
                st.text(alphabet="abcXY- ", min_size=1, max_size=8),
                st.sampled_from(["X A=v", "=v", "X-A=a\nb"]),
            ),
            "--campaign": st.one_of(blank, multi_line, too_long(100), not_unicode),
        }
    bad |= {"--at": bad_at_text(), "--key": bad_key_text()}
    option = draw(st.sampled_from(sorted(bad)))
    value = draw(bad[option])
    args = ["send", channel]
    for name, good in {**base, option: value}.items():
        args += [name, good]
    field = option.removeprefix("--").replace("-", "_")
    blame = {"tag": ("tags",), "header": ("header", "headers")}.get(field, (field,))
    return args, blame


def cli_env(redis_server: RedisServer) -> dict[str, str]:
    return {"HUDHUD_REDIS_URL": redis_server.url, **SETTINGS}


def invoke(args: list[str], env: dict[str, str]) -> Any:
    """Run the CLI in this process with `env` (the cached settings are read afresh)."""
    reset_settings()
    try:
        return CliRunner().invoke(cli.main, args, env=env)
    finally:
        reset_settings()


def one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0].removeprefix("error: ")


def names(blame: tuple[str, ...], reported: str) -> bool:
    return BadSend("sms", {}, blame).names(reported)


@settings(max_examples=120, deadline=None, suppress_health_check=FIXTURE_OK)
@given(case=cli_case(), as_json=st.booleans())
def test_cli_send_with_a_bad_value_exits_2_with_one_line_naming_the_field(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    case: tuple[list[str], tuple[str, ...]],
    as_json: bool,
) -> None:
    args, blame = case
    before = keys(redis_client)
    result = invoke(args + (["--json"] if as_json else []), cli_env(redis_server))
    assert result.exit_code == 2, (args, result.output, result.exception)
    if as_json:
        assert result.stderr == ""
        reply = json.loads(result.stdout)
        assert names(blame, reply["field"]) and reply["error"].startswith(reply["field"] + ": ")
    else:
        assert result.stdout == ""
        line = one_error_line(result.stderr)
        assert names(blame, line.partition(": ")[0]), (blame, line)
    assert keys(redis_client) == before


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["send", "sms", "--body", "x"], "to"),
        (["send", "sms", "--to", "966500000000"], "body"),
        (["send", "voice", "--to", "966500000000"], "audio_url"),
        (["send", "email", "--to", "a@example.com", "--text", "t"], "subject"),
        (["send", "email", "--to", "a@example.com", "--subject", "s"], "text"),
        (["send", "email", "--to", "a@example.com", "--subject", "s", "--text", "t", "--html", "h"], "text"),
        (
            ["send", "email", "--to", "a@example.com", "--subject", "s", "--text", "t", "--provider", "smtp"],
            "provider",
        ),
        (["send", "sms", "--to", "966500000000", "--body", "x", "--colour", "red"], "colour"),
        (["send", "sms", "--to", "966500000000", "--body", "x", "extra"], "args"),
        (["send", "sms", "--to", "966500000000", "--body"], "body"),
        (
            [
                "send",
                "email",
                "--to",
                "a@example.com",
                "--subject",
                "s",
                "--text",
                "t",
                "--attach",
                "/nonexistent/x",
            ],
            "attach",
        ),
        (
            ["send", "email", "--to", "a@example.com", "--subject", "s", "--text", "t", "--attach", "/"],
            "attach",
        ),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_cli_usage_errors_are_one_line_naming_the_field(
    redis_server: RedisServer, redis_client: redis.Redis, args: list[str], field: str, as_json: bool
) -> None:
    before = keys(redis_client)
    result = invoke([*args[:2], "--json", *args[2:]] if as_json else args, cli_env(redis_server))
    assert result.exit_code == 2, result.output
    if as_json:
        assert json.loads(result.stdout)["field"] == field and result.stderr == ""
    else:
        line = one_error_line(result.stderr)
        assert line.startswith(f"{field}: "), line
        assert "nonexistent" not in line, "file names are not echoed"
    assert keys(redis_client) == before


# --- the command line, as a process ---------------------------------------------------------
@pytest.fixture()
def process_env(redis_server: RedisServer) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))}
    yield {**base, **cli_env(redis_server), "PYTHONIOENCODING": "utf-8:strict"}


def run_cli(env: dict[str, str], *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hudhud.worker.ops.cli", *args], env=env, capture_output=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ([b"send", b"sms", b"--to", b"966500000000", b"--body", b"caf\xe9 \xff"], "body"),
        ([b"send", b"sms", b"--to", b"9665\xff0000000", b"--body", b"x"], "to[0]"),
        (
            [
                b"send",
                b"email",
                b"--to",
                b"a@example.com",
                b"--subject",
                b"s",
                b"--text",
                b"t",
                b"--header",
                b"X-\xff=v",
            ],
            "headers",
        ),
        ([b"send", b"voice", b"--to", b"966500000000", b"--audio-url", b"https://x/\xfe.mp3"], "audio_url"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_cli_process_refuses_bytes_that_are_not_utf8_naming_the_field(
    process_env: dict[str, str], redis_client: redis.Redis, args: list[bytes], field: str, as_json: bool
) -> None:
    before = keys(redis_client)
    result = run_cli(process_env, *args, *([b"--json"] if as_json else []))
    assert result.returncode == 2, result.stderr
    if as_json:
        assert json.loads(result.stdout)["field"] == field and result.stderr == b""
    else:
        assert result.stdout == b""
        line = one_error_line(result.stderr.decode("utf-8"))
        assert line.startswith(f"{field}: "), line
    assert keys(redis_client) == before


def test_cli_process_refuses_an_attachment_over_the_limit_without_reading_it(
    process_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    big = tmp_path / "customer-passport.bin"
    with big.open("wb") as handle:
        handle.truncate(24 * 1024 * 1024 + 1)
    before = keys(redis_client)
    result = run_cli(
        process_env,
        "send",
        "email",
        "--to",
        "a@example.com",
        "--subject",
        "s",
        "--text",
        "t",
        "--attach",
        str(big),
    )
    assert result.returncode == 2
    line = one_error_line(result.stderr.decode())
    assert line.startswith("attach: ") and "passport" not in line
    assert keys(redis_client) == before
