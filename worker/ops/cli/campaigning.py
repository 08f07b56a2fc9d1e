"""`hudhud campaign sms|email|voice --csv FILE`: one message to every recipient of a CSV file,
recorded as one campaign through the producer API, then followed to its end.

The file is read and checked in one pass before anything is recorded: a bad row stops it
(exit 2, the row and the field named, never the value). The campaign API sends one shared
message, so only the `to` column is used; other columns are named as unused.
"""

from __future__ import annotations

import codecs
import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click
import redis

from hudhud.worker.errors import ConfigurationError, InvalidInput
from hudhud.worker.ledger.status import Status
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option
from hudhud.worker.ops.cli.sending import _SendCommand
from hudhud.worker.producer import validation as v

if TYPE_CHECKING:
    from hudhud.worker.producer.api import Hudhud
    from hudhud.worker.producer.campaign import CampaignReceipt

TO = "to"
SHOWN_EVERY = 2000  # rows checked between two moves of the progress bar
POLL_SECONDS = 0.5


class BadRow(InvalidInput):
    """A row of the file that cannot be sent to (`row N: to: problem`)."""

    def __init__(self, row: int, problem: InvalidInput) -> None:
        self.row = row
        super().__init__(f"row {row}: {problem.field}", problem.message)


@dataclass(frozen=True)
class Recipients:
    to: list[str]
    rows: int  # rows with a recipient (blank lines are skipped)
    unused: tuple[str, ...]  # the header's other columns


