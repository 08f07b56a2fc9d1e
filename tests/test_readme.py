"""The README's examples, run as written.

Every `sh` and `python` block of README.md runs, in the README's order, against one real
stack (redis-server, the sandbox, `hudhud worker` and `hudhud beat`: tests/stack.py) from a
folder laid out like a clone after `make dev`: `.venv/bin/hudhud` and `.hudhud/dev.env`.
Shell blocks run as a second terminal would run them, with no hudhud setting in the
environment; Python blocks run in one interpreter, as a web app would, with the stack's
settings in its environment; the sandbox's curl examples get `S`, `T` and `K` as its section
says. A block that cannot run here (it needs Docker, or runs until stopped) carries
`<!-- readme-test: static: <why> -->` on the line above its fence, and what it names is
checked instead: make targets, files, compose services and profiles, modules and their flags.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from hudhud.worker.ops.cli import main
from hudhud.worker.providers import registry
from tests.helpers import SANDBOX_TAIFA_KEY, SANDBOX_TAQNYAT_TOKEN
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_API_KEY = "hh_readme_key"  # the HTTP API's examples get it as $KEY, and its base URL as $API
RUNNABLE = ("sh", "python", "js", "php")
INTERPRETERS = {"js": ["node", "--input-type=module"], "php": ["php"]}  # the code on stdin
OUTPUTS = ("", "json")  # plain blocks (synopses, diagrams, printed output) and JSON answers
STATIC = re.compile(r"^<!-- readme-test: static: (?P<why>.+) -->$")
OWN_PREFIXES = ("HUDHUD_", "TAQNYAT_", "TAIFA_", "FLOWER_")
SANDBOX_SECTION = "The sandbox"
SETTLED = ("queued", "sending", "held_taqnyat", "held_taifa")


@dataclass
class Block:
    line: int  # of the opening fence
    lang: str
    code: str
    section: str
    static: str | None  # why it cannot run here


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            marker = STATIC.match(lines[index - 1]) if index else None
            end = lines.index("```", index + 1)
            code = "\n".join(lines[index + 1 : end]) + "\n"
            why = marker["why"] if marker else None
            blocks.append(Block(index + 1, line[3:].strip(), code, section, why))
            index = end
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(extra)
    return env


# --- what the README holds ---------------------------------------------------------------


def test_every_code_block_runs_or_says_why_not() -> None:
    languages = {b.lang for b in BLOCKS}
    assert languages <= {*RUNNABLE, *OUTPUTS}, f"unknown block languages {languages}"
    runnable = [b for b in BLOCKS if b.lang in RUNNABLE]
    assert len([b for b in runnable if b.static is None]) >= 15
    for block in BLOCKS:
        if block.lang not in RUNNABLE:
            assert block.static is None, f"README.md:{block.line}: only {RUNNABLE} blocks run"
        elif block.lang == "python":
            compile(block.code, f"README.md:{block.line}", "exec")
    marked = {b.line for b in BLOCKS if b.static}
    assert marked, "the Docker and `make` blocks are static"
    assert all(len(b.static) > 20 for b in BLOCKS if b.static), "a static block says why it cannot run"


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _check_static_command(words: list[str], block: Block) -> None:
    where = f"README.md:{block.line}: {' '.join(words)}"
    if words[0] == "make":
        assert set(words[1:]) <= _makefile_targets(), where
    elif words[0] == "cp":
        assert (ROOT / words[1]).is_file(), where
    elif words[:2] == ["docker", "compose"]:
        _check_compose_command(words[2:], where)
    elif words[0] == "export":
        pass
    elif words[0] == "hudhud":
        command = main.get_command(click.Context(main), words[1])
        assert command is not None, where
        shown = subprocess.run(
            [sys.executable, "-m", "hudhud.worker.ops.cli", *words[1:2], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for flag in (w for w in words[2:] if w.startswith("--")):
            assert flag.split("=")[0] in shown, where
    elif words[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(words[2]) is not None, where
        shown = subprocess.run(
            [sys.executable, "-m", words[2], "--help"], capture_output=True, text=True, timeout=60
        ).stdout
        for flag in (w for w in words[3:] if w.startswith("--")):
            assert flag.split("=")[0] in shown, where
    else:
        raise AssertionError(f"{where}: no static check for this command")


def _check_compose_command(args: list[str], where: str) -> None:
    compose = _compose()
    services = compose["services"]
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    while args and args[0] == "--profile":
        assert args[1] in profiles, where
        args = args[2:]
    assert args[0] in {"up", "ps", "down", "logs", "config", "build", "stop"}, where
    for index, arg in enumerate(args):
        if arg == "--scale":
            assert args[index + 1].split("=")[0] in services, where


def test_static_blocks_name_what_exists() -> None:
    for block in (b for b in BLOCKS if b.static and b.lang == "sh"):
        for line in block.code.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                _check_static_command(words, block)


def documented_variables(text: str) -> set[str]:
    """The variables named in the first column of the README's `| variable | default |` tables."""
    names: set[str] = set()
    in_table = False
    for line in text.splitlines():
        if line.startswith("| variable | default |"):
            in_table = True
        elif in_table and line.startswith("|"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
        else:
            in_table = False
    return names


def test_the_configuration_tables_list_every_setting() -> None:
    from tests.test_compose import setting_names

    missing = setting_names() - documented_variables(README.read_text())
    assert not missing, f"the README's configuration tables leave out {sorted(missing)}"


def test_synopses_name_real_commands() -> None:
    ctx = click.Context(main)
    named = {
        name
        for block in BLOCKS
        if block.lang == ""
        for name in re.findall(r"(?:^|\s)hudhud (\w+)", block.code, re.MULTILINE)
    }
    assert {"send", "status", "dev", "worker", "beat", "check"} <= named
    for name in named:
        assert main.get_command(ctx, name) is not None, f"the README names `hudhud {name}`"


# --- the examples, run --------------------------------------------------------------------


@dataclass
class Run:
    """What running the README gave: per shell block its output, the Python session's values."""

    stack: Stack
    clone: Path
    api: str = ""
    shell: dict[int, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    python: dict[str, Any] = field(default_factory=dict)

    def value(self, source_start: str) -> str:
        found = [v["value"] for v in self.python["values"] if v["source"].startswith(source_start)]
        assert found, f"no README expression starting {source_start!r}"
        return str(found[0])

    def output(self, section: str, fragment: str) -> str:
        for block in BLOCKS:
            if block.line in self.shell and block.section == section and fragment in block.code:
                return self.shell[block.line].stdout
        raise AssertionError(f"no shell block in {section} with {fragment!r}")


def _lay_out_clone(clone: Path, stack: Stack) -> None:
    """What `make dev` leaves for a second terminal: the venv and `.hudhud/dev.env`."""
    clone.mkdir()
    (clone / ".venv").symlink_to(ROOT / ".venv")
    (clone / ".hudhud").mkdir()
    settings = {k: v for k, v in stack.env.items() if k.startswith(("TAQNYAT_", "TAIFA_"))}
    settings["HUDHUD_REDIS_URL"] = stack.redis_server.url
    (clone / ".hudhud" / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))


def _run_shell(block: Block, run: Run) -> None:
    env = clean_env(S=run.stack.sandbox.url, T=SANDBOX_TAQNYAT_TOKEN, K=SANDBOX_TAIFA_KEY)
    env.update(API=run.api, KEY=README_API_KEY)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code],
        cwd=run.clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.md:{block.line} exited {result.returncode}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    run.shell[block.line] = result


