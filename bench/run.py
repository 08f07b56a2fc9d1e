"""hudhud benchmarks against the provider sandbox (latency_ms=50), in one run.

    python bench/run.py            # full run (about 5 minutes on 2 cores)
    python bench/run.py --quick    # smaller counts and shorter windows

Starts its own redis-server and sandbox on free ports (127.0.0.1 only), then measures:

1. throughput of single SMS sends, bare Celery (bench/bare_app.py) vs hudhud: messages/s,
   and CPU ms per message of the worker process tree and of redis-server;
2. enqueue rate from one producer: `send_sms` one by one and `send_many` in bulk;
3. 100,000 SMS scheduled a day ahead: Redis memory per message and worker RSS over time;
4. latency from enqueue (ledger created_at) to the provider call (ledger 'sending' event and
   sandbox accepted_at) at a steady load;
5. a bulk campaign: one body to 100,000 SMS recipients (and 10,000 Taifa emails), from the
   producer call until every recipient is handed to the provider, checked against the
   sandbox's record and the campaign's per-recipient counts;
6. the global rate limit: several workers share HUDHUD_RATE_LIMIT_TAQNYAT; the provider-side
   rate over the run and the most sends in any one-second window.

Prints one table and writes every figure to bench/results/last.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]

import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from hudhud.worker.producer import campaign  # noqa: E402
from tests.helpers import SANDBOX_TAQNYAT_TOKEN, RedisServer, Sandbox  # noqa: E402
from tests.stack import Stack  # noqa: E402

LATENCY_MS = 50
SENDER = "HUDHUD"
# Beat runs at its default intervals, as in a deployment (the test stack's are ten times
# faster); a task the broker loses still comes back within 15 s, and the HTTP timeouts are
# relaxed for the sandbox's injected latency.
HUDHUD_ENV = {
    "HUDHUD_RELEASE_INTERVAL": "5",
    "HUDHUD_STATUS_INTERVAL": "30",
    "HUDHUD_BALANCE_INTERVAL": "60",
    "HUDHUD_EVENTS_INTERVAL": "15",
    "HUDHUD_RECOVER_INTERVAL": "15",
    "HUDHUD_PROBE_INTERVAL": "10",
    "HUDHUD_HTTP_READ_TIMEOUT": "10",
    "HUDHUD_HTTP_CONNECT_TIMEOUT": "3",
}

RSS_KEYS = ("worker_rss_first_mb", "worker_rss_last_mb", "worker_rss_max_mb")


@dataclass(frozen=True)
class Plan:
    throughput_n: int
    single_n: int
    bulk_n: int
    scheduled_n: int
    parked_seconds: float
    steady_rate: int
    steady_seconds: float
    concurrency: int
    campaign_n: int
    email_campaign_n: int
    rate_limit: float
    rate_seconds: float
    rate_workers: int
    rounds: int  # throughput runs, bare and hudhud taking turns; the medians are reported


FULL = Plan(3000, 1000, 10000, 100_000, 30.0, 100, 20.0, 50, 100_000, 10_000, 40.0, 15.0, 3, 3)
QUICK = Plan(500, 300, 3000, 20_000, 10.0, 100, 8.0, 50, 20_000, 2_000, 40.0, 6.0, 3, 1)


# --- measuring helpers ----------------------------------------------------------------
def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def rss_mb(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def recipient(i: int) -> str:
    return f"9665{i % 10**8:08d}"


class SandboxRecord:
    """The sandbox's record of accepted sends, read through its admin API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def last_seq(self) -> int:
        reply = self.http.get(f"{self.url}/_sandbox/sends", params={"limit": 0}, timeout=10)
        reply.raise_for_status()
        return int(reply.json()["last_seq"])

    def since(self, seq: int) -> list[dict[str, Any]]:
        reply = self.http.get(f"{self.url}/_sandbox/sends", params={"since_seq": seq}, timeout=60)
        reply.raise_for_status()
        return list(reply.json()["sends"])

    def span(self, seq: int) -> float:
        """Seconds from the first to the last send accepted after `seq`."""
        sends = self.since(seq)
        if len(sends) < 2:
            return float("nan")
        return parse_iso(sends[-1]["accepted_at"]) - parse_iso(sends[0]["accepted_at"])


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def redis_memory(url: str) -> int:
    client = redis.Redis.from_url(url)
    used = int(client.info("memory")["used_memory"])
    client.close()
    return used


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def add_consumer(app: Any, queue: str) -> float:
    """Tell the idle worker to consume `queue`; the seconds its answer took."""
    start = time.monotonic()
    for _ in range(5):
        if app.control.add_consumer(queue, reply=True, timeout=5, limit=1):
            return time.monotonic() - start
    raise RuntimeError(f"no worker answered add_consumer({queue!r})")


