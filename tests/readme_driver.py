"""Run the README's Python blocks in one interpreter, one after the other, as a reader would
paste them into one session: `python readme_driver.py BLOCKS.json RESULT.json`.

BLOCKS.json is a list of `{"line": N, "code": "..."}`. Every top-level expression's value is
kept (its README line, its source and its repr), like a notebook's output, so that a test
can hold the comments beside them to account. RESULT.json gets `{"values": [...], "names":
{...}, "failed": null | {"line", "error"}}`; `names` are the string ids of the receipts the
blocks made (`<name>.id`, or the name itself when it is a string).
"""

from __future__ import annotations

import ast
import json
import sys
import traceback
from typing import Any


def run(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    values: list[dict[str, Any]] = []
    for block in blocks:
        tree = ast.parse(block["code"])
        for statement in tree.body:
            line = block["line"] + statement.lineno
            source = ast.get_source_segment(block["code"], statement) or ""
            try:
                if isinstance(statement, ast.Expr):
                    code = compile(ast.Expression(statement.value), f"README.md:{line}", "eval")
                    values.append({"line": line, "source": source, "value": repr(eval(code, namespace))})
                else:
                    module = ast.Module(body=[statement], type_ignores=[])
                    exec(compile(module, f"README.md:{line}", "exec"), namespace)
            except Exception:
                failed = {"line": line, "error": traceback.format_exc()}
                return {"values": values, "names": {}, "failed": failed}
    return {"values": values, "names": _ids(namespace), "failed": None}


def _ids(namespace: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, str) and name.endswith("_id"):
            out[name] = value
        elif isinstance(getattr(value, "id", None), str):
            out[name] = value.id
    return out


if __name__ == "__main__":
    blocks_file, result_file = sys.argv[1], sys.argv[2]
    with open(blocks_file, encoding="utf-8") as f:
        result = run(json.load(f))
    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
