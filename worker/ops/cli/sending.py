"""`hudhud send sms|email|voice`, `hudhud cancel` and `hudhud retry`: the commands that record a
message and enqueue it, or change one that is waiting."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

import click
import redis

from hudhud.worker.errors import ConfigurationError, InvalidInput, RedisFull
from hudhud.worker.ledger.status import Status
from hudhud.worker.ops.cli.failures import redis_failure
from hudhud.worker.ops.cli.output import EXIT_INPUT, emit, fail, json_option
from hudhud.worker.producer.messages import MAX_AHEAD
from hudhud.worker.producer.validation import MAX_ATTACHMENT_BYTES

_at_option = click.option(
    "--at", help=f"ISO 8601 time with an offset or Z, at most {MAX_AHEAD.days} days ahead"
)
_key_option = click.option("--key", help="idempotency key")


def _expiry_options(command: Any) -> Any:
    """`--ttl`, `--expires-at` and `--lane`, passed on as the send's fields of those names."""
    options = (
        click.option("--lane", type=click.Choice(["transactional", "bulk"]), help="default transactional"),
        click.option("--expires-at", help="ISO 8601 time: not handed to a provider by then, it ends expired"),
        click.option("--ttl", help="seconds from the send's time (--at, or now) until it expires"),
    )
    for option in options:
        command = option(command)
    return command


def _send(channel: str, fields: dict[str, Any], as_json: bool) -> None:
    from hudhud.worker.producer.api import Hudhud, IdempotencyConflict

    try:
        receipt = Hudhud().send(channel, fields)
    except IdempotencyConflict as exc:
        fail(as_json, str(exc), EXIT_INPUT, field="key", id=exc.existing_id)
    except InvalidInput as exc:
        fail(as_json, str(exc), EXIT_INPUT, field=exc.field)
    except ConfigurationError as exc:
        fail(as_json, str(exc), EXIT_INPUT, field=exc.variable)
    except redis.RedisError as exc:
        outcome = "the send was refused" if isinstance(exc, RedisFull) else "nothing was recorded"
        fail(as_json, f"{redis_failure(exc)}: {outcome}", 1)
    emit(as_json, {"id": receipt.id, "status": receipt.status, "duplicate": receipt.duplicate}, receipt.id)


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
            fail(as_json, f"{field}: {problem}", EXIT_INPUT, field=field)


@click.group()
def send() -> None:
    """Check a message, record it and enqueue it (exit 2 on bad input, nothing recorded)."""


@send.command("sms", cls=_SendCommand)
@click.option("--to", multiple=True, required=True, help="9665XXXXXXXX (repeatable)")
@click.option("--body", required=True)
@click.option("--sender")
@_at_option
@_expiry_options
@_key_option
@json_option
def send_sms(
    to: tuple[str, ...],
    body: str,
    sender: str | None,
    at: str | None,
    key: str | None,
    as_json: bool,
    **expiry: str | None,
) -> None:
    """Send an SMS through Taqnyat."""
    _send("sms", {"to": list(to), "body": body, "sender": sender, "at": at, "key": key, **expiry}, as_json)


def _attachment(index: int, path: str) -> dict[str, str]:
    """One `--attach` file as a Taifa attachment (its name and content are not echoed)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_ATTACHMENT_BYTES:
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
@_expiry_options
@_key_option
@json_option
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
    **expiry: str | None,
) -> None:
    """Send an email through Taifa Mail or Taqnyat."""
    if text is not None and html is not None:
        fail(as_json, "text: give --text or --html, not both", EXIT_INPUT, field="text")
    try:
        attachments = [_attachment(i, p) for i, p in enumerate(attach)] or None
    except InvalidInput as exc:
        fail(as_json, str(exc), EXIT_INPUT, field=exc.field)
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
        **expiry,
    }
    _send("email", fields, as_json)


@send.command("voice", cls=_SendCommand)
@click.option("--to", multiple=True, required=True)
@click.option("--audio-url", required=True)
@click.option("--caller-id")
@_at_option
@_expiry_options
@_key_option
@json_option
def send_voice(
    to: tuple[str, ...],
    audio_url: str,
    caller_id: str | None,
    at: str | None,
    key: str | None,
    as_json: bool,
    **expiry: str | None,
) -> None:
    """Place a voice call through Taqnyat."""
    fields = {"to": list(to), "audio_url": audio_url, "caller_id": caller_id, "at": at, "key": key}
    _send("voice", {**fields, **expiry}, as_json)


@click.command()
@click.argument("message_id")
@json_option
def cancel(message_id: str, as_json: bool) -> None:
    """Cancel a message that has not been handed to a provider yet."""
    from hudhud.worker.producer.api import Hudhud, NotFound, Refused

    try:
        receipt = Hudhud().cancel(message_id)
    except (NotFound, Refused) as exc:
        fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    emit(as_json, receipt.as_dict(), f"{receipt.id} {Status.CANCELLED}")


@click.command()
@click.argument("message_id")
@json_option
def retry(message_id: str, as_json: bool) -> None:
    """Ask Taifa to retry a bounced/failed/rejected email (a new, linked message)."""
    from hudhud.worker.producer.api import Hudhud, NotFound, Refused

    try:
        receipt = Hudhud().retry_email(message_id)
    except (NotFound, Refused) as exc:
        fail(as_json, str(exc), 1)
    except redis.RedisError as exc:
        fail(as_json, redis_failure(exc), 1)
    emit(as_json, {**receipt.as_dict(), "retry_of": message_id}, receipt.id)