def _lines(file: IO[bytes], moved: Callable[[int], None]) -> Iterator[str]:
    """The file's lines as text (a UTF-8 byte order mark dropped), telling `moved` the bytes read."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for line in file:
        moved(len(line))
        yield decoder.decode(line)


def _column(header: list[str] | None) -> tuple[int, tuple[str, ...]]:
    if header is None:
        raise InvalidInput("csv", "is empty: it needs a header row with a `to` column")
    names = [name.strip().lower() for name in header]
    if TO not in names:
        raise InvalidInput("csv", "has no `to` column in its header row")
    return names.index(TO), tuple(n for n in names if n and n != TO)


def read_recipients(file: IO[bytes], channel: str, moved: Callable[[int], None]) -> Recipients:
    """Every recipient of the file, checked for `channel`, in one pass. Rows count as a
    spreadsheet shows them: the header is row 1."""
    check = v.email if channel == "email" else v.msisdn
    reader = csv.reader(_lines(file, moved))
    row = 1
    try:
        column, unused = _column(next(reader, None))
        to = []
        for row, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            value = cells[column] if column < len(cells) else ""
            try:
                if not value.strip():
                    raise InvalidInput(TO, "is empty")
                to.append(check(value, TO))
            except InvalidInput as exc:
                raise BadRow(row, exc) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"row {row + 1}", "is not UTF-8 text") from None
    except csv.Error as exc:
        raise InvalidInput(f"row {row + 1}", f"is not CSV ({exc})") from None
    return Recipients(to, len(to), unused)


# --- the progress bars -----------------------------------------------------------------------


class _Bars:
    """The progress bars on stderr (none with --json)."""

    def __init__(self, shown: bool) -> None:
        self.progress: Any = None
        if shown:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description:12}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[told]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()

    def add(self, description: str, total: float | None) -> Callable[..., None]:
        """A bar; the function that moves it (`completed=`, and `told=`: the words after it)."""
        if self.progress is None:
            return lambda **_: None
        task = self.progress.add_task(description, total=total, told="")
        return lambda **moves: self.progress.update(task, **moves)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


# --- reading, recording, following -----------------------------------------------------------


def _read(path: str, channel: str, bars: _Bars) -> Recipients:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            move = bars.add("checking", size or None)
            found = read_recipients(file, channel, _every(SHOWN_EVERY, move))
            move(completed=size, told=f"rows: {found.rows}")
            return found
    except OSError as exc:
        raise InvalidInput("csv", f"cannot be read ({exc.strerror})") from None


def _every(lines: int, move: Callable[..., None]) -> Callable[[int], None]:
    """A byte counter that moves the bar (by the bytes read) once every `lines` lines."""
    seen = {"bytes": 0, "lines": 0}

    def moved(size: int) -> None:
        seen["bytes"] += size
        seen["lines"] += 1
        if seen["lines"] % lines == 0:
            move(completed=seen["bytes"], told=f"lines: {seen['lines']}")

    return moved


def _follow(api: Hudhud, campaign_id: str, total: int, bars: _Bars) -> dict[str, Any]:
    """Poll the campaign's summary until no batch is waiting, moving the bar by the recipients
    whose batch is no longer pending."""
    move = bars.add("handing over", total)
    while True:
        summary = api.status(campaign_id)
        done = total - int(summary["recipient_counts"].get("pending", 0))
        move(completed=done, told=f"recipients: {done}/{total}")
        if summary["final"]:
            return summary
        time.sleep(POLL_SECONDS)


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"{'id':20} {summary['id']}", f"{'status':20} {summary['status']}"]
    lines.append(f"{'recipients':20} {summary['recipients']}")
    for name, count in summary["recipient_counts"].items():
        if count:
            lines.append(f"  {name:18} {count}")
    if summary.get("suppressed"):
        lines.append(f"{'suppressed before':20} {summary['suppressed']} (on the suppression list)")
    if summary.get("cost"):
        lines.append(f"{'cost':20} {summary['cost']} {summary.get('currency') or ''}".rstrip())
    if summary.get("error"):
        lines.append(f"{'error':20} {summary['error']}")
    return lines


FOLLOWED = ("status", "final", "recipient_counts", "cost", "currency", "error")


def _record(
    channel: str, fields: dict[str, Any], path: str, bars: _Bars, as_json: bool
) -> tuple[Recipients, Hudhud, CampaignReceipt]:
    """Check the file, record the campaign: (the recipients read, the API, the receipt)."""
    from hudhud.worker.producer.api import Hudhud, IdempotencyConflict

    try:
        found = _read(path, channel, bars)
        move = bars.add("recording", 1)
        api = Hudhud()
        receipt = api.send_campaign(channel, {**fields, "to": found.to})
        move(completed=1, told=f"recipients: {receipt.recipients}, batches: {receipt.batches}")
        return found, api, receipt
    except IdempotencyConflict as exc:
        bars.stop()
        fail(as_json, str(exc), EXIT_INPUT, field="key", id=exc.existing_id)
    except BadRow as exc:
        bars.stop()
        fail(as_json, str(exc), EXIT_INPUT, field=TO, row=exc.row)
    except InvalidInput as exc:
        bars.stop()
        fail(as_json, str(exc), EXIT_INPUT, field=exc.field)
    except ConfigurationError as exc:
        bars.stop()
        fail(as_json, str(exc), EXIT_INPUT, field=exc.variable)
    except redis.RedisError as exc:
        bars.stop()
        fail(as_json, f"{redis_failure(exc)}: nothing was recorded", 1)


def _run(channel: str, fields: dict[str, Any], path: str, follow: bool, as_json: bool) -> None:
    bars = _Bars(not as_json)
    found, api, receipt = _record(channel, fields, path, bars, as_json)
    summary = None
    try:
        if follow and receipt.status != Status.SCHEDULED:
            summary = _follow(api, receipt.id, receipt.recipients, bars)
    except redis.RedisError as exc:
        bars.stop()
        fail(as_json, f"{redis_failure(exc)}: campaign {receipt.id} is recorded", 1)
    except KeyboardInterrupt:
        bars.stop()
        click.echo(f"following stopped; the campaign carries on: hudhud status {receipt.id}", err=True)
    bars.stop()
    _tell(receipt.as_dict(), found, summary, as_json)


def _tell(receipt: dict[str, Any], found: Recipients, summary: dict[str, Any] | None, as_json: bool) -> None:
    if found.unused and not as_json:
        unused = ", ".join(found.unused)
        click.echo(f"note: only the `to` column is used; not used: {unused}", err=True)
    data = {**receipt, "rows": found.rows, "unused_columns": list(found.unused)}
    if summary is not None:
        data.update({name: summary.get(name) for name in FOLLOWED})
    if as_json or summary is None:
        emit(as_json, data, receipt["id"])
    else:
        click.echo("\n".join(_summary_lines(summary)))


# --- the commands ----------------------------------------------------------------------------


def _common(command: Any) -> Any:
    """What every campaign command takes: the file, when, how long, the key, following."""
    options = (
        json_option,
        click.option("--no-follow", "no_follow", is_flag=True, help="print the campaign id and exit"),
        click.option("--key", help="idempotency key"),
        click.option("--lane", type=click.Choice(["transactional", "bulk"]), help="default bulk"),
        click.option("--expires-at", help="ISO 8601 time: not handed over by then, it ends expired"),
        click.option("--ttl", help="seconds from the send's time (--at, or now) until it expires"),
        click.option("--at", help="ISO 8601 time with an offset or Z (a scheduled campaign is not followed)"),
        click.option("--csv", required=True, help="CSV file: a header row with a `to` column"),
    )
    for option in options:
        command = option(command)
    return command


@click.group()
def campaign() -> None:
    """One message to every recipient of a CSV file (exit 2 on a bad row, nothing recorded)."""


@campaign.command("sms", cls=_SendCommand)
@click.option("--body", required=True)
@click.option("--sender")
@_common
def campaign_sms(csv: str, no_follow: bool, as_json: bool, **fields: Any) -> None:
    """An SMS to every number of the file's `to` column (9665XXXXXXXX)."""
    _run("sms", fields, csv, not no_follow, as_json)


@campaign.command("email", cls=_SendCommand)
@click.option("--subject", required=True)
@click.option("--text")
@click.option("--html")
@click.option("--from", "from_")
@click.option("--provider", help="a registered email provider (default: HUDHUD_EMAIL_PROVIDER)")
@click.option("--reply-to")
@click.option("--tag", multiple=True)
@click.option("--header", multiple=True, help="NAME=VALUE, X-* or List-* (repeatable)")
@_common
def campaign_email(csv: str, no_follow: bool, as_json: bool, from_: str | None, **fields: Any) -> None:
    """An email to every address of the file's `to` column."""
    if fields.get("text") is not None and fields.get("html") is not None:
        fail(as_json, "text: give --text or --html, not both", EXIT_INPUT, field="text")
    fields = {**fields, "from": from_, "tags": list(fields.pop("tag")) or None}
    fields["header"] = list(fields["header"]) or None
    _run("email", fields, csv, not no_follow, as_json)


@campaign.command("voice", cls=_SendCommand)
@click.option("--audio-url", required=True)
@click.option("--caller-id")
@_common
def campaign_voice(csv: str, no_follow: bool, as_json: bool, **fields: Any) -> None:
    """A voice call to every number of the file's `to` column."""
    _run("voice", fields, csv, not no_follow, as_json)
