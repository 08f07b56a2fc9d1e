"""`hudhud top`: the figures from two real readings of a real redis-server (the command run as
a subprocess against a stack), and the rates and quantiles worked out from hand-made readings."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from hudhud.worker.ledger import overview
from hudhud.worker.ops.cli.watching import figures, quantile
from tests.helpers import free_port
from tests.stack import Stack, idle_stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

PERSONAL = re.compile(r"\d{8,}|@")  # a phone number or an address


def number(seed: int) -> str:
    return f"9665{seed:08d}"


def pause_taqnyat(stack: Stack) -> float:
    since = time.time()
    reason = {"kind": "balance", "error": f"no credit left for {number(1)}", "since": since}
    assert stack.ledger.pause("taqnyat", {**reason, "message_id": "m-1"})
    return since


def top_json(stack: Stack, *extra: str) -> dict[str, Any]:
    done = stack.cli("top", "--once", "--json", "--interval", "0.3", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) == 1
    return dict(json.loads(done.stdout))


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No worker: what is sent stays on its queue."""
    with idle_stack(tmp_path_factory.mktemp("top-idle")) as made:
        pause_taqnyat(made)
        for seed in range(3):
            made.hudhud.send_sms([number(seed)], "code 1")
        for seed in range(2):
            made.hudhud.send_sms([number(10 + seed)], "sale", lane="bulk")
        made.hudhud.send_voice([number(20)], "https://example.com/a.mp3")
        later = datetime.now(UTC) + timedelta(hours=2)
        made.hudhud.send_sms([number(30)], "later", at=later.isoformat())
        yield made


def test_json_reports_queue_depths_the_pause_and_the_counts(idle: Stack) -> None:
    frame = top_json(idle)
    queues = by_name(frame["queues"])
    assert {n: q["depth"] for n, q in queues.items() if q["depth"]} == {"sms": 3, "sms.bulk": 2, "voice": 1}
    assert queues["sms.bulk"]["lane"] == "bulk" and queues["sms"]["lane"] == "transactional"
    assert queues["sms"]["oldest_age"] > 0 and queues["email"]["oldest_age"] == 0
    taqnyat = by_name(frame["providers"])["taqnyat"]
    assert taqnyat["paused"] is True and taqnyat["pause"]["kind"] == "balance"
    assert taqnyat["pause"]["error"] == "no credit left for <number>"
    assert taqnyat["pause"]["since"].endswith("Z") and "message_id" not in taqnyat["pause"]
    assert by_name(frame["providers"])["taifa"]["paused"] is False
    assert frame["scheduled"] == 1 and frame["in_doubt"] == {"total": 0, "waiting": 0}
    changes = {(c["channel"], c["status"]): c["count"] for c in frame["changes"]}
    assert changes == {("sms", "queued"): 5, ("sms", "scheduled"): 1, ("voice", "queued"): 1}
    assert frame["interval"] >= 0.3 and {s["sent_per_second"] for s in frame["sends"]} == {0.0}
    assert not PERSONAL.search(json.dumps(frame))