def _run_client(block: Block, run: Run) -> None:
    """A Node or PHP example, as its reader runs it: against the API, with API and KEY set."""
    env = clean_env(API=run.api, KEY=README_API_KEY)
    result = subprocess.run(
        INTERPRETERS[block.lang],
        input=block.code,
        cwd=run.clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.md:{block.line} exited {result.returncode}:\n{result.stderr}"
    run.shell[block.line] = result


def _run_python(blocks: list[Block], run: Run, workdir: Path) -> None:
    (workdir / "blocks.json").write_text(json.dumps([{"line": b.line, "code": b.code} for b in blocks]))
    settings = {k: v for k, v in run.stack.env.items() if k.startswith(OWN_PREFIXES)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "readme_driver.py"), "blocks.json", "result.json"],
        cwd=workdir,
        env=clean_env(**settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    run.python = json.loads((workdir / "result.json").read_text())
    assert run.python["failed"] is None, run.python["failed"]["error"]


def _settle(stack: Stack) -> None:
    """Until nothing is waiting to be sent (scheduled messages aside), so the sandbox's own
    examples further down (a 20 % error rate, a balance of 0) meet no delivery."""
    wait_until(lambda: not any(stack.ledger.counts(registry.names())[name] for name in SETTLED), timeout=90)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("readme")
    with running_stack(workdir / "stack") as stack:
        api = stack.start_api(extra_env={"HUDHUD_API_KEYS": f"readme:{README_API_KEY}"})
        run = Run(stack, workdir / "clone", api)
        _lay_out_clone(run.clone, stack)
        runnable = [b for b in BLOCKS if b.lang in RUNNABLE and b.static is None]
        before = [b for b in runnable if b.section != SANDBOX_SECTION]
        for block in (b for b in before if b.lang in ("sh", "js", "php")):
            (_run_shell if block.lang == "sh" else _run_client)(block, run)
        _run_python([b for b in before if b.lang == "python"], run, run.clone)
        _settle(stack)
        for block in (b for b in runnable if b.section == SANDBOX_SECTION):
            assert block.lang == "sh", f"README.md:{block.line}"
            _run_shell(block, run)
        yield run


def test_quick_start_sends_from_a_second_terminal(readme_run: Run) -> None:
    printed = readme_run.output("Quick start", "status")
    message_id = re.search(r"^id\s+(\S+)$", printed, re.MULTILINE)
    assert message_id, printed
    assert readme_run.stack.ledger.status_of([message_id[1]]) == ["sent"]
    # a worker log line ties the delivery task to the message, and no recipient is logged
    worker_log = readme_run.stack.log("w1").read_text(errors="replace")
    assert re.search(rf"hudhud\.deliver\[[\w-]+\]: message '{message_id[1]}'", worker_log), worker_log[-3000:]
    assert "966500000000" not in worker_log


def test_command_line_examples_schedule_and_send(readme_run: Run) -> None:
    sms_id, email_id = readme_run.output("Sending", "--at").split()
    assert readme_run.stack.ledger.status_of([sms_id]) == ["scheduled"]
    assert readme_run.stack.ledger.status_of([email_id])[0] in ("sent", "delivered")


def test_python_examples_do_what_their_comments_say(readme_run: Run) -> None:
    ledger = readme_run.stack.ledger
    names = readme_run.python["names"]
    assert "202" in readme_run.value('send_code("966500000000"')
    refused = readme_run.value('send_code("0500000000"')
    assert "400" in refused and "'field': 'to[0]'" in refused and "international format" in refused
    assert ledger.status_of([names["receipt"]])[0] in ("sent", "delivered")
    assert ledger.status_of([names["call"]]) == ["cancelled"]
    assert readme_run.value("campaign.id, campaign.recipients").endswith(", 2500, 3)")
    assert "'status': 'scheduled'" in readme_run.value("hudhud.recipient_status(")
    assert "status='cancelled'" in readme_run.value("hudhud.cancel(campaign.id)")
    assert ledger.status_of([f"{names['campaign']}.{n}" for n in range(3)]) == ["cancelled"] * 3
    assert ledger.status_of([names["message_id"]])[0] in ("sent", "cancelled")
    assert ledger.status_of([names["email_id"]])[0] in ("sent", "delivered")


def test_http_examples_send_over_the_api(readme_run: Run) -> None:
    ledger = readme_run.stack.ledger
    printed = readme_run.output("Sending", "Idempotency-Key: otp-81-1")
    answers, decoder, at = [], json.JSONDecoder(), printed.find("{")
    while at != -1:
        answer, end = decoder.raw_decode(printed, at)
        answers.append(answer)
        at = printed.find("{", end)
    first, record, email = answers
    assert record["id"] == first["id"] and record["channel"] == "sms", "the replay gave the first id"
    assert email["status"] == "queued"
    ids = [
        line.split()[0]
        for b in BLOCKS
        if b.lang in ("js", "php") and b.static is None
        for line in readme_run.shell[b.line].stdout.splitlines()
    ]
    assert len(ids) == 2, ids
    wait_until(
        lambda: all(s in ("sent", "delivered") for s in ledger.status_of([first["id"], email["id"], *ids]))
    )


def test_sandbox_examples_answer_as_documented(readme_run: Run) -> None:
    answer = json.loads(readme_run.output(SANDBOX_SECTION, "/v1/messages -H"))
    assert answer["statusCode"] == 201 and answer["accepted"] == "[966500000000,]"
    balance = readme_run.output(SANDBOX_SECTION, "/account/balance")
    assert '"accountStatus":"active"' in balance
