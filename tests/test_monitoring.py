"""Monitoring: deploy/prometheus (the scrape config, the alert rules and their unit tests) and
deploy/grafana (the dashboard), checked with Debian's `prometheus` and `promtool` (installed by
`make prometheus`, part of `make test`).

The rules and the example config pass `promtool`; every metric and label the rules and the
dashboard's queries name is one hudhud exposes (read from a real scrape); the dashboard's
queries parse as PromQL. End to end, a real Prometheus, configured from the example, scrapes a
real worker and a real `hudhud api`: it counts the sends, finds one series per ledger figure
after `max without(instance, job)`, evaluates every rule without an error, fires a low-balance
alert once for two targets, and says no worker consumes once the worker is stopped. Neither
a scrape nor Prometheus holds a number, a body or a message id.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hudhud.config import Settings
from hudhud.worker.ledger import Ledger, NewMessage, overview
from hudhud.worker.ledger.keys import CALLBACKS_STATS, FAILOVER_STATS, held_key, pause_key
from hudhud.worker.ledger.status import Status
from hudhud.worker.ops import metrics
from hudhud.worker.providers.http import REQUEST_SECONDS
from tests.helpers import free_port, wait_for_port
from tests.stack import running_stack, wait_until

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hudhud.json"
GRAFANA = ROOT / "deploy" / "grafana" / "provisioning"
NUMBERS = [f"96650004{i:04d}" for i in range(3)]
BODY = "monitoring code 4471"
PROMETHEUS_OWN = {"up": {"job", "instance"}}  # series Prometheus adds to every target
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
WORD = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# what an annotation may name: the labels the rules keep, none of them personal
TEMPLATE_LABELS = {"provider", "channel", "queue", "lane", "currency", "instance", "job"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in panels(dashboard()) for target in panel["targets"]]


# --- reading PromQL -----------------------------------------------------------------------


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names a PromQL expression uses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\w+", "", text)  # Grafana's variables ($__rate_interval)
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for inside in re.findall(r"\{([^}]*)\}", text):
        labels |= set(MATCHER.findall(inside))
    text = re.sub(r"\{[^}]*\}", " ", text)
    for _, listed in GROUPING.findall(text):
        labels |= {name.strip() for name in listed.split(",") if name.strip()}
    text = GROUPING.sub(" ", text)
    metrics_ = {
        m.group()
        for m in WORD.finditer(text)
        if m.group() not in KEYWORDS and not re.match(r"\s*\(", text[m.end() :])
    }
    return metrics_, labels


def test_reading_promql_finds_metrics_and_labels_not_functions() -> None:
    found = names_in(
        "histogram_quantile(0.95, sum by(le, provider)"
        ' (rate(a_seconds_bucket{call=~"POST .*"}[$__rate_interval])))'
        " / on(provider) group_left() max without(instance, job) (b_total) > 0 and (c or vector(0))"
    )
    assert found == ({"a_seconds_bucket", "b_total", "c"}, {"le", "provider", "call", "instance", "job"})


@pytest.fixture()
def exposed(redis_client: redis.Redis) -> dict[str, set[str]]:
    """Every series name a hudhud target serves, with its labels, from a scrape of a ledger
    that has a figure of each kind, a consumer and a provider call."""
    ledger = Ledger(
        redis_client, retention_seconds=3600, idempotency_ttl=86400, lease_seconds=30, park_after=60
    )
    ledger.create(
        NewMessage(
            id="m1",
            channel="sms",
            provider="taqnyat",
            payload={"to": [NUMBERS[0]], "body": BODY},
            request_hash="m1",
        ),
        now=1000.0,
    )
    claim = ledger.claim("m1", "taqnyat", now=1001.0)
    ledger.transition("m1", to=Status.SENT, expect=Status.SENDING, now=1001.0, token=claim.attempts)
    redis_client.set(pause_key("taqnyat"), json.dumps({"kind": "balance", "since": 1.0}))
    redis_client.zadd(held_key("taqnyat"), {"h1": 1.0})
    overview.remember_balance(ledger, "taqnyat", "12.5", "SAR", now=1.0)
    redis_client.hset(CALLBACKS_STATS, mapping={"pending": 1, "attempt:200": 1})
    redis_client.hset(FAILOVER_STATS, "taifa>taqnyat:outage", 1)
    REQUEST_SECONDS.labels("taqnyat", "POST /v1/messages", "ok")
    into = CollectorRegistry()
    into.register(metrics.LedgerCollector(lambda: ledger, Settings()))
    into.register(metrics.ConsumingCollector(lambda: ["sms"]))
    into.register(REQUEST_SECONDS)
    out: dict[str, set[str]] = {name: set(labels) for name, labels in PROMETHEUS_OWN.items()}
    for family in text_string_to_metric_families(metrics.exposition(into).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def assert_known(expr: str, exposed: dict[str, set[str]]) -> None:
    used, labels = names_in(expr)
    assert used, f"no metric in {expr!r}"
    assert used <= set(exposed), f"{sorted(used - set(exposed))} are not hudhud's metrics: {expr!r}"
    allowed = set().union(*(exposed[name] for name in used)) | TARGET_LABELS
    assert labels <= allowed, f"{sorted(labels - allowed)} are not labels of {sorted(used)}: {expr!r}"


def test_the_rules_and_the_dashboard_name_only_what_hudhud_exposes(exposed: dict[str, set[str]]) -> None:
    assert "hudhud_messages_total" in exposed and "hudhud_worker_consuming" in exposed
    assert {"channel", "provider", "status"} <= exposed["hudhud_messages_total"]
    for expr in [rule["expr"] for rule in alert_rules()] + dashboard_exprs():
        assert_known(expr, exposed)
    with pytest.raises(AssertionError, match="not hudhud's metrics"):
        assert_known("rate(hudhud_messages_sent_total[5m])", exposed)
    with pytest.raises(AssertionError, match="not labels"):
        assert_known("sum by(chanel) (hudhud_messages_total)", exposed)


# --- the rules and the config, by promtool -------------------------------------------------


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {check["alertname"] for test in tests for check in test["alert_rule_test"] if check["exp_alerts"]}
    assert fired == {rule["alert"] for rule in alert_rules()}, "each alert is seen firing"


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    for name in ("alerts.yml", "alerts_test.yml"):
        (tmp_path / name).write_text((PROMETHEUS / name).read_text())
    rules = tmp_path / "alerts.yml"
    broken = rules.read_text().replace("(hudhud_provider_paused) == 1", "(hudhud_provider_paused) == 2")
    assert broken != rules.read_text()
    rules.write_text(broken)
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "HudhudProviderPaused" in result.stdout + result.stderr


def test_every_alert_says_what_and_names_nothing_personal() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        for text in rule["annotations"].values():
            named = set(re.findall(r"\$labels\.(\w+)", text))
            assert named <= TEMPLATE_LABELS, (rule["alert"], named)
            assert re.findall(r"\{\{[^}]*\}\}", text) == re.findall(
                r"\{\{ \$(?:labels\.\w+|value(?: \| humanize\w*)?) \}\}", text
            ), (rule["alert"], text)


def test_the_example_scrape_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout
    assert "SUCCESS: 1 rule files found" in result.stdout


# --- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_asks_for_its_data_source() -> None:
    board = dashboard()
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    source = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    found = list(panels(board))
    assert len(found) >= 15
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in found:
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == source for t in panel["targets"]), panel["title"]


def test_the_dashboard_shows_each_part_of_hudhud() -> None:
    used = set().union(*(names_in(e)[0] for e in dashboard_exprs()))
    assert {
        "hudhud_messages_total",
        "hudhud_send_duration_seconds_bucket",
        "hudhud_provider_request_duration_seconds_bucket",
        "hudhud_queue_depth",
        "hudhud_queue_oldest_age_seconds",
        "hudhud_provider_paused",
        "hudhud_provider_balance",
        "hudhud_callbacks_pending",
        "hudhud_callback_attempts_total",
        "hudhud_in_doubt_total",
        "hudhud_in_doubt_waiting",
        "hudhud_failover_moves_total",
        "hudhud_worker_consuming",
    } <= used
    quantiles = {
        q for e in dashboard_exprs() for q in re.findall(r"histogram_quantile\((0\.\d+), .*send_duration", e)
    }
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_the_dashboards_queries_parse(tmp_path: Path) -> None:
    """Each query as a recording rule: promtool parses it as Prometheus would."""
    records = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": records}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "dashboard.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_grafana_provisioning_finds_the_dashboard_and_prometheus() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "dashboards" / "hudhud.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    (source,) = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


# --- end to end: a real Prometheus scraping a real worker and the API ----------------------


def local_config(folder: Path, targets: dict[str, str]) -> Path:
    """The example config with its targets on this machine, scraped and evaluated each second."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        for discovery in [k for k in job if k.endswith("_configs")]:
            del job[discovery]
        job["static_configs"] = [{"targets": [targets.pop(job["job_name"])]}]
    assert targets == {}, "a job of each kind"
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def prometheus(folder: Path, targets: dict[str, str]) -> Iterator[str]:
    port = free_port()
    config = local_config(folder, targets)
    with open(folder / "prometheus.log", "ab") as log:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, 30, proc)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/-/ready", timeout=5).ok, timeout=30)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def api_call(base: str, path: str, **params: str) -> Any:
    answer = requests.get(f"{base}/api/v1/{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


def query(base: str, expr: str) -> list[dict[str, Any]]:
    return list(api_call(base, "query", query=expr)["result"])


def values(result: list[dict[str, Any]]) -> list[float]:
    return sorted(float(r["value"][1]) for r in result)


def alerts(base: str, name: str) -> list[dict[str, Any]]:
    return [a for a in api_call(base, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def moment(stamp: str) -> datetime:
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC, microsecond=int((fraction + "000000")[:6]))


def rules_evaluated_since(base: str, since: datetime) -> list[dict[str, Any]] | None:
    rules = [r for g in api_call(base, "rules")["groups"] for r in g["rules"]]
    return rules if all(moment(r["lastEvaluation"]) > since for r in rules) else None


def scraped(port: int) -> str:
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    answer.raise_for_status()
    return answer.text


@pytest.mark.timeout(150)
def test_prometheus_scrapes_a_worker_and_the_api(tmp_path: Path) -> None:
    port = free_port()
    env = {"HUDHUD_METRICS_PORT": str(port), "HUDHUD_LOW_BALANCE": "1000000"}
    with running_stack(tmp_path, concurrency=4, extra_env=env) as stack:
        api = stack.start_api().removeprefix("http://")
        targets = {"hudhud-worker": f"127.0.0.1:{port}", "hudhud-api": api}
        with prometheus(tmp_path, targets) as base:
            ids = [stack.hudhud.send_sms(number, BODY).id for number in NUMBERS]
            stack.wait_status(ids, {Status.SENT}, timeout=60)
            sent = 'hudhud_messages_total{channel="sms", provider="taqnyat", status="sent"}'
            # every target serves the ledger's count; max without(instance, job) makes it one
            assert wait_until(lambda: values(query(base, sent)) == [3.0, 3.0], timeout=30)
            (one,) = query(base, f"max without(instance, job) ({sent})")
            assert float(one["value"][1]) == 3
            consuming = wait_until(lambda: query(base, "hudhud_worker_consuming"), timeout=30)
            assert {r["metric"]["job"] for r in consuming} == {"hudhud-worker"}
            assert {"sms", "sms.bulk", "email"} <= {r["metric"]["queue"] for r in consuming}
            calls = (
                'hudhud_provider_request_duration_seconds_count{provider="taqnyat", call="POST /v1/messages"}'
            )
            assert values(query(base, f"sum({calls})")) == [3.0]

            # beat read the sandbox's balance: every rule evaluates on real series without an error
            wait_until(lambda: query(base, "hudhud_provider_balance"), timeout=30)
            now = datetime.now(UTC)
            rules = wait_until(lambda: rules_evaluated_since(base, now), timeout=30)
            assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
            assert [r["name"] for r in rules if r["health"] != "ok"] == []
            low = wait_until(lambda: alerts(base, "HudhudBalanceLow"), timeout=30)
            assert [(a["labels"]["provider"], a["state"]) for a in low] == [("taqnyat", "firing")]
            assert alerts(base, "HudhudNoWorkerConsuming") == []

            # each of the dashboard's queries answers; the sends, queues and workers have data
            # (a rate once two scrapes have the counter)
            def dashboard_answers() -> dict[str, list[dict[str, Any]]]:
                return {
                    panel["title"]: query(base, target["expr"].replace("$__rate_interval", "1m"))
                    for panel in panels(dashboard())
                    for target in panel["targets"][:1]
                }

            shown = ("Sends a second", "Queue depth", "Workers consuming each queue", "Balance")
            wait_until(lambda: all(dashboard_answers()[title] for title in shown), timeout=30)

            text = scraped(port)
            series = json.dumps(api_call(base, "series", **{"match[]": '{job=~"hudhud-.*"}'}))
            for secret in (*NUMBERS, BODY, *ids):
                assert secret not in text and secret not in series

            stack.kill("w1", signal.SIGTERM)
            down = wait_until(lambda: alerts(base, "HudhudNoWorkerConsuming"), timeout=30)
            assert [a["state"] for a in down] == ["pending"], "firing after two minutes"
            assert values(query(base, 'up{job="hudhud-worker"}')) == [0.0]
