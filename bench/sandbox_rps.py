"""Requests per second the provider sandbox serves for POST /v1/messages.

    python bench/sandbox_rps.py                      # starts its own sandbox on a free port
    python bench/sandbox_rps.py --url http://127.0.0.1:8025 --token sandbox-taqnyat-token

Fires --requests SMS sends from --concurrency keep-alive connections (one aiohttp client)
and prints the rate and the latency percentiles. The sandbox's balance is raised first so
that every send is accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import requests

TOKEN = "bench-taqnyat-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_sandbox() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "TAQNYAT_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hudhud.worker.sandbox", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/system/status", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def fire(url: str, token: str, total: int, concurrency: int) -> list[float]:
    payload = {"recipients": ["966500000000"], "body": "bench", "sender": "HUDHUD"}
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    left = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for _ in left:
                started = time.perf_counter()
                async with session.post(f"{url}/v1/messages", json=payload) as reply:
                    await reply.read()
                    if reply.status != 201:
                        raise RuntimeError(f"unexpected status {reply.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def report(latencies: list[float], seconds: float, concurrency: int) -> None:
    ordered = sorted(latencies)

    def pct(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    print(
        f"{len(ordered)} POST /v1/messages, {concurrency} connections: "
        f"{len(ordered) / seconds:,.0f} requests/s "
        f"(p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms)"
    )


def run(url: str, token: str, total: int, concurrency: int) -> None:
    requests.post(f"{url}/_sandbox/balance", json={"set": 10**9}, timeout=10).raise_for_status()
    asyncio.run(fire(url, token, min(200, total), concurrency))  # warm-up
    started = time.perf_counter()
    latencies = asyncio.run(fire(url, token, total, concurrency))
    report(latencies, time.perf_counter() - started, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running sandbox (default: start one)")
    parser.add_argument("--token", default=TOKEN, help="its Taqnyat token")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args.token, args.requests, args.concurrency)
        return
    with own_sandbox() as url:
        run(url, TOKEN, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
