"""Metrics end to end: a real worker serving `/metrics` on its own port, a real `hudhud api`
serving it too, the sandbox over HTTP. The ledger's counts equal the change stream's, each
target shows the same ledger series, the worker's own series say what it called and which
queues it consumes, and neither shows a number or a body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hudhud.worker.ledger import CHANGES
from tests.helpers import free_port
from tests.stack import idle_stack, running_stack

NUMBERS = [f"96650000{i:04d}" for i in range(3)]
BODY = "metrics code 9911"


def read(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(url, timeout=10)
    answer.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def pick(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, got), v in found.items() if n == name and labels.items() <= dict(got).items())


@pytest.mark.timeout(180)
def test_a_worker_and_the_api_serve_the_same_ledger_figures_and_their_own(tmp_path: Path) -> None:
    port = free_port()
    env = {"HUDHUD_METRICS_PORT": str(port), "HUDHUD_API_KEYS": "ops:metrics-key"}
    with running_stack(tmp_path, extra_env=env) as stack:
        api = stack.start_api()
        ids = [stack.hudhud.send_sms(n, BODY).id for n in NUMBERS]
        stack.wait_status(ids, {"sent"}, timeout=60)
        worker_text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        api_text = requests.get(f"{api}/metrics", timeout=10).text
        worker, served = read(f"http://127.0.0.1:{port}/metrics"), read(f"{api}/metrics")
        stream: Any = stack.redis.xrange(CHANGES)
        sent = sum(1 for _, e in stream if e[b"status"] == b"sent")

    sms = {"channel": "sms", "provider": "taqnyat"}
    for figures in (worker, served):
        assert pick(figures, "hudhud_ledger_up") == 1
        assert pick(figures, "hudhud_messages_total", **sms, status="sent") == sent == 3
        assert pick(figures, "hudhud_messages_total", **sms, status="queued") == 3
        assert pick(figures, "hudhud_send_duration_seconds_count", **sms) == 3
        assert pick(figures, "hudhud_queue_depth", queue="sms", lane="transactional") == 0
    # the worker's own: its provider calls and the queues it consumes
    calls = pick(
        worker,
        "hudhud_provider_request_duration_seconds_count",
        provider="taqnyat",
        call="POST /v1/messages",
        outcome="ok",
    )
    assert calls == 3
    assert pick(served, "hudhud_provider_request_duration_seconds_count", provider="taqnyat") == 0
    for queue in ("sms", "sms.bulk", "email", "voice.bulk"):
        assert pick(worker, "hudhud_worker_consuming", queue=queue) == 1
    for text in (worker_text, api_text):
        for secret in (*NUMBERS, BODY, *ids):
            assert secret not in text


@pytest.mark.timeout(120)
def test_a_worker_whose_metrics_port_is_taken_runs_on(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with running_stack(tmp_path, extra_env={"HUDHUD_METRICS_PORT": str(port)}, beat=False) as stack:
            stack.wait_log("w1", "metrics not served", timeout=30)
            receipt = stack.hudhud.send_sms(NUMBERS[0], BODY)
            assert stack.wait_status([receipt.id], {"sent"}, timeout=60)[receipt.id] == "sent"
    finally:
        taken.close()


@pytest.mark.timeout(180)
def test_a_prefork_worker_serves_what_its_pool_processes_called(tmp_path: Path) -> None:
    port = free_port()
    with idle_stack(tmp_path, extra_env={"HUDHUD_METRICS_PORT": str(port)}) as stack:
        stack.start_worker("w1", pool="prefork", concurrency=2)
        ids = [stack.hudhud.send_sms(n, BODY).id for n in NUMBERS]
        stack.wait_status(ids, {"sent"}, timeout=90)
        figures = read(f"http://127.0.0.1:{port}/metrics")
    assert pick(figures, "hudhud_messages_total", channel="sms", provider="taqnyat", status="sent") == 3
    calls = pick(figures, "hudhud_provider_request_duration_seconds_count", provider="taqnyat", outcome="ok")
    assert calls == 3, "the pool processes' calls, read from their files by the worker's /metrics"
    assert pick(figures, "hudhud_worker_consuming", queue="sms") == 1
