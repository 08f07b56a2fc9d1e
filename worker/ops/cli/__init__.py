"""The `hudhud` command line (see CONTRACT.md: send, status, changes, cancel, retry, resolve,
check, worker, beat, flower, sandbox, api, dev). Every command that answers takes `--json`.

- `sending`: send sms|email|voice, cancel, retry;
- `reading`: status, changes;
- `operating`: check, resolve;
- `running`: worker, beat, flower, sandbox, api, dev;
- `callbacks`: callbacks run|replay|status|enable;
- `redriving`: redrive (failed or expired messages sent again, as new linked messages);
- `suppressing`: suppress add|remove|list (the suppression list);
- `watching`: top (a live view of queues, sends, pauses and balances);
- `campaigning`: campaign sms|email|voice (one message to the recipients of a CSV file);
- `output` and `failures`: the answer, the one-line failure and the exit codes they share.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ops.cli import (
    callbacks,
    campaigning,
    operating,
    reading,
    redriving,
    running,
    sending,
    suppressing,
    watching,
)
from hudhud.worker.ops.cli.failures import origin as _origin
from hudhud.worker.ops.cli.failures import redis_failure as _redis_failure
from hudhud.worker.ops.cli.output import fail

__all__ = ["_origin", "_redis_failure", "main"]


class _Main(click.Group):
    """A setting that cannot be read is told in one line naming it (exit 1), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            fail("--json" in sys.argv[1:], str(exc), 1, field=exc.variable)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hudhud: delivers SMS, email and voice through Taqnyat and Taifa Mail."""


for _command in (
    sending.send,
    sending.cancel,
    sending.retry,
    reading.status,
    reading.changes,
    operating.check,
    operating.resolve,
    running.worker,
    running.beat,
    running.flower,
    running.sandbox,
    running.api,
    running.dev,
    callbacks.callbacks,
    redriving.redrive,
    suppressing.suppress,
    watching.top,
    campaigning.campaign,
):
    main.add_command(_command)
