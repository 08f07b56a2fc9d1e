"""A message's status, a claim's answer and a delivery's outcome are enum members in core code,
never bare words: `Status.SENT`, not "sent". A StrEnum equals its word, so a word slipped in
still works, which is why this reads the source instead of waiting for a bug.

Found: such a word compared (`==`, `!=`, `in`, `not in`), returned, assigned or passed where a
status is meant (`status`, `to`, `expect`, ...), given positionally to a call, or gathered in
a set, tuple or list of statuses; an outcome word compared with `.outcome` or `.result`, or
given to `Outcome(...)` / `Claim(...)`. Left alone: docstrings, f-strings, dict keys and
subscripts (a record's fields, the JSON keys of a summary), and the few calls named below
whose words are index names or record fields.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from hudhud.worker.ledger.status import ClaimOutcome, DeliveryOutcome, Status

ROOT = Path(__file__).resolve().parent.parent
SCANNED = (
    *sorted((ROOT / "worker" / "producer").glob("*.py")),
    *sorted((ROOT / "worker" / "delivery").glob("*.py")),
    *sorted((ROOT / "worker" / "jobs").glob("*.py")),
    *sorted(p for p in (ROOT / "worker" / "ledger").glob("*.py") if p.name != "status.py"),
    ROOT / "worker" / "runtime.py",
    *sorted((ROOT / "tasks").glob("*.py")),
)

STATUS_WORDS = frozenset(s.value for s in Status)
OUTCOME_WORDS = frozenset(o.value for o in (*ClaimOutcome, *DeliveryOutcome))
# Names (variables, attributes, keywords, parameters, dict keys) that hold a message's status.
STATUS_NAMES = frozenset({"status", "to", "expect", "previous", "current", "final"})
# Calls whose positional words are not statuses: an index named in a log line, a record's field.
NOT_STATUS_CALLS = frozenset({"report_gone", "get"})
OUTCOME_CALLS = frozenset({"Outcome", "Claim"})


def status_word(node: ast.AST) -> bool:
    """A literal status word, or a comma list of them (an `expect` of several)."""
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        return False
    return node.value in STATUS_WORDS or (
        "," in node.value and all(part in STATUS_WORDS for part in node.value.split(","))
    )


def words_of(node: ast.AST | None) -> Iterator[ast.AST]:
    """The literal status words an expression may evaluate to."""
    if node is None:
        return
    if isinstance(node, ast.IfExp):
        yield from words_of(node.body)
        yield from words_of(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from words_of(value)
    elif status_word(node):
        yield node


def elements(node: ast.AST) -> list[ast.expr] | None:
    """The items of a tuple, set or list display, or of `frozenset(...)`/`set(...)` of one."""
    if isinstance(node, ast.Call) and callee(node) in {"frozenset", "set", "tuple"} and node.args:
        node = node.args[0]
    if isinstance(node, ast.Tuple | ast.Set | ast.List):
        return list(node.elts)
    return None


def callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def named(target: ast.AST) -> str:
    """The name a target or operand goes by: `x`, `obj.x` and `row["x"]` are all `x`."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        return str(target.slice.value)
    return ""


def status_named(name: str) -> bool:
    return name in STATUS_NAMES or name.endswith("_status")


class Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, why: str) -> None:
        self.found.append((getattr(node, "lineno", 0), why))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        """An f-string's text is out of scope."""

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for operand in operands:
            for word in words_of(operand):
                self.flag(word, f"compared with {ast.unparse(word)}")
            items = elements(operand)
            if items and any(status_word(item) for item in items):
                self.flag(operand, f"compared with the words {ast.unparse(operand)}")
        outcome_side = any(isinstance(o, ast.Attribute) and o.attr in {"outcome", "result"} for o in operands)
        for operand in operands:
            if outcome_side and isinstance(operand, ast.Constant) and operand.value in OUTCOME_WORDS:
                self.flag(operand, f"an outcome compared with {operand.value!r}")
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        for word in words_of(node.value):
            self.flag(word, f"returns {ast.unparse(word)}")
        self.generic_visit(node)

    def assigned(self, target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for one, its in zip(target.elts, value.elts, strict=False):
                self.assigned(one, its)
            return
        if status_named(named(target)):
            for word in words_of(value):
                self.flag(word, f"{named(target)} = {ast.unparse(word)}")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.assigned(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.assigned(node.target, node.value)
        self.generic_visit(node)

    def visit_arguments(self, node: ast.arguments) -> None:
        params = [*node.posonlyargs, *node.args]
        defaults = [None] * (len(params) - len(node.defaults)) + list(node.defaults)
        pairs = [*zip(params, defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
        for param, default in pairs:
            if status_named(param.arg):
                for word in words_of(default):
                    self.flag(word, f"parameter {param.arg}={ast.unparse(word)}")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and status_named(key.value):
                for word in words_of(value):
                    self.flag(word, f"{{{ast.unparse(key)}: {ast.unparse(word)}}}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = callee(node)
        if name in OUTCOME_CALLS and node.args and isinstance(node.args[0], ast.Constant):
            self.flag(node, f"{name}({ast.unparse(node.args[0])})")
        if name not in NOT_STATUS_CALLS:
            for arg in node.args:
                for word in words_of(arg):
                    self.flag(word, f"{name}(... {ast.unparse(word)} ...)")
        for keyword in node.keywords:
            if keyword.arg and status_named(keyword.arg):
                for word in words_of(keyword.value):
                    self.flag(word, f"{keyword.arg}={ast.unparse(word)}")
        self.generic_visit(node)

    def visit_collection(self, node: ast.Tuple | ast.Set | ast.List) -> None:
        if node.elts and all(status_word(e) for e in node.elts):
            self.flag(node, f"a collection of status words {ast.unparse(node)}")
        self.generic_visit(node)

    visit_Tuple = visit_Set = visit_List = visit_collection


def bare_words(source: str) -> list[tuple[int, str]]:
    """(line, why) of every status or outcome word found in `source` (see the module's rules)."""
    finder = Finder()
    finder.visit(ast.parse(source))
    return sorted(set(finder.found))


# --- the rules, on snippets -------------------------------------------------------------
OLD_CODE = """
ANSWERED = frozenset({"sent", "rejected", "failed"})

class Claim:
    outcome: str
    status: str = "queued"

def deliver(self, claim, record, due, now):
    if claim.outcome == "wait":
        return Outcome("retry")
    if record.get("status") not in ("bounced", "failed", "rejected"):
        return "failed"
    self.end(message_id, claim, "rejected", error="refused")
    self.ledger.transition(mid, to="scheduled" if due > now else "queued", expect="queued,scheduled")
    to, zset = "queued", "queued"
    out["status"] = "rejected"
    return {"status": "cancelled"}

def is_final(status, tracked):
    return status == "sent" and not tracked
"""

NEW_CODE = '''
ANSWERED = frozenset({Status.SENT, Status.REJECTED, Status.FAILED})

class Claim:
    outcome: ClaimOutcome
    status: Status = Status.QUEUED

def deliver(self, claim, record, due, now):
    """Returns "sent" or "failed": a docstring says what it likes."""
    if claim.outcome is ClaimOutcome.WAIT:
        return Outcome(DeliveryOutcome.RETRY)
    if record.get("status") not in {Status.BOUNCED, Status.FAILED, Status.REJECTED}:
        return Status.FAILED
    self.end(message_id, claim, Status.REJECTED, error="refused")
    self.ledger.transition(mid, to=Status.SCHEDULED if due > now else Status.QUEUED, expect=WAITING)
    to, zset = Status.QUEUED, "queued"
    counts = {"sent": 0, "rejected": 0}
    counts["sent"] += 1
    fields["rejected"] = json.dumps(rejected)
    ctx.report_gone("queued", sweep.gone)
    log.info(f"message {mid} sent")
    for name in ("accepted", "rejected"):
        pass
    return status == Status.SENT and record.get("in_doubt") == "1"
'''


def test_the_old_words_are_found() -> None:
    found = bare_words(OLD_CODE)
    lines = {line for line, _ in found}
    why = " | ".join(w for _, w in found)
    # every line of the old code holds a bare word but the headers and `outcome: str`
    assert lines == {2, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20}, why
    for expected in (
        "a collection of status words",
        "status = 'queued'",
        "an outcome compared with 'wait'",
        "Outcome('retry')",
        "compared with the words ('bounced', 'failed', 'rejected')",
        "returns 'failed'",
        "end(... 'rejected' ...)",
        "to='scheduled'",
        "expect='queued,scheduled'",
        "to = 'queued'",
        "status = 'rejected'",
        "{'status': 'cancelled'}",
        "compared with 'sent'",
    ):
        assert expected in why


def test_the_new_code_passes() -> None:
    assert bare_words(NEW_CODE) == []


def test_a_status_parameter_default_is_found() -> None:
    assert bare_words('def end(status: str = "failed"):\n    pass\n') == [(1, "parameter status='failed'")]
    assert bare_words('def end(*, status="failed"):\n    pass\n') == [(1, "parameter status='failed'")]


# --- the tree -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_use_the_enums(path: Path) -> None:
    found = bare_words(path.read_text(encoding="utf-8"))
    assert not found, "\n".join(f"{path.relative_to(ROOT)}:{line}: {why}" for line, why in found)


def test_the_scan_covers_the_core() -> None:
    names = {str(p.relative_to(ROOT)) for p in SCANNED}
    for expected in (
        "worker/delivery/attempt.py",
        "worker/producer/campaign.py",
        "worker/ledger/__init__.py",
        "worker/jobs/recovery.py",
        "worker/runtime.py",
        "tasks/delivery.py",
    ):
        assert expected in names


def test_the_words_still_print_plain() -> None:
    import json

    assert str(Status.SENT) == "sent" and f"{Status.IN_DOUBT}" == "in_doubt"
    assert json.dumps({"status": Status.SENT, "outcome": DeliveryOutcome.RETRY}) == (
        '{"status": "sent", "outcome": "retry"}'
    )
    assert json.dumps({Status.QUEUED: 1}) == '{"queued": 1}'
