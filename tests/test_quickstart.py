"""The quick start as a new user meets it: `make dev | tee dev.log` in a clone, commands from a
second terminal as the banner prints them, Ctrl-C, and the next start on the same ports.

`hudhud dev` runs as `make dev` runs it (`.venv/bin/python`, in the clone's folder), its
output going through a pipe that the test reads the way `tee` does, and closes the way
Ctrl-C ends `tee`, before `hudhud dev` has stopped anything.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hudhud.worker.ops import devstack
from hudhud.worker.ops.cli import main
from hudhud.worker.ops.processes import DEFAULT_CONCURRENCY
from tests.test_cli_ops import ROLES, DevRun, clean_env, nothing_listens, role

ROOT = Path(__file__).resolve().parents[1]


class Tee:
    """The reading end of a pipe, copied to a file as `tee` does; `end()` is `tee` ending."""

    def __init__(self, log: Path) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.log = log
        self.reading = True
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        with open(self.log, "ab") as out:
            while self.reading:
                ready, _, _ = select.select([self.read_fd], [], [], 0.1)
                if ready:
                    chunk = os.read(self.read_fd, 65536)
                    if not chunk:
                        return
                    out.write(chunk)
                    out.flush()

    def end(self) -> None:
        self.reading = False
        self.thread.join(10)
        os.close(self.read_fd)


@pytest.fixture()
def devs() -> Iterator[list[DevRun]]:
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        run.kill_everything()


def port_in_time_wait() -> int:
    """A port whose last connection was closed by its server side: it sits in TIME_WAIT, as
    the sandbox's port does for a minute after `hudhud dev` stopped."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the side that closes first keeps the TIME_WAIT
        client.recv(1)
        client.close()
    return port


def bind_plainly(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def banner_commands(output: str) -> tuple[str, str]:
    """The commands under "In another terminal:", and the line to run first elsewhere."""
    block = output.split("In another terminal:\n", 1)[1]
    lines = []
    for line in block.splitlines():  # the indented lines right under it, nothing printed later
        if not line.startswith("  "):
            break
        lines.append(line[2:])
    commands = "\n".join(lines)
    first = re.search(r"From another folder, first: (.+)$", output, re.MULTILINE)
    assert first, output
    return commands, first[1]


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-e", "-c", script], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120
    )


def test_a_port_in_time_wait_is_free_and_a_taken_one_moves_out_loud(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = port_in_time_wait()
    assert not bind_plainly(port), "the port should be in TIME_WAIT"
    assert devstack.port_free(port)
    assert devstack.pick_port(port, "the sandbox") == port
    assert capsys.readouterr().err == ""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        assert not devstack.port_free(busy)
        moved = devstack.pick_port(busy, "the sandbox")
    assert moved != busy
    assert f"port {busy} is in use by another program: the sandbox listens on {moved} instead" in (
        capsys.readouterr().err
    )


def test_dev_runs_the_greenlets_the_readme_says() -> None:
    shown = CliRunner().invoke(main, ["dev", "--help"]).output
    assert re.search(rf"--concurrency INTEGER\s+worker greenlets\s+\[default: {DEFAULT_CONCURRENCY}\]", shown)
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert f"worker ({DEFAULT_CONCURRENCY} greenlets)" in quick_start
    assert f"gevent pool with {DEFAULT_CONCURRENCY} greenlets" in readme


@pytest.mark.timeout(600)
def test_make_dev_piped_to_tee_then_ctrl_c(devs: list[DevRun], tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".venv").symlink_to(ROOT / ".venv")  # a clone after `make install`
    sandbox_port = port_in_time_wait()
    assert not bind_plainly(sandbox_port)
    tee = Tee(tmp_path / "dev.log")
    dev = DevRun(
        tmp_path, concurrency=None, sandbox_port=sandbox_port, python=".venv/bin/python", output=tee.write_fd
    )
    os.close(tee.write_fd)
    devs.append(dev)
    output = dev.wait_output("From another folder, first:")

    # the sandbox kept its port; nothing moved
    assert re.search(rf"^  sandbox +http://127\.0\.0\.1:{sandbox_port}  ", output, re.MULTILINE), output
    assert "instead" not in output
    # the worker runs the README's 50 greenlets
    workers = [p for p in dev.children() if role(p) == "worker"]
    argv = workers[0].cmdline()
    assert argv[argv.index("-c") + 1] == str(DEFAULT_CONCURRENCY), argv
    assert f"{DEFAULT_CONCURRENCY} greenlets" in output

    # the banner's commands work as printed: from this folder, and from another after its line
    commands, first = banner_commands(output)
    assert ".venv/bin/hudhud send sms" in commands
    assert "read from the current folder only" in output
    here = sh(commands, folder)
    assert here.returncode == 0, here.stdout + here.stderr
    assert re.search(r"^status\s+(queued|sending|sent)$", here.stdout, re.MULTILINE), here.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = commands.replace(".venv/bin/hudhud", str(folder / ".venv" / "bin" / "hudhud"))
    there = sh(f"{first}\n{absolute}", elsewhere)
    assert there.returncode == 0, there.stdout + there.stderr

    # Ctrl-C ends tee and hudhud dev alike: dev's output now goes to a closed pipe
    children = dev.children()
    assert sorted(role(p) for p in children) == sorted(ROLES)
    tee.end()
    os.killpg(dev.proc.pid, signal.SIGINT)
    assert dev.proc.wait(120) == 0
    assert dev.survivors() == [], [p.cmdline() for p in dev.survivors(0)]
    assert not any(p.is_running() for p in children)
    assert dev.strays() == []
    for port in (dev.redis_port, dev.sandbox_port, dev.flower_port, dev.api_port):
        assert nothing_listens(port), port
    assert not (folder / ".hudhud" / "dev.env").exists()
