"""What a new user meets in the first hour, and what each message tells them to do: a Redis
that cannot be reached (from another folder), a bad setting, a scheduled time too far ahead,
a recipient a campaign does not have, a Flower with no password, a beat log that fills the
screen. Real redis-server and real `hudhud` programs; the pure message builders directly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from hudhud.config import Settings
from hudhud.config.settings import _invalid
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ops import processes
from hudhud.worker.producer.api import Hudhud, NotARecipient, NotFound
from hudhud.worker.producer.messages import MAX_AHEAD
from hudhud.worker.producer.validation import example_time
from tests.helpers import RedisServer, free_port
from tests.stack import FAST_BEAT
from tests.test_cli_ops import clean_env

ROOT = Path(__file__).resolve().parents[1]


def hudhud_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hudhud.worker.ops.cli", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- a Redis that cannot be reached -----------------------------------------------------


def test_unreachable_redis_is_named_with_its_password_masked_and_where_it_was_read(tmp_path: Path) -> None:
    closed = free_port()
    (tmp_path / ".env").write_text(f"HUDHUD_REDIS_URL=redis://:s3cret-pw@127.0.0.1:{closed}/0\n")
    run = hudhud_cli("status", "some-id", cwd=tmp_path)
    assert run.returncode == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{closed}/0 (ConnectionError)" in run.stderr
    assert f"HUDHUD_REDIS_URL is read from .env in the current folder ({tmp_path})" in run.stderr
    assert "s3cret-pw" not in run.stderr and "Traceback" not in run.stderr

    (tmp_path / ".hudhud").mkdir()
    (tmp_path / ".hudhud" / "dev.env").write_text(f"HUDHUD_REDIS_URL=redis://127.0.0.1:{closed}/1\n")
    run = hudhud_cli("cancel", "some-id", "--json", cwd=tmp_path)
    assert f"redis://127.0.0.1:{closed}/1" in run.stdout and "read from .hudhud/dev.env" in run.stdout

    run = hudhud_cli("status", "x", cwd=tmp_path, HUDHUD_REDIS_URL=f"redis://127.0.0.1:{closed}/2")
    assert f"redis://127.0.0.1:{closed}/2" in run.stderr and "set in the environment" in run.stderr


def test_a_default_redis_url_says_where_settings_are_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hudhud.worker.ops.cli import _origin

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUDHUD_REDIS_URL", raising=False)
    told = _origin("HUDHUD_REDIS_URL")
    assert "neither in the environment nor in .env or .hudhud/dev.env" in told
    assert f"current folder ({tmp_path})" in told and "its default" in told


# --- a bad setting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "told"),
    [
        ("HUDHUD_EMAIL_PROVIDER", "sendgrid", "'sendgrid' given; allowed: one of taifa, taqnyat"),
        ("HUDHUD_VISIBILITY_TIMEOUT", "5", "'5' given; allowed: a whole number, at least 10"),
        ("HUDHUD_BACKOFF_BASE", "fast", "'fast' given; allowed: a number, above 0"),
        ("HUDHUD_ALLOW_EVICTION", "maybe", "'maybe' given; allowed: 1 or 0"),
        ("HUDHUD_IN_DOUBT_BATCHES", "ask", "'ask' given; allowed: one of hold, resend, sent"),
        (
            "HUDHUD_REDIS_URL",
            "http://ops:pw-77@cache:6379/0",
            "'http://ops:***@cache:6379/0' given; allowed: a URL starting with redis://",
        ),
    ],
)
def test_a_bad_setting_says_what_is_allowed_and_what_was_given(
    tmp_path: Path, variable: str, value: str, told: str
) -> None:
    run = hudhud_cli("status", "some-id", cwd=tmp_path, **{variable: value})
    assert run.returncode == 1
    assert f"error: configuration: {variable} is invalid: {told}" in run.stderr
    assert "Traceback" not in run.stderr and "pw-77" not in run.stderr


@pytest.mark.parametrize("command", ["worker", "beat", "flower"])
def test_worker_beat_and_flower_tell_a_bad_setting_in_one_line(tmp_path: Path, command: str) -> None:
    run = hudhud_cli(command, cwd=tmp_path, HUDHUD_EMAIL_PROVIDER="sendgrid")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: configuration: HUDHUD_EMAIL_PROVIDER is invalid: "
        "'sendgrid' given; allowed: one of taifa, taqnyat"
    )


def test_a_secret_setting_is_never_echoed() -> None:
    told = _invalid("TAQNYAT_TOKEN", {"input": "tok-123", "msg": "bad"})
    assert "tok-123" not in told and "secret" in told


# --- a time too far ahead -----------------------------------------------------------------


def test_the_at_hint_and_the_readme_give_times_that_are_accepted(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = Settings(_env_file=None, HUDHUD_REDIS_URL=redis_server.url, TAQNYAT_SENDER="HUDHUD")
    runtime.reset()
    producer = Hudhud(settings, app=create_app(settings))
    too_far = (datetime.now(UTC) + MAX_AHEAD + timedelta(days=2)).isoformat()
    with pytest.raises(InvalidInput) as refused:
        producer.send_sms(["966500000000"], "x", at=too_far)
    assert str(refused.value).startswith(f"at: must be at most {MAX_AHEAD.days} days ahead (e.g. ")
    hinted = re.search(r"\(e\.g\. (\S+)\)", str(refused.value))
    assert hinted and hinted[1] == example_time()
    with pytest.raises(InvalidInput, match=r"needs an offset or Z \(e\.g\. "):
        producer.send_sms(["966500000000"], "x", at="2030-01-31T09:00")
    assert producer.send_sms(["966500000000"], "x", at=example_time()).status == "scheduled"
    readme = (ROOT / "README.md").read_text()
    assert f"at most {MAX_AHEAD.days} days ahead" in readme
    assert "2030-01-31" not in readme, "a fixed date is refused once it is more than a year away"


# --- a recipient the campaign does not have -----------------------------------------------


def test_recipient_status_tells_an_unknown_recipient_from_an_unknown_campaign(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = Settings(_env_file=None, HUDHUD_REDIS_URL=redis_server.url, TAQNYAT_SENDER="HUDHUD")
    runtime.reset()
    producer = Hudhud(settings, app=create_app(settings))
    at = example_time()
    receipt = producer.send_campaign("sms", {"to": ["966500000001", "966500000002"], "body": "x", "at": at})
    assert producer.recipient_status(receipt.id, "966500000002")["status"] == "scheduled"
    with pytest.raises(NotARecipient) as unknown:
        producer.recipient_status(receipt.id, "966500009999")
    assert str(unknown.value) == f"campaign {receipt.id} has no such recipient"
    assert "966500009999" not in str(unknown.value)
    assert isinstance(unknown.value, NotFound), "callers catching NotFound keep working"
    with pytest.raises(NotFound) as missing:
        producer.recipient_status("no-such-campaign", "966500000001")
    assert not isinstance(missing.value, NotARecipient)
    assert str(missing.value) == "no message with id no-such-campaign"
    single = producer.send_sms(["966500000001"], "x", at=at)
    with pytest.raises(NotARecipient, match="is a single message, not a campaign"):
        producer.recipient_status(single.id, "966500000001")


# --- Flower without a password ------------------------------------------------------------


def test_flower_refuses_every_address_without_a_password(tmp_path: Path) -> None:
    started = time.monotonic()
    run = hudhud_cli("flower", f"--port={free_port()}", "--address=0.0.0.0", cwd=tmp_path)
    assert run.returncode == processes.EX_CONFIG
    assert "FLOWER_BASIC_AUTH (user:password) is not set" in run.stderr and "0.0.0.0" in run.stderr
    assert time.monotonic() - started < 60
    refused = processes.flower_refusal
    assert refused(["--port=5555"], {}) is not None, "Flower's own default address is every address"
    assert refused(["--address=127.0.0.1"], {}) is None
    assert refused(["--address", "localhost"], {}) is None
    assert refused(["--address=0.0.0.0"], {"FLOWER_BASIC_AUTH": "ops:pw"}) is None
    assert refused(["--address=0.0.0.0", "--basic-auth=ops:pw"], {}) is None
    assert refused([], {"FLOWER_ADDRESS": "10.0.0.5"}) is not None


# --- worker and beat defaults -------------------------------------------------------------


def test_worker_concurrency_defaults_to_the_setting_then_50(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUDHUD_CONCURRENCY", raising=False)
    argv = processes.worker_argv([])
    assert argv[argv.index("-c") + 1] == "50"
    monkeypatch.setenv("HUDHUD_CONCURRENCY", "80")
    argv = processes.worker_argv([])
    assert argv[argv.index("-c") + 1] == "80"
    argv = processes.worker_argv(["-c", "7"])
    assert argv.count("-c") == 1 and argv[argv.index("-c") + 1] == "7"


@pytest.fixture()
def beat_env(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    yield clean_env(**FAST_BEAT, HUDHUD_REDIS_URL=redis_server.url)


def run_beat(env: dict[str, str], folder: Path, *args: str, seconds: float = 6) -> str:
    log = folder / f"beat{len(list(folder.glob('beat*.log')))}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hudhud.worker.ops.cli",
                "beat",
                "-s",
                str(folder / f"{log.stem}-schedule"),
                *args,
            ],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # the clock starts once beat is up: on a busy machine its start alone can take seconds
        deadline = time.monotonic() + 60
        while "is starting." not in log.read_text(errors="replace") and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(seconds)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return log.read_text(errors="replace")


def test_beat_is_quiet_by_default(beat_env: dict[str, str], tmp_path: Path) -> None:
    """FAST_BEAT runs a job every half second: at INFO that is a line each; by default none."""
    told = run_beat(beat_env, tmp_path, "-l", "INFO")
    assert told.count("Scheduler: Sending due task") >= 10, told[-2000:]
    quiet = run_beat(beat_env, tmp_path)
    assert "Sending due task" not in quiet, quiet[-2000:]
    assert len([line for line in quiet.splitlines() if re.match(r"\[\d{4}-", line)]) <= 2, quiet[-2000:]
    assert "Traceback" not in quiet
