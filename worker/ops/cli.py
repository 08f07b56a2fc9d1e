"""The `hudhud` command line (see CONTRACT.md: send, status, cancel, retry, check, worker,
beat, flower, sandbox, dev). Every command takes `--json`."""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import redis

from hudhud.worker.errors import ConfigurationError, InvalidInput, RedisFull, printable
from hudhud.worker.ops.processes import DEFAULT_CONCURRENCY
from hudhud.worker.producer.messages import MAX_AHEAD

EXIT_INPUT = 2
MAX_ATTACH_BYTES = 24 * 1024 * 1024


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str) if as_json else text)


def _fail(as_json: bool, message: str, code: int = 1, **extra: Any) -> NoReturn:
    message = printable(message)
    if as_json:
        click.echo(json.dumps({"error": message, **extra}, ensure_ascii=False))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _redis_failure(exc: redis.RedisError) -> str:
    """What went wrong with Redis, in words that say what to do. An unreachable Redis is named
    by its URL (the password masked) and where that URL was read from."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return str(exc) if isinstance(exc, RedisFull) else str(RedisFull())
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach Redis{_redis_url_told()} ({type(exc).__name__}): {_origin('HUDHUD_REDIS_URL')}"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "Redis refuses writes: it is a read-only replica (ReadOnlyError)"
    return f"Redis refused the command ({type(exc).__name__})"


def _redis_url_told() -> str:
    from kombu.utils.url import maybe_sanitize_url

    from hudhud.config import get_settings

    try:
        return f" at {maybe_sanitize_url(get_settings().redis_url, mask='***')}"
    except ConfigurationError:
        return ""


def _origin(variable: str) -> str:
    """Where a setting was read from: the environment, or a settings file of the current
    folder (`.env`, `.hudhud/dev.env`), or nowhere (its default)."""
    from dotenv import dotenv_values

    from hudhud.config import Settings

    configured = Settings.model_config.get("env_file")
    listed = [configured] if isinstance(configured, str | Path) else list(configured or ())
    files = [str(f) for f in listed]
    folder = Path.cwd()
    if any(name.upper() == variable for name in os.environ):
        return f"{variable} is set in the environment"
    for file in reversed(files):  # the later file wins, as in Settings
        if (folder / file).is_file() and variable in {k.upper() for k in dotenv_values(folder / file)}:
            return f"{variable} is read from {file} in the current folder ({folder})"
    return (
        f"{variable} is set neither in the environment nor in {' or '.join(files)} of the current "
        f"folder ({folder}), so this is its default (`hudhud dev` writes .hudhud/dev.env in the "
        "folder it runs in: run commands from there)"
    )


def _producer() -> Any:
    from hudhud.worker.producer.api import Hudhud

    return Hudhud()


def _send(channel: str, fields: dict[str, Any], as_json: bool) -> None:
    from hudhud.worker.producer.api import IdempotencyConflict

    try:
        receipt = _producer().send(channel, fields)
    except IdempotencyConflict as exc:
        _fail(as_json, str(exc), EXIT_INPUT, field="key", id=exc.existing_id)
    except InvalidInput as exc:
        _fail(as_json, str(exc), EXIT_INPUT, field=exc.field)
    except ConfigurationError as exc:
        _fail(as_json, str(exc), EXIT_INPUT, field=exc.variable)
    except redis.RedisError as exc:
        outcome = "the send was refused" if isinstance(exc, RedisFull) else "nothing was recorded"
        _fail(as_json, f"{_redis_failure(exc)}: {outcome}", 1)
    _emit(as_json, {"id": receipt.id, "status": receipt.status, "duplicate": receipt.duplicate}, receipt.id)


def _usage_problem(exc: click.UsageError) -> tuple[str, str]:
    """The field and the problem of a usage error of a send command (never the value)."""
    from hudhud.worker.producer.validation import field_name

    param = getattr(exc, "param", None)
    option = getattr(exc, "option_name", None)
    if param is not None and param.name:
        name: str | None = param.name.rstrip("_")
    elif option:
        name = field_name(option.lstrip("-").replace("-", "_"))
    else:
        name = None
    if isinstance(exc, click.MissingParameter):
        problem = "is required"
    elif isinstance(exc, click.BadParameter):
        choices = getattr(getattr(param, "type", None), "choices", None)
        problem = f"must be one of {', '.join(map(str, choices))}" if choices else "is not valid"
    elif isinstance(exc, click.NoSuchOption):
        problem = "is not a known option"
    elif isinstance(exc, click.BadOptionUsage):
        problem = "needs a value"
    else:
        return "args", "positional arguments are not accepted: use the options"
    return name or "option", problem


class _SendCommand(click.Command):
    """A send command: bad usage is bad input too, told on one line naming the field (exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        as_json = "--json" in args
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            field, problem = _usage_problem(exc)
            _fail(as_json, f"{field}: {problem}", EXIT_INPUT, field=field)


class _Main(click.Group):
    """A setting that cannot be read is told in one line naming it (exit 1), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            _fail("--json" in sys.argv[1:], str(exc), 1, field=exc.variable)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hudhud: delivers SMS, email and voice through Taqnyat and Taifa Mail."""


@main.group()
def send() -> None:
    """Check a message, record it and enqueue it (exit 2 on bad input, nothing recorded)."""


_json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
_at_option = click.option(
    "--at", help=f"ISO 8601 time with an offset or Z, at most {MAX_AHEAD.days} days ahead"
)
_key_option = click.option("--key", help="idempotency key")


@send.command("sms", cls=_SendCommand)
@click.option("--to", multiple=True, required=True, help="9665XXXXXXXX (repeatable)")
@click.option("--body", required=True)
@click.option("--sender")
@_at_option
@_key_option
@_json_option
def send_sms(
    to: tuple[str, ...], body: str, sender: str | None, at: str | None, key: str | None, as_json: bool
) -> None:
    """Send an SMS through Taqnyat."""
    _send("sms", {"to": list(to), "body": body, "sender": sender, "at": at, "key": key}, as_json)


def _attachment(index: int, path: str) -> dict[str, str]:
    """One `--attach` file as a Taifa attachment (its name and content are not echoed)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_ATTACH_BYTES:
            raise InvalidInput("attach", f"file {index + 1} is larger than 24 MiB")
        content = file.read_bytes()
    except OSError as exc:
        raise InvalidInput("attach", f"file {index + 1} cannot be read ({exc.strerror})") from None
    return {
        "filename": file.name,
        "content_base64": base64.b64encode(content).decode("ascii"),
        "content_type": mimetypes.guess_type(file.name)[0] or "application/octet-stream",
    }


@send.command("email", cls=_SendCommand)
@click.option("--to", multiple=True, required=True)
@click.option("--subject", required=True)
@click.option("--text")
@click.option("--html")
@click.option("--from", "from_")
@click.option("--provider", help="a registered email provider (default: HUDHUD_EMAIL_PROVIDER)")
@click.option("--cc", multiple=True)
@click.option("--bcc", multiple=True)
@click.option("--reply-to")
@click.option("--tag", multiple=True)
@click.option("--header", multiple=True, help="NAME=VALUE, X-* or List-* (repeatable; see README)")
@click.option("--attach", multiple=True, help="a file to attach (repeatable)")
@click.option("--campaign")
@_at_option
@_key_option
@_json_option
def send_email(
    to: tuple[str, ...],
    subject: str,
    text: str | None,
    html: str | None,
    from_: str | None,
    provider: str | None,
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    reply_to: str | None,
    tag: tuple[str, ...],
    header: tuple[str, ...],
    attach: tuple[str, ...],
    campaign: str | None,
    at: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Send an email through Taifa Mail or Taqnyat."""
    if text is not None and html is not None:
        _fail(as_json, "text: give --text or --html, not both", EXIT_INPUT, field="text")
    try:
        attachments = [_attachment(i, p) for i, p in enumerate(attach)] or None
    except InvalidInput as exc:
        _fail(as_json, str(exc), EXIT_INPUT, field=exc.field)
    fields = {
        "to": list(to),
        "subject": subject,
        "text": text,
        "html": html,
        "from": from_,
        "provider": provider,
        "cc": list(cc) or None,
        "bcc": list(bcc) or None,
        "reply_to": reply_to,
        "tags": list(tag) or None,
        "header": list(header) or None,
        "attachments": attachments,
        "campaign": campaign,
        "at": at,
        "key": key,
    }
    _send("email", fields, as_json)


@send.command("voice", cls=_SendCommand)
@click.option("--to", multiple=True, required=True)
@click.option("--audio-url", required=True)
@click.option("--caller-id")
@_at_option
@_key_option
@_json_option
def send_voice(
    to: tuple[str, ...], audio_url: str, caller_id: str | None, at: str | None, key: str | None, as_json: bool
) -> None:
    """Place a voice call through Taqnyat."""
    _send(
        "voice",
        {"to": list(to), "audio_url": audio_url, "caller_id": caller_id, "at": at, "key": key},
        as_json,
    )


@main.command()
@click.argument("message_id")
@_json_option
def status(message_id: str, as_json: bool) -> None:
    """The record of one message: status, attempts, provider ids, cost, error, events."""
    from hudhud.worker.producer.api import NotFound

    try:
        record = _producer().status(message_id)
    except NotFound as exc:
        _fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        _fail(as_json, _redis_failure(exc), 1)
    if as_json:
        _emit(True, record, "")
        return
    for name in (
        "id",
        "channel",
        "provider",
        "status",
        "attempts",
        "provider_message_id",
        "cost",
        "currency",
        "error",
        "at",
        "in_doubt",
        "retry_of",
        "created_at",
        "recipients",
        "batches",
        "recipient_counts",
        "batch_statuses",
    ):
        if record.get(name) not in (None, "", False):
            click.echo(f"{name:20} {record[name]}")
    for item in record["events"]:
        extra = ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("type", "at"))
        click.echo(f"  {item.get('at', ''):26} {item.get('type', '')} {extra}".rstrip())


