"""`hudhud check` and `hudhud dev`, run as real programs.

`check` runs against the real sandbox and a real redis-server; `dev` starts its own Redis,
sandbox, worker, beat and Flower in a temporary folder, is used from a second "terminal"
(other `hudhud` commands run from the same folder) and is then stopped with SIGINT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests

from hudhud.config import Settings
from hudhud.worker.runtime import make_ledger
from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN, RedisServer, Sandbox, free_port, run_cli

pytestmark = pytest.mark.e2e

OWN_PREFIXES = ("HUDHUD_", "TAQNYAT_", "TAIFA_", "FLOWER_")


def clean_env(**extra: str) -> dict[str, str]:
    """The inherited environment without any hudhud, provider or Flower setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(extra)
    return env


def hudhud(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, cwd=cwd, timeout=timeout)


def nothing_listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# --- hudhud check -------------------------------------------------------------------


@pytest.fixture()
def check_env(
    fresh_sandbox: Sandbox, redis_client: redis.Redis, redis_server: RedisServer
) -> Iterator[dict[str, str]]:
    yield clean_env(**fresh_sandbox.env(), HUDHUD_REDIS_URL=redis_server.url)
    fresh_sandbox.reset()


class Check:
    """One run of `hudhud check` (text) and one of `hudhud check --json` with the same settings."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.text_run = hudhud("check", env=env, cwd=cwd)
        self.json_run = hudhud("check", "--json", env=env, cwd=cwd)
        self.text = self.text_run.stdout
        self.report: dict[str, Any] = json.loads(self.json_run.stdout)
        self.everything = "".join(
            (self.text_run.stdout, self.text_run.stderr, self.json_run.stdout, self.json_run.stderr)
        )

    @property
    def codes(self) -> tuple[int, int]:
        return self.text_run.returncode, self.json_run.returncode

    def fact(self, provider: str, name: str) -> str:
        """The value printed on the line `  <name> <value>` under `<provider>:`."""
        block = self.text.split(f"{provider}:\n", 1)[1]
        match = re.search(rf"^  {re.escape(name)}\s+(.*)$", block, re.MULTILINE)
        assert match, f"no {name} under {provider}: {self.text}"
        return match.group(1)


def without_persistence_warning(warnings: list[str]) -> list[str]:
    """The test Redis keeps no AOF or RDB, which `check` warns about (tests/test_redis_safety.py)."""
    return [w for w in warnings if not w.startswith("redis: Redis persists nothing")]


def assert_no_secrets(run: Check, *secrets: str) -> None:
    for secret in (SANDBOX_TAQNYAT_TOKEN, SANDBOX_TAIFA_KEY, *secrets):
        assert secret not in run.everything
    assert "Traceback" not in run.everything


def test_check_reports_both_providers_ready(
    check_env: dict[str, str], fresh_sandbox: Sandbox, tmp_path: Path
) -> None:
    fresh_sandbox.knobs(balance="123.456")
    run = Check(check_env, tmp_path)
    assert run.codes == (0, 0), run.everything
    for provider in ("taqnyat", "taifa"):
        assert run.fact(provider, "reachable") == "True"
        assert run.fact(provider, "credentials") == "valid"
        assert run.fact(provider, "status") == "operational"
        assert run.fact(provider, "paused") == "no"
    assert run.fact("taqnyat", "balance") == "123.456 SAR"
    assert {"HUDHUD", "Taqnyat"} <= set(run.fact("taqnyat", "senders").split(", "))
    assert "redis: reachable" in run.text
    assert run.text.rstrip().splitlines()[-1] == "ok"
    assert "problem" not in run.text

    report = run.report
    assert report["ok"] is True and report["problems"] == []
    assert without_persistence_warning(report["warnings"]) == []
    assert report["redis"] == "reachable"
    assert set(report["ledger"]) >= {"scheduled", "queued", "sending"}
    taqnyat, taifa = report["providers"]["taqnyat"], report["providers"]["taifa"]
    assert taqnyat["reachable"] is True and taqnyat["credentials"] == "valid"
    assert taqnyat["status"] == "operational" and taqnyat["balance"] == "123.456 SAR"
    assert "HUDHUD" in taqnyat["senders"]
    assert taifa["reachable"] is True and taifa["credentials"] == "valid" and taifa["status"] == "operational"
    assert_no_secrets(run)


@pytest.mark.parametrize(
    ("variable", "provider", "other"),
    [("TAQNYAT_TOKEN", "taqnyat", "taifa"), ("TAIFA_API_KEY", "taifa", "taqnyat")],
)
def test_check_names_a_refused_credential(
    check_env: dict[str, str], tmp_path: Path, variable: str, provider: str, other: str
) -> None:
    wrong = f"tfm_k_wrong_{uuid.uuid4().hex}"
    run = Check({**check_env, variable: wrong}, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact(provider, "reachable") == "True"
    assert run.fact(provider, "credentials").startswith("refused (")
    assert "401" in run.fact(provider, "credentials")
    assert run.fact(other, "credentials") == "valid"
    assert f"problem: {provider}: {variable} refused" in run.text
    assert run.text.rstrip().splitlines()[-1] == "not ok: 1 problem(s)"

    report = run.report
    assert report["ok"] is False
    assert report["providers"][provider]["credentials"].startswith("refused")
    assert report["providers"][other]["credentials"] == "valid"
    assert len(report["problems"]) == 1 and variable in report["problems"][0]
    assert_no_secrets(run, wrong)


def test_check_reports_an_outage_and_an_empty_balance(
    check_env: dict[str, str], fresh_sandbox: Sandbox, tmp_path: Path
) -> None:
    fresh_sandbox.knobs(outage=True, outage_description="Planned works on SMS")
    run = Check(check_env, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact("taqnyat", "status") == "outage: Planned works on SMS"
    assert run.fact("taqnyat", "credentials") == "valid"
    assert run.report["problems"] == ["taqnyat: outage reported (Planned works on SMS)"]
    assert "problem: taqnyat: outage reported (Planned works on SMS)" in run.text

    fresh_sandbox.knobs(outage=False, balance="0")
    run = Check(check_env, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact("taqnyat", "status") == "operational"
    assert run.fact("taqnyat", "balance") == "0.000 SAR"
    assert run.report["problems"] == ["taqnyat: the balance is 0.000 SAR: every send is refused"]
    assert run.report["providers"]["taifa"]["credentials"] == "valid"

    fresh_sandbox.knobs(balance="4.5")
    run = Check(check_env, tmp_path)
    assert run.codes == (0, 0), run.everything
    assert run.report["problems"] == []
    assert without_persistence_warning(run.report["warnings"]) == [
        "taqnyat: the balance 4.500 SAR is at or below HUDHUD_LOW_BALANCE (10)"
    ]
    assert "warning: taqnyat: the balance 4.500 SAR" in run.text
    assert_no_secrets(run)


def test_check_reports_unreachable_providers_without_a_traceback(
    check_env: dict[str, str], tmp_path: Path
) -> None:
    closed = free_port()
    env = {
        **check_env,
        "TAQNYAT_BASE_URL": f"http://127.0.0.1:{closed}",
        "TAIFA_BASE_URL": f"http://127.0.0.1:{closed}/v1",
    }
    started = time.monotonic()
    run = Check(env, tmp_path)
    assert time.monotonic() - started < 120
    assert run.codes == (1, 1), run.everything
    for provider in ("taqnyat", "taifa"):
        assert run.fact(provider, "reachable") == "False"
        assert "could not connect" in run.fact(provider, "error")
        facts = run.report["providers"][provider]
        assert facts["reachable"] is False and "could not connect" in facts["error"]
    assert [p.split(":")[0] for p in run.report["problems"]] == ["taqnyat", "taifa"]
    assert all("unreachable" in p for p in run.report["problems"])
    assert_no_secrets(run)


def test_check_reports_a_bad_base_url_by_name(check_env: dict[str, str], tmp_path: Path) -> None:
    run = Check({**check_env, "TAQNYAT_BASE_URL": "api.taqnyat.sa"}, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact("taqnyat", "error").startswith("TAQNYAT_BASE_URL is invalid")
    assert run.report["providers"]["taifa"]["credentials"] == "valid"
    assert len(run.report["problems"]) == 1 and "TAQNYAT_BASE_URL" in run.report["problems"][0]
    assert_no_secrets(run)


@pytest.mark.parametrize(
    ("variable", "provider", "other"),
    [("TAQNYAT_TOKEN", "taqnyat", "taifa"), ("TAIFA_API_KEY", "taifa", "taqnyat")],
)
def test_check_names_a_missing_credential(
    check_env: dict[str, str], tmp_path: Path, variable: str, provider: str, other: str
) -> None:
    env = dict(check_env)
    del env[variable]
    run = Check(env, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact(provider, "credentials") == f"{variable} is not set"
    assert run.fact(other, "credentials") == "valid"
    assert run.report["problems"] == [f"{provider}: {variable} is not set"]
    assert_no_secrets(run)


def test_check_reports_redis_problems(check_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    run = Check({**check_env, "HUDHUD_REDIS_URL": f"redis://:hunter2pass@127.0.0.1:{port}/0"}, tmp_path)
    assert run.codes == (1, 1), run.everything
    said = f"unreachable (ConnectionError) at redis://:***@127.0.0.1:{port}/0"
    assert f"redis: {said}" in run.text, "named by its URL, the password masked"
    assert run.report["redis"] == said
    assert run.report["problems"] == [f"redis: {said}"]
    assert "hunter2pass" not in run.everything
    assert run.report["providers"]["taqnyat"]["credentials"] == "valid"
    assert_no_secrets(run)

    env = {**check_env, "HUDHUD_REDIS_URL": "localhost:6379"}
    text_run = hudhud("check", env=env, cwd=tmp_path)
    json_run = hudhud("check", "--json", env=env, cwd=tmp_path)
    assert (text_run.returncode, json_run.returncode) == (1, 1)
    assert "HUDHUD_REDIS_URL" in text_run.stderr and "Traceback" not in text_run.stderr
    assert json.loads(json_run.stdout)["field"] == "HUDHUD_REDIS_URL"


def test_check_reports_a_paused_provider_and_an_unknown_sender(
    check_env: dict[str, str], redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    ledger = make_ledger(Settings(_env_file=None, HUDHUD_REDIS_URL=redis_server.url), redis_client)
    assert ledger.pause("taifa", {"kind": "account", "error": "taifa HTTP 401", "since": time.time()})
    run = Check({**check_env, "TAQNYAT_SENDER": "NOSUCHNAME"}, tmp_path)
    assert run.codes == (1, 1), run.everything
    assert run.fact("taifa", "paused") == "account: taifa HTTP 401"
    assert run.fact("taqnyat", "paused") == "no"
    assert run.report["problems"] == [
        "taqnyat: TAQNYAT_SENDER NOSUCHNAME is not a sender of the account",
        "taifa: delivery is paused (account: taifa HTTP 401)",
    ]
    assert_no_secrets(run)


# --- hudhud dev ---------------------------------------------------------------------

ROLES = {"redis", "sandbox", "worker", "beat", "flower", "api", "callbacks"}


def settled_roles(dev: Any, timeout: float = 15.0) -> list[str]:
    """The roles of the dev stack's children, once no child is between fork and exec (a
    snapshot taken then shows one part twice, once with no command line yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            roles = [role(child) for child in dev.children()]
        except psutil.NoSuchProcess:
            roles = []
        if sorted(roles) == sorted(ROLES) or time.monotonic() > deadline:
            return roles
        time.sleep(0.2)


