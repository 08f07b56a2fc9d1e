"""hudhud installs under one name: a web app with its own `config/` and `tasks/` packages
imports the producer API and sends, from a fresh venv holding the built wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parent.parent

WEB_APP = {
    "config/__init__.py": "Settings = 'the web app own settings'\n",
    "config/settings.py": "DEBUG = True\n",
    "tasks/__init__.py": "def cleanup():\n    return 'web app task'\n",
    "worker/__init__.py": "",
    "send.py": textwrap.dedent(
        """
        import json, sys

        from config import Settings
        from tasks import cleanup
        from hudhud import Hudhud, InvalidInput

        assert Settings == "the web app own settings", Settings
        assert cleanup() == "web app task"
        hudhud = Hudhud()
        receipt = hudhud.send_sms("966500000000", "from a web app with a config package")
        try:
            hudhud.send_sms("not a number", "x")
        except InvalidInput as exc:
            refused = exc.field
        else:
            refused = None
        print(json.dumps({"id": receipt.id, "refused": refused}))
        """
    ),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the sources alone: a `build/` left in the checkout would add stale modules.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("hudhud", "config", "tasks", "worker"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            source,
        ],
        check=True,
        timeout=300,
    )
    return next(out.glob("hudhud-*.whl"))


def test_the_wheel_puts_nothing_but_hudhud_at_the_top(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("hudhud-")}
    assert tops == {"hudhud"}
    shipped = (
        "hudhud/config/settings.py",
        "hudhud/tasks/delivery.py",
        "hudhud/worker/producer/api.py",
        "hudhud/integrations/django.py",
    )
    for module in (*shipped, "hudhud/worker/ledger/lua/claim.lua", "hudhud/worker/ledger/lua/take.lua"):
        assert module in names


def _fresh_venv(where: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", where], check=True, timeout=120)
    python = where / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], check=True, timeout=300
    )
    # hudhud's own dependencies come from the test environment; hudhud itself only from the wheel.
    inner = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(inner, "deps-from-tests.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_a_web_app_with_config_and_tasks_packages_sends(tmp_path: Path, wheel: Path) -> None:
    python = _fresh_venv(tmp_path / "venv", wheel)
    app_dir = tmp_path / "webapp"
    for name, text in WEB_APP.items():
        (app_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / name).write_text(text)
    with running_stack(tmp_path / "stack", beat=False) as stack:
        result = _run_web_app(python, app_dir, stack)
        stack.wait_status([result["id"]], {"sent"})
    assert str(result["refused"]).startswith("to")


def _run_web_app(python: Path, app_dir: Path, stack: Stack) -> dict[str, str]:
    import json

    done = subprocess.run(
        [python, "send.py"], cwd=app_dir, env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    where = subprocess.run(
        [python, "-c", "import hudhud.worker.producer.api as p; print(p.__file__)"],
        cwd=app_dir,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in where, "hudhud came from the checkout, not from the wheel"
    return json.loads(done.stdout.strip().splitlines()[-1])