@main.command()
@click.argument("message_id")
@_json_option
def cancel(message_id: str, as_json: bool) -> None:
    """Cancel a message that has not been handed to a provider yet."""
    from hudhud.worker.producer.api import NotFound, Refused

    try:
        receipt = _producer().cancel(message_id)
    except (NotFound, Refused) as exc:
        _fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        _fail(as_json, _redis_failure(exc), 1)
    _emit(as_json, receipt.as_dict(), f"{receipt.id} cancelled")


@main.command()
@click.argument("message_id")
@_json_option
def retry(message_id: str, as_json: bool) -> None:
    """Ask Taifa to retry a bounced/failed/rejected email (a new, linked message)."""
    from hudhud.worker.producer.api import NotFound, Refused

    try:
        receipt = _producer().retry_email(message_id)
    except (NotFound, Refused) as exc:
        _fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        _fail(as_json, _redis_failure(exc), 1)
    _emit(as_json, {**receipt.as_dict(), "retry_of": message_id}, receipt.id)


@main.command()
@click.argument("message_id")
@click.option("--sent", "as_sent", is_flag=True, help="record it as sent (the provider most likely has it)")
@click.option("--resend", is_flag=True, help="send the whole batch again")
@_json_option
def resolve(message_id: str, as_sent: bool, resend: bool, as_json: bool) -> None:
    """Decide on a campaign batch held in doubt (its provider's reply was lost)."""
    from hudhud.config import get_settings
    from hudhud.worker import runtime
    from hudhud.worker.delivery import doubt
    from hudhud.worker.delivery.attempt import Delivery
    from hudhud.worker.producer.api import dispatch

    if as_sent == resend:
        _fail(as_json, "resolve: give exactly one of --sent or --resend", EXIT_INPUT, field="decision")
    settings = get_settings()
    delivery = Delivery(runtime.ledger(settings), settings, runtime.provider_client)
    try:
        status = doubt.decide(delivery, message_id, resend=resend)
    except LookupError as exc:
        _fail(as_json, str(exc.args[0]), 1)
    except redis.RedisError as exc:
        _fail(as_json, _redis_failure(exc), 1)
    if status == "queued":
        record = delivery.ledger.get(message_id) or {}
        dispatch(_producer().app, message_id, record.get("channel", "sms"), record.get("provider", ""))
    _emit(as_json, {"id": message_id, "status": status}, f"{message_id} {status}")