def start_bare_worker(workdir: Path, redis_server: RedisServer, sandbox: Sandbox, concurrency: int) -> Any:
    """bench/bare_app.py's worker (gevent, `concurrency`), consuming only its idle queue, once ready."""
    import bare_app

    env = {
        **os.environ,
        "BARE_REDIS_URL": redis_server.url,
        "BARE_TAQNYAT_URL": sandbox.url,
        "BARE_POOL_SIZE": str(concurrency),
        "TAQNYAT_TOKEN": SANDBOX_TAQNYAT_TOKEN,
        "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
    }
    argv = [sys.executable, "-m", "celery", "-A", "bare_app", "worker", "-P", "gevent"]
    argv += ["-c", str(concurrency), "-Q", bare_app.IDLE_QUEUE, "-n", "bare@%h", "-l", "INFO"]
    argv += ["--without-gossip", "--without-mingle"]
    log = workdir / "bare-worker.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=str(BENCH), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(
            lambda: "ready" in log.read_text(errors="replace") or proc.poll() is not None,
            60,
            0.1,
            "bare worker ready",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"bare worker exited: {log.read_text(errors='replace')[-2000:]}")
    except BaseException:
        stop_process(proc)
        raise
    return proc


# --- 1a. bare Celery ------------------------------------------------------------------
def bench_bare(plan: Plan, workdir: Path, redis_server: RedisServer, sandbox: Sandbox) -> dict[str, Any]:
    import bare_app

    flush(redis_server.url)
    bare_app.app.conf.broker_url = redis_server.url
    app = bare_app.app
    with app.producer_or_acquire() as producer:
        for i in range(plan.throughput_n):
            app.send_task(
                bare_app.TASK,
                args=[recipient(i), f"bare {i}", SENDER],
                queue=bare_app.QUEUE,
                routing_key=bare_app.QUEUE,
                producer=producer,
            )
    proc = start_bare_worker(workdir, redis_server, sandbox, plan.concurrency)
    record = SandboxRecord(sandbox.url)
    try:
        assert redis_server.proc is not None
        base = record.last_seq()
        cpu_w, cpu_r = cpu_seconds(proc.pid), cpu_seconds(redis_server.proc.pid)
        start = time.monotonic()
        answered_s = add_consumer(app, bare_app.QUEUE)
        most = int(plan.throughput_n * 0.99)
        wait_for(lambda: record.last_seq() - base >= most, 300, 0.05, "bare sends")
        elapsed_99 = time.monotonic() - start
        cpu_w2, cpu_r2 = cpu_seconds(proc.pid), cpu_seconds(redis_server.proc.pid)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: record.last_seq() - base >= plan.throughput_n, 60, 0.2, "bare sends")
        elapsed = time.monotonic() - start
        sent = record.last_seq() - base
        lost_acks = (workdir / "bare-worker.log").read_text(errors="replace").count("Couldn't ack")
        span = record.span(base)
        rss = rss_mb(proc.pid)
    finally:
        stop_process(proc)
    n = plan.throughput_n
    return {
        "messages": n,
        "seconds": elapsed,
        "msgs_per_s": most / elapsed_99,
        "seconds_to_99pct": elapsed_99,
        "sends_recorded": sent,
        "failed_acks_logged": lost_acks,
        "provider_span_msgs_per_s": (sent - 1) / span if span > 0 else None,
        "worker_cpu_ms_per_msg": (cpu_w2 - cpu_w) * 1000 / most,
        "redis_cpu_ms_per_msg": (cpu_r2 - cpu_r) * 1000 / most,
        "worker_rss_mb": rss,
        "add_consumer_answer_s": answered_s,
    }


# --- 1b. hudhud -----------------------------------------------------------------------
def new_stack(workdir: Path, redis_server: RedisServer, sandbox: Sandbox, plan: Plan) -> Stack:
    flush(redis_server.url)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**HUDHUD_ENV, "HUDHUD_CONCURRENCY": str(plan.concurrency)}
    return Stack(workdir, redis_server=redis_server, sandbox=sandbox, extra_env=env)


