"""What every command shares: its answer (text, or one JSON object with `--json`), its failure
in one line and the exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from hudhud.worker.errors import printable

EXIT_INPUT = 2  # bad input: nothing was recorded

json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str) if as_json else text)


def fail(as_json: bool, message: str, code: int = 1, **extra: Any) -> NoReturn:
    message = printable(message)
    if as_json:
        click.echo(json.dumps({"error": message, **extra}, ensure_ascii=False))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)