@main.command()
@click.option("--follow", is_flag=True, help="then print each change as it is recorded (Ctrl-C stops)")
@click.option("--last", type=click.IntRange(min=1), help="the last N changes (20 unless --follow or --since)")
@click.option("--since", help="the changes after this stream entry id (e.g. 1764646800000-0)")
@_json_option
def changes(follow: bool, last: int | None, since: str | None, as_json: bool) -> None:
    """Status changes as recorded, oldest first, one a line (--json: one JSON object a line)."""
    import signal
    import threading

    from hudhud.worker import runtime
    from hudhud.worker.ledger import changes as feed

    if since is not None and (last is not None or not feed.is_entry_id(since)):
        problem = "give --last or --since, not both" if last else "not a stream entry id (1764646800000-0)"
        _fail(as_json, f"since: {problem}", EXIT_INPUT, field="since")
    ledger = runtime.ledger()
    cursor = since or "$"
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM) if follow else ():
        signal.signal(sig, lambda *_: stop.set())
    try:
        if since:
            shown: Any = feed.after(ledger, since)
        else:
            shown = feed.last(ledger, last or 20) if last or not follow else []
        for change in shown:
            _emit(as_json, change.as_dict(), change.line())
            cursor = change.entry
        if follow:
            live = feed.follow(ledger, since=cursor, stop=stop)
            click.echo("following the status changes (Ctrl-C stops)", err=True)
            for change in live:
                _emit(as_json, change.as_dict(), change.line())
    except redis.RedisError as exc:
        _fail(as_json, _redis_failure(exc), 1)