def wait_sent(stack: Stack, ids: list[str], timeout: float, interval: float = 0.1) -> None:
    done = {"sent", "delivered"}
    pending = list(ids)

    def check() -> bool:
        nonlocal pending
        statuses = stack.ledger.status_of(pending)
        pending = [mid for mid, status in zip(pending, statuses, strict=True) if status not in done]
        return not pending

    wait_for(check, timeout, interval, f"{len(pending)} messages to be sent")


def bench_hudhud(plan: Plan, stack: Stack, redis_server: RedisServer, sandbox: Sandbox) -> dict[str, Any]:
    items = [{"to": recipient(i), "body": f"hudhud {i}", "sender": SENDER} for i in range(plan.throughput_n)]
    ids = [r.id for r in stack.hudhud.send_many("sms", items)]
    record = SandboxRecord(sandbox.url)
    proc = stack.start_worker("w1", concurrency=plan.concurrency, queues="hudhud")
    stack.start_beat()
    assert redis_server.proc is not None
    rss_ready = rss_mb(proc.pid)
    base = record.last_seq()
    cpu_w, cpu_r = cpu_seconds(proc.pid), cpu_seconds(redis_server.proc.pid)
    start = time.monotonic()
    answered_s = add_consumer(stack.app, "sms")
    most = int(plan.throughput_n * 0.99)
    wait_for(lambda: record.last_seq() - base >= most, 300, 0.05, "hudhud sends")
    elapsed_99 = time.monotonic() - start
    cpu_w2, cpu_r2 = cpu_seconds(proc.pid), cpu_seconds(redis_server.proc.pid)
    wait_sent(stack, ids, 120, 0.2)
    elapsed = time.monotonic() - start
    span = record.span(base)
    n = plan.throughput_n
    return {
        "messages": n,
        "seconds": elapsed,
        "msgs_per_s": most / elapsed_99,
        "seconds_to_99pct": elapsed_99,
        "msgs_per_s_until_all_sent": n / elapsed,
        "provider_span_msgs_per_s": (n - 1) / span if span > 0 else None,
        "worker_cpu_ms_per_msg": (cpu_w2 - cpu_w) * 1000 / most,
        "redis_cpu_ms_per_msg": (cpu_r2 - cpu_r) * 1000 / most,
        "worker_rss_ready_mb": rss_ready,
        "worker_rss_mb": rss_mb(proc.pid),
        "failed_acks_logged": stack.log("w1").read_text(errors="replace").count("Couldn't ack"),
        "add_consumer_answer_s": answered_s,
    }


# --- 4. latency at a steady load (runs on the worker left by 1b) -------------------------
def bench_latency(plan: Plan, stack: Stack, sandbox: Sandbox) -> dict[str, Any]:
    record = SandboxRecord(sandbox.url)
    base = record.last_seq()
    total = int(plan.steady_rate * plan.steady_seconds)
    ids: list[str] = []
    t0 = time.monotonic()
    for i in range(total):
        delay = t0 + i / plan.steady_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.append(stack.hudhud.send_sms(recipient(i), f"latency {i}", sender=SENDER).id)
    offered = total / (time.monotonic() - t0)
    wait_sent(stack, ids, 60)
    accepted = {s["body"]: parse_iso(s["accepted_at"]) for s in record.since(base)}
    to_sending: list[float] = []
    to_provider: list[float] = []
    for i, mid in enumerate(ids):
        rec = stack.ledger.get(mid)
        assert rec is not None
        created = parse_iso(rec["created_at"])
        sending = next(e for e in rec["events"] if e["type"] == "sending")
        to_sending.append((parse_iso(sending["at"]) - created) * 1000)
        if f"latency {i}" in accepted:
            to_provider.append((accepted[f"latency {i}"] - created) * 1000)
    return {
        "messages": total,
        "offered_msgs_per_s": offered,
        "enqueue_to_sending_ms": {
            "p50": percentile(to_sending, 50),
            "p99": percentile(to_sending, 99),
            "mean": statistics.fmean(to_sending),
        },
        "enqueue_to_provider_accept_ms": {
            "p50": percentile(to_provider, 50),
            "p99": percentile(to_provider, 99),
            "mean": statistics.fmean(to_provider) if to_provider else None,
            "matched": len(to_provider),
        },
        "note": "provider accept includes the sandbox's 50 ms injected latency",
    }


