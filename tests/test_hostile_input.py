"""Hostile input: what an attacker tries through the producer API, the command line and a
foreign `send_task` is refused naming the field, and nothing is recorded.

Headers that the message's own fields own, control and line-separator characters, path
separators and their look-alikes, bidirectional controls, `.`/`..` names, unbounded header
and tag lists, forged `hudhud-` tags, one send past its provider's batch size, and task ids
that cannot be message ids.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hudhud.config import Settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.errors import InvalidInput
from hudhud.worker.producer import messages, validation
from hudhud.worker.producer.api import Hudhud
from tests.bad_input import SETTINGS, good_fields
from tests.bad_input import settings as make_settings
from tests.helpers import RedisServer
from tests.stack import Stack, running_stack, wait_until
from tests.test_bad_input import cli_env, invoke, keys, one_error_line, run_cli

FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
EMAIL = {"to": ["person@example.com"], "subject": "Hello", "text": "Hi there"}
CFG = make_settings("redis://unused:1/0")

# Headers that come from the message's own fields, its MIME structure or the provider.
OWNED_HEADERS = [
    "From",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Reply-To",
    "Return-Path",
    "Sender",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "MIME-Version",
    "DKIM-Signature",
    "Message-ID",
    "Date",
    "Received",
    "Resent-From",
    "Authentication-Results",
    "ARC-Seal",
]
CUSTOM_HEADERS = [
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "X-Entity-Ref-ID",
    "Feedback-ID",
    "In-Reply-To",
    "References",
    "Precedence",
    "Auto-Submitted",
]
# Characters that end a line or control a terminal: C0 (tab and ESC too), DEL, C1 (NEL too),
# and the Unicode line and paragraph separators.
BAD_CHARS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029"]
SEPARATOR_LOOKALIKES = [
    "/",
    "\\",
    "\u2215",
    "\u2044",
    "\u29f8",
    "\u29f9",
    "\u2216",
    "\uff0f",
    "\uff3c",
    "\ufe68",
]
BIDI_CONTROLS = [chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]]
SAFE_TEXT = st.text(alphabet="abcdefgh ijkl-_0123456789", min_size=1, max_size=12).filter(str.strip)
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


def any_case(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    )


def b64(data: bytes = b"hello") -> str:
    return base64.b64encode(data).decode()


def attachment(name: str) -> dict[str, str]:
    return {"filename": name, "content_base64": b64(), "content_type": "text/plain"}


def build_field(fields: dict[str, Any], channel: str = "email", cfg: Settings = CFG) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        messages.build(channel, fields, cfg)
    return info.value


@pytest.fixture()
def producer(redis_server: RedisServer, redis_client: redis.Redis) -> Hudhud:
    cfg = make_settings(redis_server.url)
    return Hudhud(cfg, app=create_app(cfg))


def refused(producer: Hudhud, client: redis.Redis, channel: str, fields: dict[str, Any]) -> InvalidInput:
    """The send is refused with `InvalidInput` and Redis holds the keys it held before."""
    before = keys(client)
    with pytest.raises(InvalidInput) as info:
        producer.send(channel, fields)
    assert keys(client) == before, "a refused send left something in Redis"
    exc = info.value
    assert str(exc) == f"{exc.field}: {exc.message}"
    return exc


# --- headers ----------------------------------------------------------------------------
@settings(max_examples=120, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    name=st.sampled_from(OWNED_HEADERS).flatmap(any_case),
    value=SAFE_TEXT,
    as_pairs=st.booleans(),
)
def test_headers_the_message_owns_are_refused_in_any_case(
    producer: Hudhud, redis_client: redis.Redis, name: str, value: str, as_pairs: bool
) -> None:
    given_as = {"header": [f"{name}={value}"]} if as_pairs else {"headers": {"X-Ref": "1", name: value}}
    exc = refused(producer, redis_client, "email", {**EMAIL, **given_as})
    assert exc.field == f"headers.{name}"
    assert "X-*" in exc.message and "List-*" in exc.message, "the refusal says what is allowed"


@settings(max_examples=120, deadline=None)
@given(
    names=st.lists(
        st.one_of(
            st.sampled_from(CUSTOM_HEADERS).flatmap(any_case),
            st.from_regex(r"X-[A-Za-z0-9][A-Za-z0-9-]{0,20}", fullmatch=True),
        ),
        min_size=1,
        max_size=validation.MAX_HEADERS,
        unique_by=str.lower,
    ),
    value=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"])),
)
def test_custom_headers_a_sender_needs_pass_unchanged(names: list[str], value: str) -> None:
    wanted = {name: value[:200] for name in names}
    request = messages.build("email", {**EMAIL, "headers": wanted}, CFG)
    assert request.payload["headers"] == wanted


def test_a_good_custom_header_is_recorded(producer: Hudhud, redis_client: redis.Redis) -> None:
    wanted = {
        "List-Unsubscribe": "<https://example.com/u/81>, <mailto:u@example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Entity-Ref-ID": "receipt-81",
    }
    receipt = producer.send_email(["a@example.com"], "Receipt", text="Paid", headers=wanted)
    record = producer.ledger.get(receipt.id) or {}
    assert json.loads(record["payload"])["headers"] == wanted


@settings(max_examples=60, deadline=None)
@given(first=st.sampled_from(["X-Ref", "List-Id"]).flatmap(any_case), as_pairs=st.booleans())
def test_a_header_given_twice_in_any_case_is_refused(first: str, as_pairs: bool) -> None:
    second = first.swapcase()
    if as_pairs:
        fields = {**EMAIL, "header": [f"{first}=1"], "headers": {second: "2"}}
    else:
        fields = {**EMAIL, "header": [f"{first}=1", f"{second}=2"]}
    assert build_field(fields).field == f"headers.{second}"


# --- characters that break lines or control a terminal ----------------------------------
PLACES = {
    "subject": lambda bad: {"subject": bad},
    "headers.X-Ref": lambda bad: {"headers": {"X-Ref": bad}},
    "tags[0]": lambda bad: {"tags": [bad]},
    "attachments[0].filename": lambda bad: {"attachments": [attachment(bad + ".pdf")]},
    "campaign": lambda bad: {"campaign": bad},
}


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    place=st.sampled_from(sorted(PLACES)),
    char=st.sampled_from(BAD_CHARS),
    before=SAFE_TEXT,
    after=SAFE_TEXT,
)
def test_line_breaks_and_control_characters_are_refused_where_a_line_is_expected(
    producer: Hudhud, redis_client: redis.Redis, place: str, char: str, before: str, after: str
) -> None:
    bad = f"{before}{char}{after}"
    exc = refused(producer, redis_client, "email", {**EMAIL, **PLACES[place](bad)})
    assert exc.field == place, (place, repr(char), str(exc))
    if len(bad) >= 8:
        assert bad not in str(exc)


# --- attachment names -------------------------------------------------------------------
@st.composite
def misleading_name(draw: st.DrawFn) -> str:
    stem, ext = draw(WORD), draw(st.sampled_from(["pdf", "exe", "txt", "passwd"]))
    kind = draw(st.sampled_from(["separator", "bidi", "dots"]))
    if kind == "dots":
        dot = st.sampled_from([".", "\uff0e", "\u2024", "\ufe52"])
        return "".join(draw(st.lists(st.one_of(dot, st.just(" ")), min_size=1, max_size=4))) + draw(dot)
    odd = draw(st.sampled_from(SEPARATOR_LOOKALIKES if kind == "separator" else BIDI_CONTROLS))
    name = f"{stem}.{ext}"
    at = draw(st.integers(0, len(name)))
    return name[:at] + odd + name[at:]


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(name=misleading_name(), index=st.integers(0, 2))
def test_file_names_that_mislead_are_refused(
    producer: Hudhud, redis_client: redis.Redis, name: str, index: int
) -> None:
    files = [attachment(f"ok-{i}.txt") for i in range(index)] + [attachment(name)]
    exc = refused(producer, redis_client, "email", {**EMAIL, "attachments": files})
    assert exc.field == f"attachments[{index}].filename", (repr(name), str(exc))


@settings(max_examples=200, deadline=None)
@given(
    stem=st.text(alphabet=st.characters(categories=["L", "Nd"]), min_size=1, max_size=30),
    ext=st.sampled_from(["pdf", "docx", "png", "tar.gz"]),
)
def test_file_names_in_any_script_pass(stem: str, ext: str) -> None:
    name = f"{stem} (1).{ext}"
    request = messages.build("email", {**EMAIL, "attachments": [attachment(name)]}, CFG)
    assert request.payload["attachments"][0]["filename"] == name


# --- counts and sizes -------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_OK)
@given(count=st.integers(validation.MAX_HEADERS + 1, 400), as_pairs=st.booleans())
def test_too_many_headers_are_refused(
    producer: Hudhud, redis_client: redis.Redis, count: int, as_pairs: bool
) -> None:
    names = [f"X-H{i}" for i in range(count)]
    given_as = {"header": [f"{n}=v" for n in names]} if as_pairs else {"headers": dict.fromkeys(names, "v")}
    assert refused(producer, redis_client, "email", {**EMAIL, **given_as}).field == "headers"


@settings(max_examples=40, deadline=None)
@given(count=st.integers(17, validation.MAX_HEADERS), size=st.integers(990, validation.MAX_HEADER_VALUE))
def test_headers_too_large_together_are_refused(count: int, size: int) -> None:
    fields = {**EMAIL, "headers": {f"X-H{i}": "v" * size for i in range(count)}}
    exc = build_field(fields)
    assert exc.field == "headers" and "together" in exc.message


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_OK)
@given(count=st.integers(validation.MAX_TAGS + 1, 500))
def test_too_many_tags_are_refused(producer: Hudhud, redis_client: redis.Redis, count: int) -> None:
    tags = [f"t{i}" for i in range(count)]
    assert refused(producer, redis_client, "email", {**EMAIL, "tags": tags}).field == "tags"


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    prefix=st.one_of(
        any_case("hudhud-"),
        st.just("\uff48\uff55\uff44\uff48\uff55\uff44-"),  # fullwidth: NFKC reads it as hudhud-
        st.just("HUDHUD\uff0d"),
    ),
    rest=st.one_of(st.just(""), WORD, st.just(str(uuid.uuid4()))),
    index=st.integers(0, 3),
)
def test_the_hudhud_tag_prefix_is_reserved(
    producer: Hudhud, redis_client: redis.Redis, prefix: str, rest: str, index: int
) -> None:
    tags = [f"own-{i}" for i in range(index)] + [prefix + rest]
    exc = refused(producer, redis_client, "email", {**EMAIL, "tags": tags})
    assert exc.field == f"tags[{index}]"


def test_tags_near_the_prefix_and_at_the_limits_pass() -> None:
    tags = ["hudhud", "hud-hud-1", "my-hudhud-1", "x" * validation.MAX_TAG]
    tags += [f"t{i}" for i in range(validation.MAX_TAGS - len(tags))]
    assert messages.build("email", {**EMAIL, "tags": tags}, CFG).payload["tags"] == tags
    names = {f"X-H{i}": "v" * 300 for i in range(validation.MAX_HEADERS)}
    assert len(messages.build("email", {**EMAIL, "headers": names}, CFG).payload["headers"]) == 50


def test_too_many_attachments_are_refused(producer: Hudhud, redis_client: redis.Redis) -> None:
    files = [attachment(f"{i}.txt") for i in range(validation.MAX_ATTACHMENTS + 1)]
    assert refused(producer, redis_client, "email", {**EMAIL, "attachments": files}).field == "attachments"


# --- recipients of one send -------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    channel=st.sampled_from(["sms", "voice"]),
    batch=st.integers(1, 40),
    extra=st.integers(1, 40),
)
def test_one_send_past_the_sms_batch_size_is_refused_pointing_to_campaigns(
    producer: Hudhud, redis_client: redis.Redis, channel: str, batch: int, extra: int
) -> None:
    cfg = producer.settings.model_copy(update={"sms_batch_size": batch})
    fields = {**good_fields(channel), "to": [f"9665{i:08d}" for i in range(batch + extra)]}
    exc = refused(Hudhud(cfg, app=producer.app), redis_client, channel, fields)
    assert exc.field == "to"
    assert "send_campaign" in exc.message and f"HUDHUD_SMS_BATCH_SIZE={batch}" in exc.message
    within = {**fields, "to": fields["to"][:batch]}
    assert messages.build(channel, within, cfg).payload["to"] == within["to"]


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 30),
    counts=st.tuples(st.integers(1, 30), st.integers(0, 30), st.integers(0, 30)),
)
def test_one_taifa_email_takes_at_most_a_batch_of_recipients_with_cc_and_bcc(
    batch: int, counts: tuple[int, int, int]
) -> None:
    cfg = Settings(HUDHUD_TAIFA_BATCH_SIZE=batch, **SETTINGS)
    lists = {
        name: [f"{name}{i}@example.com" for i in range(n)]
        for name, n in zip(("to", "cc", "bcc"), counts, strict=True)
    }
    fields = {**EMAIL, **{k: v for k, v in lists.items() if v}, "provider": "taifa"}
    if sum(counts) <= batch:
        assert messages.build("email", fields, cfg).payload["to"] == lists["to"]
        return
    exc = build_field(fields, cfg=cfg)
    running = 0
    for name, n in zip(("to", "cc", "bcc"), counts, strict=True):
        running += n
        if running > batch:
            assert exc.field == name
            break
    assert "send_campaign" in exc.message and "HUDHUD_TAIFA_BATCH_SIZE" in exc.message


def test_a_single_sms_to_ten_thousand_recipients_is_refused(
    producer: Hudhud, redis_client: redis.Redis
) -> None:
    numbers = [f"9665{i:08d}" for i in range(10_000)]
    exc = refused(producer, redis_client, "sms", {"to": numbers, "body": "sale"})
    assert exc.field == "to" and "send_campaign" in exc.message
    assert producer.send_sms(numbers[:1000], "sale").status == "queued", "a batch's worth still goes"


# --- every example seen in the attacker's trial -----------------------------------------
TRIAL_HEADERS = ["From", "To", "Subject", "Bcc", "Reply-To", "Return-Path", "Content-Type", "DKIM-Signature"]
SEEN: list[tuple[str, dict[str, Any], str]] = [
    *[("email", {"headers": {name: "x@example.com"}}, f"headers.{name}") for name in TRIAL_HEADERS],
    *[
        ("email", {"headers": {"X-Ref": f"a{c}Bcc: evil@x.com"}}, "headers.X-Ref")
        for c in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c")
    ],
    *[
        ("email", {"subject": f"Hello{c}Bcc: evil@x.com"}, "subject")
        for c in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c")
    ],
    *[
        ("email", {"attachments": [attachment(name)]}, "attachments[0].filename")
        for name in (
            "..",
            ".",
            "..\u2215..\u2215etc\u2215passwd",
            "\uff0e\uff0e\uff0fetc\uff0fpasswd",
            "invoice\u202egpj.exe",
            "\x1b[31mred.pdf",
            "a\tb.pdf",
        )
    ],
    ("email", {"headers": {f"X-H{i}": "v" * 900 for i in range(5000)}}, "headers"),
    ("email", {"tags": [f"t{i}" for i in range(20_000)]}, "tags"),
    ("email", {"tags": ["hudhud-6f1c2d9e-0000-4000-8000-000000000000"]}, "tags[0]"),
    ("sms", {"to": [f"9665{i:08d}" for i in range(10_000)]}, "to"),
]


@pytest.mark.parametrize(("channel", "change", "field"), SEEN, ids=[s[2] for s in SEEN])
def test_every_example_of_the_trial_is_refused_naming_its_field(
    producer: Hudhud, redis_client: redis.Redis, channel: str, change: dict[str, Any], field: str
) -> None:
    exc = refused(producer, redis_client, channel, {**good_fields(channel), **change})
    assert exc.field == field, str(exc)[:300]


def test_the_typed_email_call_refuses_them_too(producer: Hudhud, redis_client: redis.Redis) -> None:
    before = keys(redis_client)
    for kwargs, field in [
        ({"headers": {"From": "ceo@bank.example"}}, "headers.From"),
        ({"headers": {"bcc": "evil@x.com"}}, "headers.bcc"),
        ({"tags": ["HudHud-other"]}, "tags[0]"),
        ({"attachments": [attachment("invoice\u202egpj.exe")]}, "attachments[0].filename"),
    ]:
        with pytest.raises(InvalidInput) as info:
            producer.send_email(["a@example.com"], "Hi", text="t", **kwargs)
        assert info.value.field == field
    with pytest.raises(InvalidInput) as info:
        producer.send_email(["a@example.com"], "Hi\u2028Bcc: evil@x.com", text="t")
    assert info.value.field == "subject"
    assert keys(redis_client) == before


# --- the command line -------------------------------------------------------------------
EMAIL_ARGS = ["send", "email", "--to", "a@example.com", "--subject", "Hi", "--text", "t"]


def cli_refusal(redis_server: RedisServer, client: redis.Redis, args: list[str], as_json: bool) -> str:
    """The field a refused `send` names (exit 2, one line, nothing recorded)."""
    before = keys(client)
    result = invoke(args + (["--json"] if as_json else []), cli_env(redis_server))
    assert result.exit_code == 2, (result.output, result.exception)
    assert keys(client) == before
    if as_json:
        return str(json.loads(result.stdout)["field"])
    return one_error_line(result.stderr).partition(": ")[0]


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(name=st.sampled_from(OWNED_HEADERS).flatmap(any_case), as_json=st.booleans())
def test_cli_refuses_headers_the_message_owns(
    redis_server: RedisServer, redis_client: redis.Redis, name: str, as_json: bool
) -> None:
    args = [*EMAIL_ARGS, "--header", "X-Ref=1", "--header", f"{name}=ceo@bank.example"]
    assert cli_refusal(redis_server, redis_client, args, as_json) == f"headers.{name}"


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    option=st.sampled_from(["--subject", "--header", "--tag", "--campaign"]),
    char=st.sampled_from(BAD_CHARS),
    as_json=st.booleans(),
)
def test_cli_refuses_line_breaks_and_control_characters(
    redis_server: RedisServer, redis_client: redis.Redis, option: str, char: str, as_json: bool
) -> None:
    if char == "\x00":
        char = "\x01"  # a command line cannot carry NUL
    value = {"--header": f"X-Ref=a{char}b"}.get(option, f"a{char}b")
    args = [*EMAIL_ARGS, option, value]
    expected = {"--subject": "subject", "--header": "headers.X-Ref", "--tag": "tags[0]"}.get(
        option, "campaign"
    )
    assert cli_refusal(redis_server, redis_client, args, as_json) == expected


@pytest.mark.parametrize(
    "name",
    [
        "..\u2215..\u2215etc\u2215passwd",
        "\uff0e\uff0e\uff0fetc\uff0fpasswd",
        "invoice\u202egpj.exe",
        "\x1b[31mred.txt",
        "a\tb.txt",
        "\uff0e\uff0e",
        "a\u2044b.pdf",
    ],
)
def test_cli_refuses_attached_files_whose_names_mislead(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"hello")
    args = [*EMAIL_ARGS, "--attach", str(path)]
    assert cli_refusal(redis_server, redis_client, args, as_json=True) == "attachments[0].filename"


def test_cli_refuses_many_headers_tags_and_the_hudhud_tag(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    many_headers = [a for i in range(5000) for a in ("--header", f"X-H{i}={'v' * 900}")]
    assert cli_refusal(redis_server, redis_client, [*EMAIL_ARGS, *many_headers], True) == "headers"
    many_tags = [a for i in range(validation.MAX_TAGS + 1) for a in ("--tag", f"t{i}")]
    assert cli_refusal(redis_server, redis_client, [*EMAIL_ARGS, *many_tags], True) == "tags"
    assert cli_refusal(redis_server, redis_client, [*EMAIL_ARGS, "--tag", "hudhud-x"], True) == "tags[0]"
    twice = [*EMAIL_ARGS, "--header", "X-Ref=1", "--header", "x-ref=2"]
    assert cli_refusal(redis_server, redis_client, twice, True) == "headers.x-ref"


def test_cli_send_with_many_sms_recipients_points_to_campaigns(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    args = ["send", "sms", "--body", "sale"]
    args += [a for i in range(1001) for a in ("--to", f"9665{i:08d}")]
    before = keys(redis_client)
    result = invoke(args, cli_env(redis_server))
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith("to: ") and "send_campaign" in line
    assert keys(redis_client) == before


@pytest.fixture()
def process_env(redis_server: RedisServer) -> Iterator[dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))}
    yield {**base, **cli_env(redis_server), "PYTHONIOENCODING": "utf-8:strict"}


def test_the_command_of_the_trial_is_refused_as_a_process(
    process_env: dict[str, str], redis_client: redis.Redis
) -> None:
    before = keys(redis_client)
    result = run_cli(
        process_env, *EMAIL_ARGS, "--header", "From=ceo@bank.example", "--header", "Bcc=evil@x.com"
    )
    assert result.returncode == 2, result.stderr
    line = one_error_line(result.stderr.decode())
    assert line.startswith("headers.From: ") and "bank.example" not in line
    assert keys(redis_client) == before


# --- task ids as message ids ------------------------------------------------------------
@settings(max_examples=500, deadline=None)
@given(task_id=st.one_of(st.text(max_size=100), st.from_regex(r"[A-Za-z0-9._:|{} -]{1,95}", fullmatch=True)))
def test_a_task_id_is_a_message_id_only_within_its_character_set_and_length(task_id: str) -> None:
    safe = 1 <= len(task_id) <= validation.MAX_MESSAGE_ID and all(
        c.isascii() and (c.isalnum() or c in "._:-") for c in task_id
    )
    try:
        assert validation.message_id(task_id, "task id") == task_id
    except InvalidInput as exc:
        assert not safe and str(exc) == "task id: must be 1 to 90 of A-Z a-z 0-9 . _ : -"
    else:
        assert safe


def test_uuids_and_the_reconcile_tag_of_the_longest_id_fit() -> None:
    for _ in range(100):
        validation.message_id(str(uuid.uuid4()))
    longest = "x" * validation.MAX_MESSAGE_ID
    assert validation.tags([f"hudhud-{longest}"], "tags") == [f"hudhud-{longest}"]


UNSAFE_IDS = ["a|b", "a b", "{a}b", "ü-1", "x" * (validation.MAX_MESSAGE_ID + 1), "a\nb"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("hostile"), concurrency=4, beat=False) as made:
        yield made


def discarded(stack: Stack) -> int:
    return stack.log("w1").read_text(errors="replace").count("was discarded and nothing recorded")


def holds(stack: Stack, fragment: str) -> bool:
    """Whether any key name or string value in Redis contains `fragment`."""
    for name in stack.redis.scan_iter(count=1000):
        if fragment.encode() in name:
            return True
        if stack.redis.type(name) == b"string" and fragment.encode() in (stack.redis.get(name) or b""):
            return True
    return False


@pytest.mark.e2e
def test_a_foreign_task_whose_id_cannot_be_a_message_id_is_discarded_and_breaks_nothing(
    stack: Stack,
) -> None:
    key = f"hostile-{uuid.uuid4()}"
    fields = {**good_fields("sms", 7), "key": key}
    seen = discarded(stack)
    for task_id in UNSAFE_IDS:
        stack.app.send_task("hudhud.send_sms", kwargs=fields, task_id=task_id)
    # Wait until the worker took them all: either logged as discarded or (before the fix) recorded.
    wait_until(
        lambda: (
            discarded(stack) - seen >= len(UNSAFE_IDS)
            or all(stack.redis.exists(f"hudhud:m:{i}") for i in UNSAFE_IDS)
        ),
        timeout=30,
    )
    for task_id in UNSAFE_IDS:
        assert not stack.redis.exists(f"hudhud:m:{task_id}"), f"a record under {task_id!r}"
    assert not holds(stack, "a|b"), "the unsafe id reached a key or an idempotency entry"
    assert stack.procs["w1"].poll() is None, "the worker must stay up"
    # The key is free: the producer's send with it is a new message, delivered.
    receipt = stack.hudhud.send("sms", fields)
    assert not receipt.duplicate
    stack.wait_status([receipt.id], {"sent", "delivered"}, timeout=30)
    again = stack.hudhud.send("sms", fields)
    assert again.id == receipt.id and again.duplicate


@pytest.mark.e2e
def test_a_foreign_task_with_a_safe_custom_id_is_recorded_and_sent_under_it(stack: Stack) -> None:
    task_id = f"order:{int(time.time())}.a_b-{uuid.uuid4().hex[:8]}"
    stack.app.send_task("hudhud.send_sms", kwargs=good_fields("sms", 8), task_id=task_id)
    stack.wait_status([task_id], {"sent", "delivered"}, timeout=30)


@pytest.mark.e2e
def test_a_foreign_email_with_owned_headers_or_a_forged_tag_ends_failed_and_sends_nothing(
    stack: Stack,
) -> None:
    sent_before = len(stack.sandbox.sends())
    cases = {
        "headers.From": {"headers": {"From": "ceo@bank.example", "Bcc": "evil@x.com"}},
        "tags[0]": {"tags": ["hudhud-6f1c2d9e-0000-4000-8000-000000000000"]},
        "subject": {"subject": "Hi\u2028Bcc: evil@x.com"},
        "attachments[0].filename": {"attachments": [attachment("invoice\u202egpj.exe")]},
    }
    ids = {
        str(
            stack.app.send_task("hudhud.send_email", kwargs={**EMAIL, "provider": "taifa", **change}).id
        ): field
        for field, change in cases.items()
    }
    stack.wait_status(list(ids), {"failed"}, timeout=30)
    for task_id, field in ids.items():
        assert str(stack.hudhud.status(task_id)["error"]).startswith(f"{field}: ")
    assert len(stack.sandbox.sends()) == sent_before, "nothing may reach Taifa"
