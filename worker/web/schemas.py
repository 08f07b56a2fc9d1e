"""What the HTTP API's calls take and answer, for its OpenAPI document (`/openapi.json`).

These models describe the bodies; they do not check them. Every check is the producer's
(`producer/messages.py`), shared with the CLI and the Python API, so a bad field is named
the same way whichever door it came through.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema

from hudhud.config import Settings
from hudhud.worker.producer.messages import EMAIL_PROVIDERS, MAX_AHEAD
from hudhud.worker.producer.validation import MAX_ATTACHMENT_BYTES, MAX_SMS_BODY
from hudhud.worker.providers import registry

REF = "#/components/schemas/{model}"
SENDER_FIELDS = {"sender": ("sms", "sender name"), "caller_id": ("voice", "the number calls come from")}
Recipients = Annotated[
    list[str] | str, Field(description="one recipient, or a list (one provider call's worth)")
]


def _email_providers(schema: dict[str, Any]) -> None:
    """The string branch of an optional provider: one of the email providers."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "string":
            branch["enum"] = list(EMAIL_PROVIDERS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Common(_Body):
    at: str | None = Field(
        None,
        description=f"when to send: ISO 8601 with an offset or Z, at most {MAX_AHEAD.days} days ahead",
        examples=["2026-12-24T09:00:00+03:00"],
    )
    key: str | None = Field(
        None,
        max_length=200,
        description="idempotency key (or the Idempotency-Key header): the same key and request "
        "answer the first answer again",
    )
    reference: str | None = Field(
        None, max_length=200, description="your own id for the message, echoed in its status and callbacks"
    )
    callback_url: str | None = Field(
        None, description="where this message's status callbacks go (a host of HUDHUD_CALLBACK_HOSTS)"
    )
    lane: Literal["transactional", "bulk"] | None = Field(
        None,
        description="the queue it waits in: transactional (a single send's default) or bulk "
        "(a campaign's default)",
    )
    ttl: float | None = Field(
        None,
        gt=0,
        description="seconds from the send's time (`at`, or now) until it expires: not handed to a "
        "provider by then, it ends `expired` (default HUDHUD_TTL_TRANSACTIONAL or HUDHUD_TTL_BULK)",
        examples=[300],
    )
    expires_at: str | None = Field(
        None,
        description="when it expires, ISO 8601 with an offset or Z (give ttl or expires_at, not both)",
        examples=["2026-12-24T09:10:00+03:00"],
    )


class SmsSend(_Common):
    to: Recipients = Field(examples=[["966500000000"]])
    body: str = Field(max_length=MAX_SMS_BODY, examples=["Your code is 4831"])
    sender: str | None = Field(None, description="sender name (default the SMS provider's sender)")


class VoiceSend(_Common):
    to: Recipients = Field(examples=[["966500000000"]])
    audio_url: str = Field(description="https URL of the recording to play")
    caller_id: str | None = Field(
        None, description="the number calls come from (default the voice provider's caller id)"
    )


class Attachment(_Body):
    filename: str
    content_base64: str = Field(description="the file, base64 (no data: prefix)")
    content_type: str | None = Field(None, examples=["application/pdf"])


class EmailSend(_Common):
    to: Recipients = Field(examples=[["amina@example.com"]])
    subject: str
    text: str | None = Field(None, description="plain text body (text, html or both)")
    html: str | None = Field(None, description="HTML body")
    from_: str | None = Field(None, alias="from", description="sender address (default the provider's)")
    provider: str | None = Field(
        None,
        description="the email provider (default HUDHUD_EMAIL_PROVIDER)",
        json_schema_extra=_email_providers,
    )
    cc: list[str] | None = None
    bcc: list[str] | None = None
    reply_to: str | None = None
    tags: list[str] | None = None
    headers: dict[str, str] | None = Field(None, description="custom headers: X-*, List-* and a few more")
    attachments: list[Attachment] | None = Field(
        None, description=f"at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB together"
    )
    campaign: str | None = Field(None, description="a campaign name the provider reports by")


class SmsBatch(_Body):
    channel: Literal["sms"]
    messages: list[SmsSend]
    key: str | None = Field(None, description="idempotency key of the whole batch")


class EmailBatch(_Body):
    channel: Literal["email"]
    messages: list[EmailSend]
    key: str | None = Field(None, description="idempotency key of the whole batch")


class VoiceBatch(_Body):
    channel: Literal["voice"]
    messages: list[VoiceSend]
    key: str | None = Field(None, description="idempotency key of the whole batch")


class BatchSend(RootModel[Annotated[SmsBatch | EmailBatch | VoiceBatch, Field(discriminator="channel")]]):
    """Many sends on one channel, all checked before any is recorded."""


class SmsCampaign(SmsSend):
    channel: Literal["sms"]
    to: list[str]


class EmailCampaign(EmailSend):
    channel: Literal["email"]
    to: list[str]


class VoiceCampaign(VoiceSend):
    channel: Literal["voice"]
    to: list[str]


class CampaignSend(
    RootModel[Annotated[SmsCampaign | EmailCampaign | VoiceCampaign, Field(discriminator="channel")]]
):
    """One message to many recipients (up to a million), sent in provider-sized batches."""


class Receipt(BaseModel):
    id: str
    status: str = Field(examples=["queued"])


class RetryReceipt(Receipt):
    retry_of: str


class BatchReceipt(BaseModel):
    ids: list[str]


class CampaignReceipt(Receipt):
    recipients: int
    batches: int
    suppressed: int = Field(0, description="recipients dropped: on the suppression list")


class MessageRecord(BaseModel):
    """As `hudhud status --json` prints it (a campaign adds its recipient counts)."""

    model_config = ConfigDict(extra="allow")
    id: str
    channel: str
    provider: str | None
    status: str
    final: bool
    attempts: int
    provider_message_id: str | None
    cost: str | None
    currency: str | None
    error: str | None
    events: list[dict[str, Any]]


class Problem(BaseModel):
    field: str | None = Field(description="the field at fault, e.g. to[0] or messages[3].to[0]")
    message: str


class ErrorBody(BaseModel):
    error: Problem


REQUEST_MODELS: tuple[type[BaseModel], ...] = (SmsSend, EmailSend, VoiceSend, BatchSend, CampaignSend)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """An operation's `requestBody` (for `openapi_extra`): a JSON body of `model`."""
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


def answers(model: type[BaseModel] | None, status: int, *extra: int) -> dict[int | str, dict[str, Any]]:
    """An operation's answers: its success, the refusals every call can give, and `extra`."""
    known: dict[int, dict[str, Any]] = {
        401: _error("no API key, or not one of HUDHUD_API_KEYS"),
        404: _error("no message with that id"),
        409: _error(
            "the first request with this key is still being recorded (see Retry-After), "
            "or the message's state does not allow it"
        ),
        413: _error("the body is larger than HUDHUD_API_MAX_BODY"),
        415: _error("the body is not application/json"),
        422: _error("bad input, naming the field; nothing was recorded"),
        503: _error("Redis is unavailable or full; nothing was recorded (see Retry-After)"),
    }
    out: dict[int | str, dict[str, Any]] = {status: {"model": model} if model else {}}
    for code in (401, 422, 503, *extra):
        out[code] = known[code]
    return out


def _default_senders(components: dict[str, Any], settings: Settings) -> None:
    """Name, in each sender field's description, the variable its channel's provider reads."""
    for field, (channel, what) in SENDER_FIELDS.items():
        try:
            provider = registry.get(registry.for_channel(channel, settings))
        except ValueError:  # a provider not registered in this process: the generic words stay
            continue
        _, variable = provider.default_sender(channel, settings)
        for model in components.values():
            found = model.get("properties", {}).get(field)
            if found is not None:
                found["description"] = f"{what} (default {variable})"


def install(app: FastAPI) -> None:
    """Put the request models in the document's components (request bodies refer to them)."""
    _, definitions = models_json_schema([(model, "validation") for model in REQUEST_MODELS], ref_template=REF)
    components = definitions.get("$defs", {})
    _default_senders(components, app.state.settings)
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = default()
            document.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