# --- 2. enqueue rate ---------------------------------------------------------------------
def bench_enqueue(plan: Plan, stack: Stack) -> dict[str, Any]:
    start = time.perf_counter()
    for i in range(plan.single_n):
        stack.hudhud.send_sms(recipient(i), f"single {i}", sender=SENDER)
    single = plan.single_n / (time.perf_counter() - start)
    items = [{"to": recipient(i), "body": f"bulk {i}", "sender": SENDER} for i in range(plan.bulk_n)]
    start = time.perf_counter()
    receipts = stack.hudhud.send_many("sms", items)
    bulk = plan.bulk_n / (time.perf_counter() - start)
    assert len(receipts) == plan.bulk_n
    queued = int(stack.redis.llen("sms"))
    return {
        "send_sms_n": plan.single_n,
        "send_sms_msgs_per_s": single,
        "send_many_n": plan.bulk_n,
        "send_many_msgs_per_s": bulk,
        "broker_queue_length": queued,
    }


# --- 3. scheduled a day ahead ----------------------------------------------------------------
def bench_scheduled(plan: Plan, stack: Stack) -> dict[str, Any]:
    # Open the producer's broker connection first so that its keys are not counted.
    stack.hudhud.send_many("sms", [])
    before = redis_memory(stack.redis_server.url)
    at = datetime.now(UTC) + timedelta(days=1)
    items = [
        {"to": recipient(i), "body": f"scheduled {i}", "sender": SENDER, "at": at}
        for i in range(plan.scheduled_n)
    ]
    start = time.perf_counter()
    receipts = stack.hudhud.send_many("sms", items)
    enqueue_s = time.perf_counter() - start
    after = redis_memory(stack.redis_server.url)
    statuses = {r.status for r in receipts}
    parked = int(stack.redis.zcard("hudhud:scheduled"))
    broker = sum(int(stack.redis.llen(q)) for q in ("sms", "email", "voice"))
    proc = stack.start_worker("w2", concurrency=plan.concurrency)
    stack.start_beat()
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    while True:
        elapsed = time.monotonic() - t0
        samples.append((round(elapsed, 1), round(rss_mb(proc.pid), 1)))
        if elapsed >= plan.parked_seconds:
            break
        time.sleep(min(2.0, plan.parked_seconds - elapsed))
    still_parked = int(stack.redis.zcard("hudhud:scheduled"))
    rss = [s[1] for s in samples]
    return {
        "messages": plan.scheduled_n,
        "statuses": sorted(statuses),
        "send_many_msgs_per_s": plan.scheduled_n / enqueue_s,
        "redis_used_memory_delta_mb": (after - before) / 2**20,
        "redis_bytes_per_msg": (after - before) / plan.scheduled_n,
        "parked_in_zset": parked,
        "broker_messages": broker,
        "still_parked_after_run": still_parked,
        "worker_rss_samples_s_mb": samples,
        "worker_rss_first_mb": rss[0],
        "worker_rss_last_mb": rss[-1],
        "worker_rss_max_mb": max(rss),
    }


# --- 5. bulk campaign ----------------------------------------------------------------------
def run_campaign(
    stack: Stack, record: SandboxRecord, channel: str, to: list[str], **fields: Any
) -> dict[str, Any]:
    base = record.last_seq()
    start = time.perf_counter()
    receipt = stack.hudhud.send_campaign(channel, {"to": to, **fields})
    recorded_s = time.perf_counter() - start
    ids = [campaign.batch_id(receipt.id, n) for n in range(receipt.batches)]
    wait_sent(stack, ids, 600, 0.05)
    handed_s = time.perf_counter() - start
    sends = record.since(base)
    handed = sum(len(s["recipients"]) for s in sends)
    summary = stack.hudhud.status(receipt.id)
    return {
        "recipients": receipt.recipients,
        "batches": receipt.batches,
        "provider_calls": len(sends) if channel == "sms" else receipt.batches,
        "producer_call_s": recorded_s,
        "handed_over_s": handed_s,
        "recipients_per_s": receipt.recipients / handed_s,
        "recipients_in_sandbox_record": handed,
        "ledger_recipient_counts": summary["recipient_counts"],
        "status": summary["status"],
    }


