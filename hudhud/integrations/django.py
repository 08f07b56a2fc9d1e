"""A Django email backend that sends through hudhud's producer API.

    EMAIL_BACKEND = "hudhud.integrations.django.EmailBackend"

Every `EmailMessage` (and `EmailMultiAlternatives`) becomes one hudhud email: checked,
recorded and enqueued by `Hudhud.send`, delivered by the worker. After sending, a message
carries `hudhud_id` and `hudhud_status` (None when it was not accepted).

What a message maps to:
- `subject`; `body` is the text body (the HTML body when `content_subtype == "html"`); a
  `text/html` alternative is the HTML body (any other alternative is refused);
- `from_email`, `to`, `cc`, `bcc` and one `reply_to` address; a display name
  (`"Shop <shop@example.com>"`) is dropped, as hudhud sends bare addresses. A `From` or
  `Reply-To` in `extra_headers` wins over `from_email` or `reply_to`, as in Django's own
  message; when `from_email` is Django's unset `DEFAULT_FROM_EMAIL` (or `SERVER_EMAIL`, for
  `mail_admins`), hudhud's provider default (`TAIFA_FROM`, `TAQNYAT_EMAIL_FROM`) applies;
- the other `extra_headers` are custom headers (`X-*`, `List-*` and the few hudhud allows);
- attachments (`attach`, `attach_file`, MIME parts) are sent base64 with their type;
- attributes of hudhud's own: `tags` (a list), `idempotency_key`, `reference`, `provider`,
  `send_at` (an aware datetime, a naive one in Django's current time zone, or ISO 8601),
  `campaign` and `callback_url`.

Bad input raises `hudhud.InvalidInput` naming the message attribute (`from_email`,
`to[0]`, `extra_headers.X-Order`, `idempotency_key`, `attachments[1].filename`) before
anything is recorded. With `fail_silently`, bad input, a full Redis and Redis or broker
errors are logged (the attribute and the problem, never an address or a body) and the
message is not counted.

hudhud's settings come from the environment and `.env`, or from the Django setting
`HUDHUD_SETTINGS`, a dict of hudhud variables (`{"HUDHUD_REDIS_URL": ...}`) that override them.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import Message
from email.mime.base import MIMEBase
from email.utils import getaddresses
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from django.utils.functional import Promise
from kombu.exceptions import KombuError
from pydantic import AliasChoices, ValidationError
from redis.exceptions import RedisError

from hudhud.config import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.producer import validation
from hudhud.worker.producer.api import Hudhud

logger = logging.getLogger(__name__)

SETTING = "HUDHUD_SETTINGS"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Django's senders of its own email: their defaults are no address a provider sends from.
UNSET_SENDERS = ("DEFAULT_FROM_EMAIL", "SERVER_EMAIL")
# The hudhud field a message attribute becomes, where the names differ.
ATTRIBUTES = {
    "from": "from_email",
    "text": "body",
    "html": "body",
    "headers": "extra_headers",
    "key": "idempotency_key",
    "at": "send_at",
}
_FIELD_HEAD = re.compile(r"([A-Za-z_]+)(.*)", re.DOTALL)


# --- the producer ------------------------------------------------------------------
_lock = threading.Lock()
_producers: dict[tuple[int, str], Hudhud] = {}


def known_variables() -> frozenset[str]:
    """The names of hudhud's variables (HUDHUD_REDIS_URL, TAIFA_FROM, ...)."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(choice).upper() for choice in field.validation_alias.choices)
    return frozenset(names)