@main.command()
@_json_option
def check(as_json: bool) -> None:
    """Per provider: reachable, credentials valid, status, balance, senders (exit 1 on a problem)."""
    from hudhud.worker.ops.check import run_checks

    try:
        report = run_checks()
    except ConfigurationError as exc:
        _fail(as_json, str(exc), 1, field=exc.variable)
    if as_json:
        _emit(True, report, "")
    else:
        for provider, facts in report["providers"].items():
            click.echo(f"{provider}:")
            for name, value in facts.items():
                click.echo(f"  {name:14} {value}")
        click.echo(f"redis: {report['redis']}")
        for name, value in report["redis_server"].items():
            click.echo(f"  {name:16} {value}")
        _echo_queues(report["queues"])
        for warning in report["warnings"]:
            click.echo(f"warning: {warning}")
        for problem in report["problems"]:
            click.echo(f"problem: {problem}")
        click.echo("ok" if report["ok"] else f"not ok: {len(report['problems'])} problem(s)")
    sys.exit(0 if report["ok"] else 1)


def _echo_queues(queues: dict[str, Any]) -> None:
    if not queues:
        return
    workers = queues.get("workers")
    click.echo("queues:")
    for name, depth in queues["depths"].items():
        if isinstance(workers, dict):
            by = [w for w, consumed in workers.items() if name in consumed]
            line = f"{depth} waiting, consumed by {', '.join(by) or 'no running worker'}"
        else:
            line = f"{depth} waiting"
        click.echo(f"  {name:16} {line}")


_passthrough = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@main.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """A Celery worker (ARGS go to celery worker)."""
    from hudhud.worker.ops.processes import run_worker

    run_worker(list(args))


@main.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def beat(args: tuple[str, ...]) -> None:
    """The periodic jobs (exactly one beat per deployment)."""
    from hudhud.worker.ops.processes import run_beat

    run_beat(list(args))


@main.command(context_settings=_passthrough)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def flower(args: tuple[str, ...]) -> None:
    """Flower on this app (ARGS go to flower, e.g. --port=5555 --basic-auth=user:pass)."""
    from hudhud.worker.ops.processes import run_flower

    run_flower(list(args))


@main.command()
@click.option("--port", type=int, default=8025, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--latency-ms", type=float)
@click.option("--error-rate", type=float, help="share of 5xx answers (0..1)")
@click.option("--timeout-rate", type=float, help="share of requests that hang (0..1)")
@click.option("--rate-429", type=float, help="share of 429 answers (0..1)")
@click.option("--balance", type=float)
@click.option("--knobs", help="JSON object of further knobs")
def sandbox(
    port: int,
    host: str,
    latency_ms: float | None,
    error_rate: float | None,
    timeout_rate: float | None,
    rate_429: float | None,
    balance: float | None,
    knobs: str | None,
) -> None:
    """A local simulator of both provider APIs (Taqnyat at /, Taifa at /v1/emails)."""
    from hudhud.worker.sandbox.app import run

    values: dict[str, Any] = json.loads(knobs) if knobs else {}
    for name, value in (
        ("latency_ms", latency_ms),
        ("error_rate_5xx", error_rate),
        ("timeout_rate", timeout_rate),
        ("rate_429", rate_429),
        ("balance", balance),
    ):
        if value is not None:
            values[name] = value
    run(host=host, port=port, knobs=values)


@main.command()
@click.option("--data-dir", default=".hudhud", show_default=True, help="where Redis keeps its data")
@click.option("--redis-port", type=int, default=6390, show_default=True)
@click.option("--sandbox-port", type=int, default=8025, show_default=True)
@click.option("--flower-port", type=int, default=5555, show_default=True)
@click.option(
    "--concurrency", type=int, default=DEFAULT_CONCURRENCY, show_default=True, help="worker greenlets"
)
def dev(data_dir: str, redis_port: int, sandbox_port: int, flower_port: int, concurrency: int) -> None:
    """Everything on one machine: Redis, sandbox, worker, beat and Flower (Ctrl-C stops all)."""
    from hudhud.worker.ops.devstack import run_dev

    sys.exit(
        run_dev(
            Path(data_dir),
            redis_port=redis_port,
            sandbox_port=sandbox_port,
            flower_port=flower_port,
            concurrency=concurrency,
        )
    )


if __name__ == "__main__":
    main()