def test_the_plain_frame_names_the_pause_and_the_queues_never_a_recipient(idle: Stack) -> None:
    done = idle.cli("top", "--once", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    taqnyat = next(line for line in lines if "taqnyat" in line and "paused" in line)
    assert "paused: balance" in taqnyat and "<number>" in taqnyat
    assert any(re.search(r"\bsms\.bulk\b.*\bbulk\b.*\b2\b", line) for line in lines)
    assert any(re.search(r"\bvoice\b.*\btransactional\b.*\b1\b", line) for line in lines)
    assert "scheduled 1" in done.stdout
    assert not PERSONAL.search(done.stdout)


def test_sends_held_sends_and_durations_with_a_running_worker(tmp_path: Path) -> None:
    with running_stack(tmp_path, beat=False) as stack:
        pause_taqnyat(stack)
        for i in range(4):
            stack.hudhud.send_sms([number(100 + i)], "code 2")
        emails = [stack.hudhud.send_email([f"p{i}@example.com"], "hi", text="hello").id for i in range(3)]
        stack.wait_status(emails, {"sent", "delivered"})
        wait_until(lambda: stack.ledger.held_count("taqnyat") == 4)
        frame = top_json(stack)
    providers = by_name(frame["providers"])
    assert providers["taqnyat"]["held"] == 4 and providers["taqnyat"]["paused"]
    assert providers["taifa"]["held"] == 0
    sends = {(s["channel"], s["provider"]): s for s in frame["sends"]}
    taifa = sends[("email", "taifa")]
    assert taifa["sent"] == 3 and taifa["failed"] == 0
    assert 0 < taifa["send_seconds_p50"] <= taifa["send_seconds_p95"]
    assert sends[("sms", "taqnyat")]["sent"] == 0
    assert all(q["depth"] == 0 for q in frame["queues"])
    assert not PERSONAL.search(json.dumps(frame))


def test_an_unreachable_redis_is_one_line_and_exit_1(idle: Stack) -> None:
    elsewhere = {"HUDHUD_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = idle.cli("top", "--once", env=elsewhere)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: cannot reach Redis at ")
    as_json = idle.cli("top", "--once", "--json", env=elsewhere)
    assert as_json.returncode == 1 and "cannot reach Redis" in json.loads(as_json.stdout)["error"]


def _until_line(stream: IO[str], text: str) -> str:
    seen = ""
    while text not in seen:
        line = stream.readline()
        assert line, f"ended before {text!r}: {seen[-2000:]}"
        seen += line
    return seen


@pytest.mark.parametrize(
    ("args", "env", "first"),
    [
        (["--json"], {}, '"queues"'),  # a JSON object per frame
        ([], {"TTY_COMPATIBLE": "1", "COLUMNS": "120"}, "providers"),  # the live view, as on a terminal
    ],
)
def test_ctrl_c_ends_the_live_view_with_exit_0(
    idle: Stack, args: list[str], env: dict[str, str], first: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.ops.cli", "top", "--interval", "0.2", *args],
        env={**idle.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        _until_line(proc.stdout, first)
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors and "Aborted" not in errors


# --- the figures from hand-made readings -----------------------------------------------------


def reading(at: float, sent: int, failed: int, rejected: int) -> overview.Snapshot:
    return overview.Snapshot(
        at=at,
        messages={
            ("sms", "taqnyat", "sent"): sent,
            ("sms", "taqnyat", "failed"): failed,
            ("sms", "taqnyat", "rejected"): rejected,
            ("sms", "taqnyat", "queued"): 1000,
        },
    )


def test_rates_are_the_counters_change_over_the_time_between_readings() -> None:
    frame = figures(reading(104.0, 50, 7, 3), reading(100.0, 10, 1, 1))
    [sms] = frame["sends"]
    assert (sms["sent"], sms["failed"]) == (50, 10)
    assert sms["sent_per_second"] == 10.0 and sms["failed_per_second"] == 2.0
    assert frame["interval"] == 4.0
    alone = figures(reading(104.0, 50, 7, 3), None)
    assert alone["sends"][0]["sent_per_second"] is None and alone["interval"] is None


def test_quantiles_are_read_from_the_cumulative_buckets() -> None:
    bounds = (*overview.SEND_BUCKETS, float("inf"))
    counts = {0.1: 0, 0.25: 50, 0.5: 90, 1.0: 100}  # cumulative: 50 in (0.1, 0.25], 40 more to 0.5 …
    buckets = [(b, counts.get(b, 100) if b > 0.1 else 0) for b in bounds]
    histogram = overview.Histogram(buckets, sum=30.0, count=100)
    assert quantile(histogram, 0.5) == pytest.approx(0.25)
    assert quantile(histogram, 0.95) == pytest.approx(0.75)
    assert quantile(overview.Histogram([(b, 0) for b in bounds], 0.0, 0), 0.5) is None
    beyond = overview.Histogram([(b, 0) for b in bounds[:-1]] + [(bounds[-1], 4)], 9999.0, 4)
    assert quantile(beyond, 0.5) == overview.SEND_BUCKETS[-1]