def bench_campaign(plan: Plan, stack: Stack, sandbox: Sandbox) -> dict[str, Any]:
    record = SandboxRecord(sandbox.url)
    stack.start_worker("w1", concurrency=plan.concurrency)
    stack.start_beat()
    sms = run_campaign(
        stack, record, "sms", [recipient(i) for i in range(plan.campaign_n)], body="campaign", sender=SENDER
    )
    email = run_campaign(
        stack,
        record,
        "email",
        [f"reader{i}@example.com" for i in range(plan.email_campaign_n)],
        subject="campaign",
        text="campaign",
        **{"from": "news@example.com"},
    )
    return {"sms": sms, "taifa_email": email}


# --- 6. global rate limit --------------------------------------------------------------------
def bench_rate_limit(
    plan: Plan, workdir: Path, redis_server: RedisServer, sandbox: Sandbox
) -> dict[str, Any]:
    flush(redis_server.url)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**HUDHUD_ENV, "HUDHUD_RATE_LIMIT_TAQNYAT": str(plan.rate_limit)}
    stack = Stack(workdir, redis_server=redis_server, sandbox=sandbox, extra_env=env)
    try:
        n = int(plan.rate_limit * plan.rate_seconds)
        record = SandboxRecord(sandbox.url)
        base = record.last_seq()
        ids = [
            r.id
            for r in stack.hudhud.send_many(
                "sms", [{"to": recipient(i), "body": f"rate {i}", "sender": SENDER} for i in range(n)]
            )
        ]
        for w in range(plan.rate_workers):
            stack.start_worker(f"r{w}", concurrency=20)
        stack.start_beat()
        wait_sent(stack, ids, plan.rate_seconds * 4 + 60, 0.2)
        times = sorted(parse_iso(s["accepted_at"]) for s in record.since(base))
    finally:
        stack.stop()
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        most = max(most, i - j + 1)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    overall = (len(times) - 1) / span if span > 0 else None
    return {
        "limit_per_s": plan.rate_limit,
        "workers": plan.rate_workers,
        "messages": n,
        "sends_recorded": len(times),
        "overall_msgs_per_s": overall,
        "most_in_any_1s_window": most,
        "overall_over_limit": overall / plan.rate_limit if overall else None,
    }


