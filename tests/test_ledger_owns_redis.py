"""The ledger owns Redis: no module outside `worker/ledger/` holds a Redis client of its own,
reaches through the ledger for its client, or writes a key (`hudhud:...`) itself.

The source of every module of the package is parsed (not imported): what is checked is what
the code says, whatever path runs. Catching redis-py's errors is allowed everywhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "tasks", "worker")
LEDGER = Path("worker/ledger")

# Modules that may hold a client, each with its reason. Keys are checked everywhere.
HOLDS_A_CLIENT = {
    "worker/broker/full_redis.py": "kombu's channel: a queue's lists without MULTI, on kombu's client",
    "worker/broker/qos.py": "kombu's unacked bookkeeping: an ack without MULTI, on kombu's client",
    "worker/broker/unreadable.py": "kombu's channel: the note of an unreadable item, on kombu's client",
}

CLIENT_CALLS = frozenset({"pipeline", "transaction", "register_script", "from_url"})
CLIENT_NAMES = frozenset(
    {"Redis", "StrictRedis", "ConnectionPool", "BlockingConnectionPool", "Sentinel", "RedisCluster"}
)
KEY_TEXT = re.compile(r"^hudhud:\S")  # "hudhud: delivers SMS" is prose, "hudhud:m:{}" a key


def modules() -> Iterator[Path]:
    """Every module of the package outside the ledger, relative to the repository."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if not relative.is_relative_to(LEDGER):
                yield relative
    yield Path("hudhud/__init__.py")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (prose, which may name a key)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text_of(node: ast.AST) -> str | None:
    """The literal text of a string or an f-string (`{}` for each value put in)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _tail(node: ast.AST) -> str:
    """The last name of `a.b.c` (`c`), or "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def client_uses(source: str) -> list[str]:
    """Where the source builds a Redis client, reaches for the ledger's, or drives one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "redis":
            if node.module != "redis.exceptions":
                names = [a.name for a in node.names if not a.name.endswith(("Error", "Exception"))]
                if names or node.module != "redis":
                    found.append(f"{line}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute):
            if node.attr == "redis" and "ledger" in _tail(node.value):
                found.append(f"{line}: {_tail(node.value)}.redis")
            elif node.attr in CLIENT_NAMES and _tail(node.value) == "redis":
                found.append(f"{line}: redis.{node.attr}")
            elif node.attr in ("client", "connection") and _tail(node.value) == "redis":
                found.append(f"{line}: redis.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in CLIENT_CALLS:
                found.append(f"{line}: .{node.func.attr}(")
    return found


def key_literals(source: str) -> list[str]:
    """Where the source writes a key of hudhud's (`hudhud:` then no space) as a literal."""
    tree = ast.parse(source)
    # docstrings are prose; a piece of an f-string is judged with the whole of it
    skipped = _docstrings(tree) | {
        id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        text = _text_of(node)
        if text is not None and KEY_TEXT.match(text):
            found.append(f"{node.lineno}: {text!r}")
    return found


def test_no_module_outside_the_ledger_holds_a_redis_client() -> None:
    offenders = {}
    for path in modules():
        if str(path) in HOLDS_A_CLIENT:
            continue
        uses = client_uses((ROOT / path).read_text())
        if uses:
            offenders[str(path)] = uses
    assert not offenders, f"ask the ledger instead: {offenders}"


def test_no_module_outside_the_ledger_writes_a_key() -> None:
    offenders = {}
    for path in modules():
        literals = key_literals((ROOT / path).read_text())
        if literals:
            offenders[str(path)] = literals
    assert not offenders, f"build keys in worker/ledger/keys.py: {offenders}"


def test_every_exception_still_needs_its_client() -> None:
    """A module that no longer uses a client leaves the list, so the list only shrinks."""
    for path, reason in HOLDS_A_CLIENT.items():
        assert (ROOT / path).exists(), f"{path} ({reason}) is gone: drop it from the list"
        assert client_uses((ROOT / path).read_text()), f"{path} holds no client any more: drop it"


@pytest.mark.parametrize(
    "source",
    [
        "import redis\nclient = redis.Redis(host='x')",
        "import redis\npool = redis.BlockingConnectionPool.from_url(url)",
        "from redis import Redis",
        "from redis.client import Pipeline",
        "def f(self):\n    return self.ledger.redis.get('x')",
        "def f(ledger):\n    ledger.redis.delete(k)",
        "def f(client):\n    pipe = client.pipeline(transaction=False)",
    ],
)
def test_a_client_is_found(source: str) -> None:
    assert client_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        "import redis\ntry:\n    f()\nexcept redis.RedisError:\n    pass",
        "import redis\nx = isinstance(e, redis.exceptions.OutOfMemoryError)",
        "from redis.exceptions import OutOfMemoryError, RedisError",
        "from redis import RedisError",
        "def f(self):\n    return self.ledger.get('x')",
    ],
)
def test_an_error_type_or_a_ledger_call_is_no_client(source: str) -> None:
    assert not client_uses(source)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('KEY = "hudhud:unreadable"', True),
        ('def k(i):\n    return f"hudhud:m:{i}"', True),
        ('def k(i):\n    return f"hudhud:{i}"', True),
        ('"""hudhud: delivers SMS."""', False),
        ('def f():\n    """Reads `hudhud:m:{id}`."""', False),
        ("from hudhud.worker.ledger import keys\nKEY = keys.UNREADABLE", False),
        ('TEXT = "hudhud: not a key"', False),
    ],
)
def test_a_key_literal_is_found(source: str, found: bool) -> None:
    assert bool(key_literals(source)) is found