def role(proc: psutil.Process) -> str:
    """Which part of the dev stack a child is, before or after it exec'd into celery."""
    argv = proc.cmdline()
    if proc.name() == "redis-server":
        return "redis"
    for marker in ("hudhud.worker.broker.celery_app", "hudhud.worker.ops.flower", "hudhud.worker.ops.cli"):
        if marker in argv and argv.index(marker) + 1 < len(argv):
            return argv[argv.index(marker) + 1]
    return " ".join(argv)


class DevRun:
    """`hudhud dev` as a program in a folder of its own, as a developer runs it."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        ignore_sigint: bool = False,
        concurrency: int | None = 4,
        sandbox_port: int | None = None,
        python: str = sys.executable,
        output: int | None = None,
        **env: str,
    ) -> None:
        """`concurrency` None: dev's default; `output`: a file descriptor for its stdout and
        stderr (default: the file `self.log`)."""
        self.folder = tmp_path / "project"
        self.folder.mkdir(exist_ok=True)
        self.log = tmp_path / "dev.log"
        ports = set()
        while len(ports) < 4:
            ports.add(free_port())
        self.redis_port, self.sandbox_port, self.flower_port, self.api_port = sorted(ports)
        self.sandbox_port = sandbox_port or self.sandbox_port
        self.env = clean_env(**env)
        self.seen: dict[int, psutil.Process] = {}
        argv = [python, "-m", "hudhud.worker.ops.cli", "dev", "--redis-port", str(self.redis_port)]
        argv += ["--sandbox-port", str(self.sandbox_port), "--flower-port", str(self.flower_port)]
        argv += ["--api-port", str(self.api_port)]
        argv += ["--concurrency", str(concurrency)] if concurrency is not None else []
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=self.env,
                stdout=out if output is None else output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        """The processes it started so far (all of them are remembered for the clean-up)."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        for child in found:
            self.seen.setdefault(child.pid, child)
        return found

    def wait_output(self, text: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            if text in output:
                return output
            if self.proc.poll() is not None:
                raise AssertionError(f"hudhud dev exited with {self.proc.returncode}:\n{output[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"hudhud dev did not print {text!r} in {timeout}s:\n{self.output()[-4000:]}")

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C as a terminal sends it: to the foreground process group, which is only `dev`."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def survivors(self, timeout: float = 15) -> list[psutil.Process]:
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=timeout)
        return alive

    def strays(self) -> list[psutil.Process]:
        """Any process still about that belongs to this stack, whether it was seen or not:
        its redis-server, or a process pointed at that Redis."""
        url = f"redis://127.0.0.1:{self.redis_port}/0"
        found = []
        for proc in psutil.process_iter():
            if proc.pid == os.getpid():
                continue
            try:
                argv = " ".join(proc.cmdline())
                ours = ("redis-server" in argv and f":{self.redis_port}" in argv) or (
                    proc.environ().get("HUDHUD_REDIS_URL") == url
                )
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if ours:
                found.append(proc)
        return found

    def kill_everything(self) -> None:
        if self.proc.poll() is None:
            self.children()
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        leftovers = {p.pid: p for p in [*self.seen.values(), *self.strays()] if p.is_running()}
        for child in leftovers.values():
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(list(leftovers.values()), timeout=15)


@pytest.fixture()
def dev_runs() -> Iterator[list[DevRun]]:
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        run.kill_everything()


def poll_status(
    message_id: str, accept: set[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        result = hudhud("status", message_id, "--json", env=env, cwd=cwd)
        assert result.returncode == 0, result.stdout + result.stderr
        record: dict[str, Any] = json.loads(result.stdout)
        if record["status"] in accept:
            return record
        assert time.monotonic() < deadline, f"{message_id} still {record['status']}: {record}"
        time.sleep(1)


def send(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = hudhud("send", *args, "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    receipt = json.loads(result.stdout)
    assert receipt["status"] in ("queued", "scheduled")
    return str(receipt["id"])


@pytest.mark.timeout(900)
def test_dev_runs_everything_and_ctrl_c_stops_it(dev_runs: list[DevRun], tmp_path: Path) -> None:
    flower_password = f"pw-{uuid.uuid4().hex[:12]}"
    dev = DevRun(tmp_path, FLOWER_BASIC_AUTH=f"dev:{flower_password}")
    dev_runs.append(dev)
    output = dev.wait_output("hudhud dev is running")
    assert "HUDHUD_REDIS_URL" not in dev.env

    listens = dict(re.findall(r"^  (redis|sandbox|flower|api)\s+(\S+)", output, re.MULTILINE))
    assert listens == {
        "redis": f"redis://127.0.0.1:{dev.redis_port}/0",
        "sandbox": f"http://127.0.0.1:{dev.sandbox_port}",
        "flower": f"http://127.0.0.1:{dev.flower_port}",
        "api": f"http://127.0.0.1:{dev.api_port}",
    }
    env_file = dev.folder / ".hudhud" / "dev.env"
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert written["HUDHUD_REDIS_URL"] == listens["redis"]
    assert written["TAQNYAT_BASE_URL"] == listens["sandbox"]
    assert written["TAIFA_BASE_URL"] == f"{listens['sandbox']}/v1"
    assert (dev.folder / ".hudhud" / "appendonlydir").is_dir()

    assert sorted(settled_roles(dev)) == sorted(ROLES)

    # a second terminal in the same folder, with nothing of hudhud in its environment
    terminal = clean_env()
    sms_body = f"dev sms {uuid.uuid4().hex[:8]}"
    sms_id = send(terminal, dev.folder, "sms", "--to", "966500000000", "--body", sms_body)
    email_id = send(
        terminal,
        dev.folder,
        "email",
        "--to",
        "amina@example.com",
        "--subject",
        "dev email",
        "--text",
        "hello",
    )
    voice_id = send(
        terminal, dev.folder, "voice", "--to", "966500000001", "--audio-url", "https://example.com/a.mp3"
    )
    sms = poll_status(sms_id, {"sent", "delivered"}, terminal, dev.folder)
    assert sms["attempts"] == 1 and sms["provider"] == "taqnyat" and sms["provider_message_id"]
    voice = poll_status(voice_id, {"sent", "delivered"}, terminal, dev.folder)
    assert voice["channel"] == "voice" and voice["provider_message_id"]
    email = poll_status(email_id, {"delivered"}, terminal, dev.folder)
    assert email["provider"] == "taifa" and "delivered" in [e["type"] for e in email["events"]]
    # the banner's curl example, as printed, sends over HTTP with dev's own key
    curl = re.search(r"^  (curl .*?)\n(?!   )", output, re.MULTILINE | re.DOTALL)
    assert curl is not None, output
    key = written["HUDHUD_API_KEYS"].partition(":")[2]
    assert key and key in curl.group(1)
    over_http = subprocess.run(["bash", "-c", curl.group(1)], capture_output=True, text=True, timeout=60)
    http_id = json.loads(over_http.stdout)["id"]
    assert poll_status(http_id, {"sent", "delivered"}, terminal, dev.folder)["channel"] == "sms"
    sends = requests.get(f"{listens['sandbox']}/_sandbox/sends", timeout=30).json()["sends"]
    assert [s["body"] for s in sends if s["channel"] == "sms"] == [sms_body, "hello over HTTP"]

    check = hudhud("check", "--json", env=terminal, cwd=dev.folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True

    assert requests.get(listens["flower"], timeout=30).status_code == 401
    page = requests.get(listens["flower"], auth=("dev", flower_password), timeout=30)
    assert page.status_code == 200 and "Flower" in page.text
    assert flower_password not in dev.output()

    children = dev.children()
    assert sorted(role(p) for p in dev.strays()) == sorted(ROLES)
    assert dev.interrupt() == 0, dev.output()[-4000:]
    assert dev.survivors() == [], [c.pid for c in dev.survivors(0)]
    assert not any(child.is_running() for child in children)
    assert dev.strays() == []
    for port in (dev.redis_port, dev.sandbox_port, dev.flower_port, dev.api_port):
        assert nothing_listens(port), port
    assert not env_file.exists()
    output = dev.output()
    assert "hudhud dev: stopping" in output
    assert "Traceback" not in output
    assert "exited with status" not in output


@pytest.mark.timeout(600)
def test_dev_stops_cleanly_when_interrupted_while_starting(dev_runs: list[DevRun], tmp_path: Path) -> None:
    dev = DevRun(tmp_path)
    dev_runs.append(dev)
    deadline = time.monotonic() + 120
    while not dev.children():
        assert dev.proc.poll() is None, dev.output()
        assert time.monotonic() < deadline, dev.output()
        time.sleep(0.05)
    assert dev.interrupt() == 0, dev.output()[-4000:]
    dev.children()
    assert dev.seen
    assert dev.survivors() == []
    assert dev.strays() == []
    for port in (dev.redis_port, dev.sandbox_port, dev.flower_port):
        assert nothing_listens(port), port
    assert "Traceback" not in dev.output()


@pytest.mark.timeout(600)
def test_dev_obeys_sigint_when_started_with_it_ignored_and_a_second_one_kills(
    dev_runs: list[DevRun], tmp_path: Path
) -> None:
    dev = DevRun(tmp_path, ignore_sigint=True)
    dev_runs.append(dev)
    dev.wait_output("hudhud dev is running")
    children = {role(child): child for child in dev.children()}
    assert set(children) == ROLES
    children["sandbox"].suspend()
    os.killpg(dev.proc.pid, signal.SIGINT)
    dev.wait_output("hudhud dev: stopping", timeout=60)
    time.sleep(3)
    assert dev.proc.poll() is None, "it should still be waiting for the suspended sandbox"
    started = time.monotonic()
    assert dev.interrupt(timeout=60) == 0, dev.output()[-4000:]
    assert time.monotonic() - started < 20
    assert dev.survivors() == []
    assert dev.strays() == []
    for port in (dev.redis_port, dev.sandbox_port, dev.flower_port):
        assert nothing_listens(port), port