# --- report ----------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    bare, hud = results["throughput"]["bare"], results["throughput"]["hudhud"]
    ratio = results["throughput"]["ratio_hudhud_over_bare"]
    enq, sch, lat = results["enqueue"], results["scheduled"], results["latency"]
    rows: list[tuple[str, str, str, str]] = [
        (
            f"1. single SMS throughput (median of {len(results['throughput']['rounds'])} rounds)",
            "bare Celery",
            "hudhud",
            "hudhud/bare",
        ),
        (
            f"   messages/s to 99% (N={hud['messages']}, c={results['concurrency']})",
            fmt(bare["msgs_per_s"], 0),
            fmt(hud["msgs_per_s"], 0),
            fmt(ratio["msgs_per_s"]),
        ),
        (
            "   messages/s until every message sent",
            "n/a",
            fmt(hud["msgs_per_s_until_all_sent"], 0),
            "",
        ),
        (
            "   'Couldn't ack' errors in the worker log",
            str(bare["failed_acks_logged"]),
            str(hud["failed_acks_logged"]),
            "",
        ),
        (
            "   messages/s, provider side (first..last accept)",
            fmt(bare["provider_span_msgs_per_s"], 0),
            fmt(hud["provider_span_msgs_per_s"], 0),
            fmt(ratio["provider_span_msgs_per_s"]),
        ),
        (
            "   worker CPU ms/message",
            fmt(bare["worker_cpu_ms_per_msg"]),
            fmt(hud["worker_cpu_ms_per_msg"]),
            fmt(ratio["worker_cpu_ms_per_msg"]),
        ),
        (
            "   redis-server CPU ms/message",
            fmt(bare["redis_cpu_ms_per_msg"]),
            fmt(hud["redis_cpu_ms_per_msg"]),
            fmt(ratio["redis_cpu_ms_per_msg"]),
        ),
        (
            "   worker + redis CPU ms/message",
            fmt(bare["worker_cpu_ms_per_msg"] + bare["redis_cpu_ms_per_msg"]),
            fmt(hud["worker_cpu_ms_per_msg"] + hud["redis_cpu_ms_per_msg"]),
            fmt(ratio["total_cpu_ms_per_msg"]),
        ),
        (
            "   worker + redis CPU ratio of each round (their median)",
            "",
            " ".join(fmt(r["ratio"]["total_cpu_ms_per_msg"]) for r in results["throughput"]["rounds"]),
            fmt(
                statistics.median(r["ratio"]["total_cpu_ms_per_msg"] for r in results["throughput"]["rounds"])
            ),
        ),
        (
            "   worker RSS MB after the run",
            fmt(bare["worker_rss_mb"], 1),
            fmt(hud["worker_rss_mb"], 1),
            fmt(hud["worker_rss_mb"] / bare["worker_rss_mb"]),
        ),
        ("2. enqueue rate, one producer", "", "", ""),
        (f"   send_sms one by one (n={enq['send_sms_n']}) msg/s", "", fmt(enq["send_sms_msgs_per_s"], 0), ""),
        (f"   send_many bulk (n={enq['send_many_n']}) msg/s", "", fmt(enq["send_many_msgs_per_s"], 0), ""),
        (f"3. {sch['messages']:,} SMS scheduled +1 day", "", "", ""),
        ("   send_many with at, msg/s", "", fmt(sch["send_many_msgs_per_s"], 0), ""),
        ("   Redis used_memory delta MB", "", fmt(sch["redis_used_memory_delta_mb"], 1), ""),
        ("   Redis bytes per scheduled message", "", fmt(sch["redis_bytes_per_msg"], 0), ""),
        (
            "   parked in hudhud:scheduled / in broker",
            "",
            f"{sch['parked_in_zset']} / {sch['broker_messages']}",
            "",
        ),
        (
            f"   worker RSS MB first / last / max ({sch['worker_rss_samples_s_mb'][-1][0]:.0f}s)",
            "",
            " / ".join(f"{sch[k]:.1f}" for k in RSS_KEYS),
            "",
        ),
        (
            f"4. latency at {lat['offered_msgs_per_s']:.0f} msg/s ({lat['messages']} msgs)",
            "p50",
            "p99",
            "mean",
        ),
        (
            "   enqueue -> ledger 'sending' (ms)",
            fmt(lat["enqueue_to_sending_ms"]["p50"], 1),
            fmt(lat["enqueue_to_sending_ms"]["p99"], 1),
            fmt(lat["enqueue_to_sending_ms"]["mean"], 1),
        ),
        (
            "   enqueue -> sandbox accepted_at (ms, incl. 50 ms)",
            fmt(lat["enqueue_to_provider_accept_ms"]["p50"], 1),
            fmt(lat["enqueue_to_provider_accept_ms"]["p99"], 1),
            fmt(lat["enqueue_to_provider_accept_ms"]["mean"], 1),
        ),
    ]
    for name, label in (("sms", "SMS"), ("taifa_email", "Taifa email")):
        run = results["campaign"][name]
        counts = run["ledger_recipient_counts"]
        rows += [
            (
                f"5. campaign: {run['recipients']:,} {label} recipients, {run['batches']} batches",
                "",
                "",
                "",
            ),
            (
                "   producer call s / all handed to provider s",
                "",
                f"{fmt(run['producer_call_s'])} / {fmt(run['handed_over_s'])}",
                "",
            ),
            ("   recipients/s", "", fmt(run["recipients_per_s"], 0), ""),
            (
                "   recipients in sandbox record / ledger sent+rejected",
                "",
                f"{run['recipients_in_sandbox_record']:,} / {counts['sent']:,}+{counts['rejected']:,}",
                "",
            ),
        ]
    rate = results["rate_limit"]
    rows += [
        (
            f"6. global rate limit {rate['limit_per_s']:.0f}/s, {rate['workers']} workers, "
            f"{rate['messages']} msgs",
            "",
            "",
            "measured/limit",
        ),
        (
            "   provider-side msg/s over the run",
            "",
            fmt(rate["overall_msgs_per_s"], 1),
            fmt(rate["overall_over_limit"]),
        ),
        ("   most sends in any 1 s window", "", str(rate["most_in_any_1s_window"]), ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"hudhud benchmark  {results['date']}  {results['machine']}",
        f"sandbox latency_ms={LATENCY_MS}, gevent pool, concurrency {results['concurrency']}"
        f"{'  (--quick)' if results['quick'] else ''}",
        "-" * (sum(widths) + 6),
    ]
    for row in rows:
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}"
        )
    return "\n".join(lines)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (the first run's value when it is not a number)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        numbers = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        out[key] = statistics.median(numbers) if len(numbers) == len(runs) else value
    return out


def ratio_of(hud: dict[str, Any], bare: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    return {
        "msgs_per_s": div(hud["msgs_per_s"], bare["msgs_per_s"]),
        "provider_span_msgs_per_s": div(hud["provider_span_msgs_per_s"], bare["provider_span_msgs_per_s"]),
        "worker_cpu_ms_per_msg": div(hud["worker_cpu_ms_per_msg"], bare["worker_cpu_ms_per_msg"]),
        "redis_cpu_ms_per_msg": div(hud["redis_cpu_ms_per_msg"], bare["redis_cpu_ms_per_msg"]),
        "total_cpu_ms_per_msg": div(
            hud["worker_cpu_ms_per_msg"] + hud["redis_cpu_ms_per_msg"],
            bare["worker_cpu_ms_per_msg"] + bare["redis_cpu_ms_per_msg"],
        ),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{socket.gethostname()}: {os.cpu_count()} cores ({cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GB, Python {platform.python_version()}"
    )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter windows")
    parser.add_argument("--keep", action="store_true", help="keep the working folder with the logs")
    options = parser.parse_args()
    plan = QUICK if options.quick else FULL

    workdir = Path(tempfile.mkdtemp(prefix="hudhud-bench-"))
    redis_server = RedisServer(workdir / "redis").start()
    sandbox = Sandbox(
        extra_args=["--latency-ms", str(LATENCY_MS), "--balance", "100000000"], log=workdir / "sandbox.log"
    ).start()
    stacks: list[Stack] = []
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cores": os.cpu_count(),
        "quick": options.quick,
        "concurrency": plan.concurrency,
        "sandbox_latency_ms": LATENCY_MS,
        "plan": plan.__dict__,
    }
    try:
        sandbox.knobs(latency_ms=LATENCY_MS)
        runs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for turn in range(plan.rounds):
            print(f"1a. bare Celery throughput (round {turn + 1}/{plan.rounds}) ...", flush=True)
            bare = bench_bare(plan, workdir, redis_server, sandbox)
            print(f"    {bare['provider_span_msgs_per_s']:.0f} msg/s", flush=True)
            print(f"1b. hudhud throughput (round {turn + 1}/{plan.rounds}) ...", flush=True)
            stack = new_stack(workdir / f"s1-{turn}", redis_server, sandbox, plan)
            stacks.append(stack)
            hud = bench_hudhud(plan, stack, redis_server, sandbox)
            print(f"    {hud['provider_span_msgs_per_s']:.0f} msg/s", flush=True)
            runs.append((bare, hud))
            if turn < plan.rounds - 1:
                stack.stop()
        bare, hud = medians([b for b, _ in runs]), medians([h for _, h in runs])
        results["throughput"] = {
            "bare": bare,
            "hudhud": hud,
            "ratio_hudhud_over_bare": ratio_of(hud, bare),
            "rounds": [{"bare": b, "hudhud": h, "ratio": ratio_of(h, b)} for b, h in runs],
        }

        print("4.  latency at a steady load ...", flush=True)
        results["latency"] = bench_latency(plan, stack, sandbox)
        stack.stop()

        print("2.  enqueue rate ...", flush=True)
        stack = new_stack(workdir / "s2", redis_server, sandbox, plan)
        stacks.append(stack)
        results["enqueue"] = bench_enqueue(plan, stack)
        stack.stop()

        print(f"3.  {plan.scheduled_n} scheduled a day ahead ...", flush=True)
        stack = new_stack(workdir / "s3", redis_server, sandbox, plan)
        stacks.append(stack)
        results["scheduled"] = bench_scheduled(plan, stack)
        stack.stop()

        print("5.  bulk campaigns ...", flush=True)
        stack = new_stack(workdir / "s4", redis_server, sandbox, plan)
        stacks.append(stack)
        results["campaign"] = bench_campaign(plan, stack, sandbox)
        print(f"    {results['campaign']['sms']['handed_over_s']:.1f} s for the SMS campaign", flush=True)
        stack.stop()

        print("6.  global rate limit ...", flush=True)
        results["rate_limit"] = bench_rate_limit(plan, workdir / "s5", redis_server, sandbox)
    finally:
        for made in stacks:
            with contextlib.suppress(Exception):
                made.stop()
        sandbox.stop()
        redis_server.stop()
        if options.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    out = BENCH / "results" / "last.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
