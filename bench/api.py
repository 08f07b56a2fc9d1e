"""The HTTP API's rate of single sends, beside the Python API's own rate, in one run.

    python bench/api.py                      # 20 s of load after a 5 s warm-up, 50 connections
    python bench/api.py --seconds 60 --connections 100

Starts its own redis-server on a free port (127.0.0.1 only) and one `hudhud api` process;
no worker runs, so a send is accepted once it is recorded and its delivery task is queued
(202). Then:

1. `wrk` (Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`) posts single SMS
   sends (`POST /v1/messages/sms`) on keep-alive connections: accepted sends/s, the latency
   percentiles, the answers that were not 202, and the CPU the API process and redis-server
   spent per send. Redis is then asked how many messages were recorded and queued: every 202
   is one, and a request still in flight when wrk stopped may be one too (at most one per
   connection).
2. The Python API against the same Redis: `Hudhud.send_sms` one by one in one thread, and
   from 50 threads at once.

Prints a table and writes every figure to bench/results/api-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]

import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from run import stop_process as stop  # noqa: E402

from hudhud.config import Settings  # noqa: E402
from hudhud.worker import runtime  # noqa: E402
from hudhud.worker.broker.celery_app import create_app  # noqa: E402
from hudhud.worker.ledger import keys  # noqa: E402
from hudhud.worker.producer.api import Hudhud  # noqa: E402
from tests.helpers import RedisServer, free_port, wait_for_port  # noqa: E402

TARGET_RATE = 2000  # accepted sends/s
TARGET_P99_MS = 50.0
NUMBER = "966500000000"
BODY = {"to": [NUMBER], "body": "Your code is 4831"}
PYTHON_THREADS = 50

# wrk counts the answers by status in each thread and prints the figures once, as JSON
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"

local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) accepted = 0; other = 0 end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests":%d,"duration_us":%d,"accepted":%d,"other":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, a, o,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


# --- processes ---------------------------------------------------------------------------------
def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)")
    return found


def api_env(redis_url: str, api_key: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("HUDHUD_", "TAQNYAT_", "TAIFA_"))}
    return {
        **inherited,
        "HUDHUD_REDIS_URL": redis_url,
        "HUDHUD_API_KEYS": f"bench:{api_key}",
        "TAQNYAT_SENDER": "HUDHUD",
        "TAQNYAT_TOKEN": "bench-token",
    }


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.ops.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port, 60, proc)
    return proc


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- 1. the HTTP API under wrk --------------------------------------------------------------------
def run_wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    command = [
        wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
        "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def stored(client: redis.Redis) -> tuple[int, int]:
    """(records, delivery tasks queued): each accepted send made one of each."""
    records = sum(1 for _ in client.scan_iter(match=keys.msg_key("*"), count=5000))
    return records, int(client.llen("sms"))


def bench_http(
    url: str, api: subprocess.Popen[bytes], redis_server: RedisServer, script: Path, args: argparse.Namespace
) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_server.url)
    assert redis_server.proc is not None
    print(f"    warm-up {args.warmup:g} s", flush=True)
    run_wrk(url, script, args.warmup, args.connections, args.threads)
    time.sleep(1)
    records_before, queued_before = stored(client)
    api_cpu, redis_cpu = cpu_seconds(api.pid), cpu_seconds(redis_server.proc.pid)
    print(f"    {args.seconds:g} s of load, {args.connections} connections", flush=True)
    figures = run_wrk(url, script, args.seconds, args.connections, args.threads)
    time.sleep(1)  # requests in flight when wrk stopped are still answered
    api_cpu, redis_cpu = cpu_seconds(api.pid) - api_cpu, cpu_seconds(redis_server.proc.pid) - redis_cpu
    records_after, queued_after = stored(client)
    client.close()
    seconds = figures["duration_us"] / 1e6
    accepted = figures["accepted"]
    recorded, queued = records_after - records_before, queued_after - queued_before
    return {
        "seconds": seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "requests": figures["requests"],
        "accepted": accepted,
        "not_accepted": figures["other"],
        "socket_errors": figures["socket_errors"],
        "accepted_per_s": accepted / seconds,
        "latency_ms": {
            name: figures[f"{name}_us"] / 1000 for name in ("p50", "p90", "p99", "p999", "max", "mean")
        },
        "recorded": recorded,
        "queued": queued,
        "in_flight_at_stop": recorded - accepted,
        "counts_agree": queued == recorded and 0 <= recorded - accepted <= args.connections,
        "api_cpu_ms_per_send": 1000 * api_cpu / max(accepted, 1),
        "redis_cpu_ms_per_send": 1000 * redis_cpu / max(accepted, 1),
    }


def check_one_send(url: str, api_key: str) -> None:
    """One send by hand first: a wrong setup fails here, not as thousands of errors."""
    answer = requests.post(
        f"{url}/v1/messages/sms", json=BODY, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    )
    if answer.status_code != 202:
        sys.exit(f"the API answered {answer.status_code} to a send: {answer.text[:500]}")


# --- 2. the Python API --------------------------------------------------------------------------
def bench_python(redis_url: str, count: int) -> dict[str, Any]:
    settings = Settings(redis_url=redis_url, taqnyat_sender="HUDHUD", taqnyat_token="bench-token")
    runtime.reset()
    hudhud = Hudhud(settings, app=create_app(settings))
    hudhud.send_sms([NUMBER], "warm-up")

    start = time.perf_counter()
    for _ in range(count):
        hudhud.send_sms([NUMBER], BODY["body"])  # type: ignore[arg-type]
    one_thread = count / (time.perf_counter() - start)

    each = max(1, count // PYTHON_THREADS)

    def sends(_: int) -> None:
        for _ in range(each):
            hudhud.send_sms([NUMBER], BODY["body"])  # type: ignore[arg-type]

    with ThreadPoolExecutor(PYTHON_THREADS) as pool:
        start = time.perf_counter()
        list(pool.map(sends, range(PYTHON_THREADS)))
        threaded = each * PYTHON_THREADS / (time.perf_counter() - start)
    runtime.reset()
    return {
        "sends": count,
        "one_thread_per_s": one_thread,
        "threads": PYTHON_THREADS,
        "threaded_per_s": threaded,
    }


# --- report --------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def table(results: dict[str, Any]) -> str:
    http, py = results["http"], results["python"]
    lat = http["latency_ms"]
    met = http["accepted_per_s"] >= TARGET_RATE and lat["p99"] < TARGET_P99_MS
    agree = "agree" if http["counts_agree"] else "DISAGREE"
    latencies = " / ".join(f"{lat[q]:.1f}" for q in ("p50", "p90", "p99", "max"))
    counts = f"{http['accepted']:,} / {http['recorded']:,} / {http['queued']:,}  ({agree})"
    rate = f"{http['accepted_per_s']:,.0f}"
    rows = [
        ("HTTP API, one `hudhud api` process, wrk", ""),
        (f"  accepted sends/s ({http['connections']} keep-alive connections)", rate),
        ("  latency p50 / p90 / p99 / max (ms)", latencies),
        ("  answers other than 202 / socket errors", f"{http['not_accepted']} / {http['socket_errors']}"),
        ("  202s / recorded / queued in Redis", counts),
        ("  API process CPU ms per send", f"{http['api_cpu_ms_per_send']:.3f}"),
        ("  redis-server CPU ms per send", f"{http['redis_cpu_ms_per_send']:.3f}"),
        (f"  target: {TARGET_RATE:,}/s with p99 < {TARGET_P99_MS:.0f} ms", "met" if met else "NOT met"),
        ("Python API, same Redis", ""),
        ("  Hudhud.send_sms one by one, one thread (sends/s)", f"{py['one_thread_per_s']:,.0f}"),
        (f"  Hudhud.send_sms from {py['threads']} threads (sends/s)", f"{py['threaded_per_s']:,.0f}"),
        ("HTTP over Python one thread", f"{http['accepted_per_s'] / py['one_thread_per_s']:.2f}"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    head = f"hudhud API benchmark  {results['date']}  {results['machine']}"
    return "\n".join([head, *(f"{name:<{width}}{value}" for name, value in rows)])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of load (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load first, not counted")
    parser.add_argument("--connections", type=int, default=50, help="keep-alive connections of wrk")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--python-sends", type=int, default=5000, help="sends of the Python API runs")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    wrk_binary()
    workdir = Path(tempfile.mkdtemp(prefix="hudhud-bench-api-"))
    redis_server = RedisServer(workdir / "redis").start()
    api_key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = workdir / "send.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(BODY), key=api_key))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join(["python", "bench/api.py", *sys.argv[1:]]),
    }
    api = start_api(api_env(redis_server.url, api_key), port, workdir / "api.log")
    try:
        check_one_send(url, api_key)
        print("1. the HTTP API under wrk", flush=True)
        results["http"] = bench_http(f"{url}/v1/messages/sms", api, redis_server, script, args)
        stop(api)
        print("2. the Python API", flush=True)
        results["python"] = bench_python(redis_server.url, args.python_sends)
    finally:
        stop(api)
        redis_server.stop()
    out = BENCH / "results" / f"api-{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\nfigures in {out.relative_to(ROOT)}; logs in {workdir}")


if __name__ == "__main__":
    main()
