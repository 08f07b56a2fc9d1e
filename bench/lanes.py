"""Lanes: one-time passwords sent while a bulk backlog drains, in one run against bare Celery.

    python bench/lanes.py            # 5,000 bulk SMS and 20 OTPs, three ways
    python bench/lanes.py --quick    # 1,000 bulk SMS and 10 OTPs

Starts its own redis-server and sandbox (latency 50 ms) on free ports and one worker with
gevent 50, then, three times over, queues the bulk backlog with no worker consuming it,
starts consuming, and once the backlog's first message reaches the sandbox sends the OTPs
0.1 s apart while the backlog drains:

1. bare Celery (bench/bare_app.py): bulk and OTPs in one FIFO queue;
2. hudhud with every send in the transactional lane (one queue per channel: as before lanes);
3. hudhud with the backlog in the bulk lane (`lane="bulk"`) and the OTPs transactional.

An OTP's latency runs from its send to the sandbox's acceptance of it. The backlog's
throughput is its sends over the span from its first to its last acceptance. Targets: the
lanes' OTP p95 at most 1.0 s and at most a tenth of bare Celery's; the lanes' backlog
throughput at least 0.9 of the one-lane run's. Figures go to bench/results/lanes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import run  # noqa: E402  (bench/run.py: the shared measuring helpers)

from tests.helpers import RedisServer, Sandbox  # noqa: E402

OTP_GAP = 0.1  # seconds between OTPs
CONCURRENCY = 50
# A worker reserves concurrency x this many tasks ahead; the reserved ones are run in the order
# taken, so a transactional task taken after them waits for them.
PREFETCH = {"HUDHUD_PREFETCH_MULTIPLIER": run.os.environ.get("HUDHUD_PREFETCH_MULTIPLIER", "4")}


def otp_number(i: int) -> str:
    return f"96659{i:07d}"


def latencies(record: run.SandboxRecord, base: int, sent_at: dict[str, float]) -> list[float]:
    """Seconds from each OTP's send to its acceptance by the sandbox."""
    accepted = {
        s["body"]: run.parse_iso(s["accepted_at"]) for s in record.since(base) if s["body"] in sent_at
    }
    return [accepted[body] - at for body, at in sent_at.items() if body in accepted]


def backlog_rate(record: run.SandboxRecord, base: int) -> float:
    times = sorted(
        run.parse_iso(s["accepted_at"]) for s in record.since(base) if s["body"].startswith("bulk")
    )
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def send_otps(count: int, send: Callable[[int, str], None]) -> dict[str, float]:
    sent_at: dict[str, float] = {}
    for i in range(count):
        body = f"otp {i}"
        sent_at[body] = time.time()
        send(i, body)
        time.sleep(OTP_GAP)
    return sent_at


def draining(record: run.SandboxRecord, base: int) -> None:
    """Wait for the backlog's first send: a worker answers add_consumer at once but starts
    consuming at its loop's next turn, up to two seconds later."""
    run.wait_for(lambda: record.last_seq() > base, 30, 0.01, "the backlog's first send")


def summary(lat: list[float], rate: float, expected: int) -> dict[str, Any]:
    return {
        "otps_seen": len(lat),
        "otps_sent": expected,
        "otp_p50_s": run.percentile(lat, 50),
        "otp_p95_s": run.percentile(lat, 95),
        "otp_max_s": max(lat) if lat else float("nan"),
        "bulk_msgs_per_s": rate,
    }


def bench_bare(
    n: int, otps: int, workdir: Path, redis_server: RedisServer, sandbox: Sandbox
) -> dict[str, Any]:
    import bare_app

    run.flush(redis_server.url)
    bare_app.app.conf.broker_url = redis_server.url
    app = bare_app.app
    with app.producer_or_acquire() as producer:
        for i in range(n):
            app.send_task(
                bare_app.TASK,
                args=[run.recipient(i), f"bulk {i}", run.SENDER],
                queue=bare_app.QUEUE,
                routing_key=bare_app.QUEUE,
                producer=producer,
            )
    proc = run.start_bare_worker(workdir, redis_server, sandbox, CONCURRENCY)
    record = run.SandboxRecord(sandbox.url)
    try:
        base = record.last_seq()
        run.add_consumer(app, bare_app.QUEUE)
        draining(record, base)

        def send(i: int, body: str) -> None:
            app.send_task(
                bare_app.TASK,
                args=[otp_number(i), body, run.SENDER],
                queue=bare_app.QUEUE,
                routing_key=bare_app.QUEUE,
            )

        sent_at = send_otps(otps, send)
        run.wait_for(lambda: record.last_seq() - base >= n + otps, 300, 0.2, "bare sends")
        return summary(latencies(record, base, sent_at), backlog_rate(record, base), otps)
    finally:
        run.stop_process(proc)