def settings_from(variables: Any) -> Settings:
    """hudhud's settings from `HUDHUD_SETTINGS` (over the environment and `.env`)."""
    if not isinstance(variables, Mapping):
        raise ImproperlyConfigured(f"{SETTING} must be a dict of hudhud variables, e.g. HUDHUD_REDIS_URL")
    known = known_variables()
    for name in variables:
        if not isinstance(name, str) or name.upper() not in known:
            shown = validation.field_name(name)
            raise ImproperlyConfigured(
                f"{SETTING} has {f'{shown!r}, ' if shown else 'a key that is '}not a hudhud variable"
            )
    try:
        return Settings(**{name.upper(): value for name, value in variables.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first.get("loc") else "?"
        raise ImproperlyConfigured(f"{SETTING}[{where!r}] is invalid: {first['msg']}") from None


def producer() -> Hudhud:
    """The producer for Django's settings: the process's own (environment and `.env`) when
    `HUDHUD_SETTINGS` is not set; else one per distinct `HUDHUD_SETTINGS` and process, with
    its own broker connection."""
    variables = getattr(django_settings, SETTING, None)
    if variables is None:
        return Hudhud()
    from hudhud.worker.broker.celery_app import create_app

    given = sorted(variables.items(), key=lambda item: str(item[0])) if isinstance(variables, Mapping) else []
    key = (os.getpid(), repr(given))
    with _lock:
        found = _producers.get(key)
        if found is None:
            settings = settings_from(variables)
            found = _producers[key] = Hudhud(settings, app=create_app(settings))
        return found


# --- a message as hudhud's fields ----------------------------------------------------
def _plain(value: Any) -> Any:
    """A lazy translation as the text it stands for; anything else as it is."""
    return str(value) if isinstance(value, Promise) else value


def address(value: Any) -> Any:
    """The bare address of `"Name <addr>"`; anything else unchanged, for hudhud to check."""
    if not isinstance(value, str):
        return value
    try:
        return validation.email(value, "address")
    except InvalidInput:
        pass
    found = getaddresses([value])
    return found[0][1] if len(found) == 1 and found[0][1] else value


def take_header(headers: dict[str, Any], name: str) -> tuple[str | None, Any]:
    """Remove the header `name` (in any case) from `headers`: (its key as given, its value)."""
    for key in list(headers):
        if isinstance(key, str) and key.lower() == name.lower():
            return key, headers.pop(key)
    return None, None


def bodies(message: EmailMessage, names: dict[str, str]) -> tuple[Any, Any]:
    """(text, html) of the message; records in `names` where the HTML came from."""
    body = _plain(message.body)
    if message.content_subtype == "html":
        text, html = None, body
    elif message.content_subtype == "plain":
        text, html = body, None
    else:
        raise InvalidInput(
            "content_subtype", "must be 'plain' or 'html': hudhud sends a text and an HTML body"
        )
    for index, item in enumerate(getattr(message, "alternatives", None) or []):
        where = f"alternatives[{index}]"
        try:
            content, mimetype = item
        except (TypeError, ValueError):
            raise InvalidInput(where, "must be (content, mimetype)") from None
        kind = str(mimetype).split(";")[0].strip().lower()
        if kind != "text/html":
            raise InvalidInput(where, f"is {kind[:60]!r}: hudhud sends no alternative but text/html")
        if html:
            raise InvalidInput(where, "is a second HTML body (hudhud sends one)")
        html, names["html"] = _plain(content), where
    return text, html


def sender(message: EmailMessage, headers: dict[str, Any], names: dict[str, str]) -> Any:
    """The From address: the `From` header, else `from_email` unless it is the value of
    Django's unset `DEFAULT_FROM_EMAIL` or `SERVER_EMAIL` (`webmaster@localhost`,
    `root@localhost`): then None, and hudhud's provider default applies."""
    key, value = take_header(headers, "From")
    if key is not None:
        names["from"] = f"extra_headers.{key}"
        return address(value)
    given = _plain(message.from_email)
    for setting in UNSET_SENDERS:
        if given == getattr(django_settings, setting) and not django_settings.is_overridden(setting):
            return None
    return address(given)


def reply_to(message: EmailMessage, headers: dict[str, Any], names: dict[str, str]) -> Any:
    """The one Reply-To address: the `Reply-To` header, else `reply_to`."""
    key, value = take_header(headers, "Reply-To")
    if key is None:
        where, given = "reply_to", list(message.reply_to or [])
    else:
        where = f"extra_headers.{key}"
        given = [found for _, found in getaddresses([value])] if isinstance(value, str) else [value]
    names["reply_to"] = where
    if len(given) > 1:
        raise InvalidInput(where, f"has {len(given)} addresses: hudhud sends one Reply-To address")
    return address(given[0]) if given else None


def _content_bytes(content: Any, where: str, charset: str) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        try:
            return content.encode(charset)
        except (UnicodeEncodeError, LookupError):
            raise InvalidInput(f"{where}.content", f"cannot be encoded as {charset}") from None
    if isinstance(content, EmailMessage):
        return bytes(content.message().as_bytes())
    if isinstance(content, Message):
        return content.as_bytes()
    raise InvalidInput(f"{where}.content", "must be bytes, text or an email message")


def attachment(item: Any, where: str, charset: str) -> dict[str, Any]:
    """A Django attachment ((filename, content, mimetype) or a MIME part) as hudhud's."""
    filename: Any
    content: Any
    mimetype: Any
    if isinstance(item, MIMEBase):
        if item.is_multipart():
            raise InvalidInput(where, "is a multipart MIME part: attach its files one by one")
        filename, content = item.get_filename(), item.get_payload(decode=True)
        mimetype = item.get_content_type()
    else:
        try:
            filename, content, mimetype = item
        except (TypeError, ValueError):
            raise InvalidInput(where, "must be (filename, content, mimetype) or a MIME part") from None
    if not mimetype and isinstance(filename, str):
        mimetype = mimetypes.guess_type(filename)[0]
    return {
        "filename": filename,
        "content_base64": base64.b64encode(_content_bytes(content, where, charset)).decode("ascii"),
        "content_type": mimetype or DEFAULT_CONTENT_TYPE,
    }


def send_at(value: Any) -> Any:
    """`send_at` for hudhud: a naive datetime is taken in Django's current time zone."""
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value)
    return value


def message_fields(message: EmailMessage) -> tuple[dict[str, Any], dict[str, str]]:
    """hudhud's fields of an email for `message`, and the attribute each field came from
    (for error texts). InvalidInput naming the attribute for what hudhud cannot carry."""
    names = dict(ATTRIBUTES)
    headers = dict(message.extra_headers or {})
    text, html = bodies(message, names)
    charset = message.encoding or django_settings.DEFAULT_CHARSET
    fields = {
        "from": sender(message, headers, names),
        "reply_to": reply_to(message, headers, names),
        "to": [address(a) for a in message.to],
        "cc": [address(a) for a in message.cc],
        "bcc": [address(a) for a in message.bcc],
        "subject": _plain(message.subject),
        "text": text,
        "html": html,
        "headers": headers or None,
        "attachments": [
            attachment(item, f"attachments[{index}]", charset)
            for index, item in enumerate(message.attachments or [])
        ],
        "tags": getattr(message, "tags", None),
        "key": getattr(message, "idempotency_key", None),
        "reference": getattr(message, "reference", None),
        "provider": getattr(message, "provider", None),
        "campaign": getattr(message, "campaign", None),
        "callback_url": getattr(message, "callback_url", None),
        "at": send_at(getattr(message, "send_at", None)),
    }
    return fields, names


def renamed(exc: InvalidInput, names: Mapping[str, str]) -> InvalidInput:
    """`exc` (of its own class) naming the message attribute instead of hudhud's field."""
    match = _FIELD_HEAD.fullmatch(exc.field)
    if match is None or match[1] not in names:
        return exc
    field = names[match[1]] + match[2]
    again = type(exc).__new__(type(exc))
    again.__dict__.update(exc.__dict__)
    again.field = field
    again.args = (f"{field}: {exc.message}",)
    return again


def _reason(exc: Exception) -> str:
    """What went wrong, without data: InvalidInput's text names a field, never a value."""
    if isinstance(exc, InvalidInput):
        return str(exc)
    return type(exc).__name__


# --- the backend ---------------------------------------------------------------------
class EmailBackend(BaseEmailBackend):
    """`EMAIL_BACKEND = "hudhud.integrations.django.EmailBackend"`."""

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.producer: Hudhud | None = None
        self._lock = threading.RLock()

    def open(self) -> bool:
        """Take the producer for Django's settings; False when this backend holds it already."""
        with self._lock:
            if self.producer is not None:
                return False
            self.producer = producer()
            return True

    def close(self) -> None:
        """Let go of the producer (its connections stay in the process's pools)."""
        with self._lock:
            self.producer = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send each message in turn; how many hudhud accepted. A message that is not
        accepted raises (after the ones before it were sent) unless `fail_silently`."""
        messages = list(email_messages or [])
        if not messages:
            return 0
        with self._lock:
            opened = self.open()
            try:
                accepted = 0
                for index, message in enumerate(messages):
                    accepted += self._send(message, index, len(messages))
                return accepted
            finally:
                if opened:
                    self.close()

    def _send(self, message: EmailMessage, index: int, total: int) -> bool:
        message.hudhud_id = None
        message.hudhud_status = None
        if not message.recipients():
            return False
        assert self.producer is not None
        try:
            fields, names = message_fields(message)
            try:
                receipt = self.producer.send("email", fields)
            except InvalidInput as exc:
                raise renamed(exc, names).with_traceback(exc.__traceback__) from None
        except (InvalidInput, RedisError, KombuError) as exc:
            if not self.fail_silently:
                raise
            logger.warning("hudhud did not accept email %d of %d: %s", index + 1, total, _reason(exc))
            return False
        message.hudhud_id = receipt.id
        message.hudhud_status = receipt.status
        return True