def bench_hudhud(
    n: int, otps: int, lane: str, workdir: Path, redis_server: RedisServer, sandbox: Sandbox
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    stack = run.Stack(
        workdir,
        redis_server=redis_server,
        sandbox=sandbox,
        extra_env={**run.HUDHUD_ENV, "HUDHUD_CONCURRENCY": str(CONCURRENCY), **PREFETCH},
    )
    run.flush(redis_server.url)
    try:
        items = [
            {"to": run.recipient(i), "body": f"bulk {i}", "sender": run.SENDER, "lane": lane}
            for i in range(n)
        ]
        for start in range(0, n, 500):
            stack.hudhud.send_many("sms", items[start : start + 500])
        record = run.SandboxRecord(sandbox.url)
        stack.start_worker("w1", concurrency=CONCURRENCY, queues="hudhud")
        stack.start_beat()
        base = record.last_seq()
        run.add_consumer(stack.app, "sms.bulk")
        run.add_consumer(stack.app, "sms")
        draining(record, base)
        sent_at = send_otps(
            otps, lambda i, body: stack.hudhud.send_sms(otp_number(i), body, sender=run.SENDER)
        )
        run.wait_for(lambda: record.last_seq() - base >= n + otps, 300, 0.2, "hudhud sends")
        return summary(latencies(record, base, sent_at), backlog_rate(record, base), otps)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 bulk SMS and 10 OTPs")
    options = parser.parse_args()
    n, otps = (1000, 10) if options.quick else (5000, 20)
    workdir = Path(tempfile.mkdtemp(prefix="hudhud-lanes-"))
    redis_server = RedisServer(workdir / "redis").start()
    sandbox = Sandbox(
        extra_args=["--latency-ms", str(run.LATENCY_MS), "--balance", "100000000"],
        log=workdir / "sandbox.log",
    ).start()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": run.machine(),
        "bulk": n,
        "otps": otps,
        "sandbox_latency_ms": run.LATENCY_MS,
    }
    try:
        sandbox.knobs(latency_ms=run.LATENCY_MS)
        print("1. bare Celery, one FIFO queue ...", flush=True)
        results["bare"] = bench_bare(n, otps, workdir, redis_server, sandbox)
        print("2. hudhud, every send transactional (one queue) ...", flush=True)
        results["one_lane"] = bench_hudhud(n, otps, "transactional", workdir / "one", redis_server, sandbox)
        print("3. hudhud, the backlog in the bulk lane ...", flush=True)
        results["lanes"] = bench_hudhud(n, otps, "bulk", workdir / "two", redis_server, sandbox)
    finally:
        sandbox.stop()
        redis_server.stop()
    lanes, bare, one = results["lanes"], results["bare"], results["one_lane"]
    results["ratios"] = {
        "lanes_otp_p95_over_bare": lanes["otp_p95_s"] / bare["otp_p95_s"],
        "lanes_bulk_rate_over_one_lane": lanes["bulk_msgs_per_s"] / one["bulk_msgs_per_s"],
    }
    results["targets_met"] = {
        "otp_p95_at_most_1s": lanes["otp_p95_s"] <= 1.0,
        "otp_p95_at_most_a_tenth_of_bare": results["ratios"]["lanes_otp_p95_over_bare"] <= 0.1,
        "bulk_rate_at_least_0.9": results["ratios"]["lanes_bulk_rate_over_one_lane"] >= 0.9,
    }
    print(f"{'run':<28}{'OTP p50 s':>10}{'p95 s':>8}{'max s':>8}{'bulk msg/s':>12}")
    for name in ("bare", "one_lane", "lanes"):
        r = results[name]
        print(
            f"{name:<28}{r['otp_p50_s']:>10.2f}{r['otp_p95_s']:>8.2f}{r['otp_max_s']:>8.2f}{r['bulk_msgs_per_s']:>12.0f}"
        )
    print(json.dumps({"ratios": results["ratios"], "targets_met": results["targets_met"]}, indent=2))
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "lanes.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
