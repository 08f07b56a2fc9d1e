"""Taqnyat's form-style endpoints: mailSend.php (seeds 000/001) and voiceSend.php (seed 002)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from hudhud.worker.sandbox.bodies import form_fields, load_json
from hudhud.worker.sandbox.responses import bearer, reply
from hudhud.worker.sandbox.state import STATE, TOKEN_API_DISABLED, TOKEN_IP_BLOCKED, State, money
from hudhud.worker.sandbox.taifa_checks import is_email
from hudhud.worker.sandbox.taqnyat import FORM_TYPES, UNASSIGNED_PREFIX, blocked_code, list_string

UNVERIFIED_DOMAIN = "unverified.example"
_NUMBER = re.compile(r"[0-9]{8,15}")
_AUDIO_SUFFIXES = (".mp3", ".wav")

# Seed 001 prints every English email text with a leading space; kept as printed.
# Its example for code 3 carries "ErrorCode":2, and its example for 101 says
# "Invalid Bearer Tokens" in English; the sandbox answers 3 for code 3 and keeps the 101 text.
MAIL_ERRORS: dict[int, tuple[str, str]] = {
    2: (" الرصيد = 0", " Your balance is 0"),
    3: (" الرصيد غير كافي", " Your balance is not enough"),
    14: (" خطا في المرسل", " error From"),
    15: (" البريد الالكتروني المرسل لها غير صحيحه أو فارغه", " Email is not specified or incorrect"),
    16: (" يوجد خطا في عنوان الرساله", " error subject"),
    17: (" يوجد خطا في الرساله", " error msg"),
    101: (" الارسال باستخدام بوابات الارسال معطل", "Invalid Bearer Tokens"),
    102: (
        " هذا الاي بي 10.0.0.1 غير مصرح له باستخدم بوابات الارسال",
        " this ip 10.0.0.1 Not authorized to using the API",
    ),
    104: (" مفتاح الارسال غير صحيح", "Invalid Bearer Tokens"),
}
# Seed 002's example for 102 repeats the key ("MessageEn": "MessageEn": ...); the table's text is used.
VOICE_ERRORS: dict[int, tuple[str, str]] = {
    2: ("الرصيد = 0", "Your balance is 0"),
    3: ("الرصيد غير كافي", "Your balance is not enough"),
    14: ("هوية المتصل غير صحيحة", "Invalid CallerId"),
    15: ("الأرقام المرسل لها غير صحيحة أو فارغة", "Mobile(s) number(s) is not specified or incorrect"),
    17: ("يوجد خطأ في الارسال او الملف الصوتي", "error msg or error audio file"),
    101: ("الارسال باستخدام بوابات الارسال معطل", "sending by API is disabled"),
    102: ("هذا الاي بي غير مصرح له ", "this ip Not authorized to using the API"),
    104: ("مفتاح الارسال غير صحيح", "Invalid Bearer Tokens"),
}


class Refused(Exception):
    """A form send refused with one of the documented error codes."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def fail(state: State, texts: dict[int, tuple[str, str]], code: int) -> web.Response:
    arabic, english = texts[code]
    body = {
        "status": 1,
        "ResponseStatus": "fail",
        "Data": None,
        "Error": {"ErrorCode": code, "MessageAr": arabic, "MessageEn": english},
    }
    return reply(body, state.knobs.form_fail_http_status)


async def read_fields(request: web.Request) -> dict[str, Any]:
    """Query-string fields, overlaid by a JSON object body or form fields."""
    fields = _fields(request.query)
    if not request.body_exists:
        return fields
    if request.content_type in FORM_TYPES:
        form = await form_fields(request)
        if form is not None:
            fields.update(_fields(form))
        return fields
    _, body = load_json(await request.read(), unicode_only=True)
    if isinstance(body, dict):
        fields.update(body)
    return fields


def _one_or_all(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _fields(source: Any) -> dict[str, Any]:
    """Fields of a query or form; PHP-style `to[]=a&to[]=b` lists count as `to`."""
    fields = {key: _one_or_all(source.getall(key)) for key in source if not key.endswith("[]")}
    for key in source:
        if key.endswith("[]") and key[:-2] not in fields:
            fields[key[:-2]] = list(source.getall(key))
    return fields


def _tokens(request: web.Request, fields: dict[str, Any]) -> list[str]:
    given = fields.get("bearerTokens")
    candidates = given if isinstance(given, list) else [given]
    tokens = [value.strip() for value in candidates if isinstance(value, str) and value.strip()]
    header = bearer(request)
    return [header, *tokens] if header else tokens


def check_access(state: State, tokens: list[str]) -> None:
    """Raise the code for a bad token (104) or a blocked account (101, 102)."""
    if not {state.taqnyat_token, TOKEN_API_DISABLED, TOKEN_IP_BLOCKED} & set(tokens):
        raise Refused(104)
    code = blocked_code(state, tokens)
    if code is not None:
        raise Refused(code)


def _items(value: Any) -> list[Any]:
    """A list given as a JSON array, a JSON array in a string, or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            readable, parsed = load_json(text, unicode_only=True)
            value = parsed if readable else text.strip("[]").split(",")
        else:
            value = text.split(",")
    if isinstance(value, list):
        return [
            item.strip() if isinstance(item, str) else item
            for item in value
            if not (isinstance(item, str) and not item.strip())
        ]
    return []


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _charge(state: State, per_recipient: float, count: int) -> Decimal:
    cost = state.price(per_recipient, count)
    code = state.charge(cost)
    if code:
        raise Refused(code)
    return cost


def check_mail(fields: dict[str, Any]) -> tuple[str, list[str], str, str]:
    sender = _text(fields, "from")
    if (
        sender is None
        or not is_email(sender.strip())
        or sender.strip().rpartition("@")[2].lower() == UNVERIFIED_DOMAIN
    ):
        raise Refused(14)
    to = _items(fields.get("to"))
    if not to or not all(isinstance(item, str) and is_email(item) for item in to):
        raise Refused(15)
    subject = _text(fields, "subject")
    if subject is None:
        raise Refused(16)
    message = _text(fields, "msg")
    if message is None:
        raise Refused(17)
    return sender.strip(), to, subject, message


async def mail_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fields = await read_fields(request)
    try:
        check_access(state, _tokens(request, fields))
        _sender, to, subject, message = check_mail(fields)
        cost = _charge(state, state.knobs.price_email, len(to))
    except Refused as refused:
        return fail(state, MAIL_ERRORS, refused.code)
    msg_id = next(state.mail_ids)
    state.record("taqnyat", "email", msg_id, to, subject=subject, body=message)
    return reply(
        {
            "status": 1,
            "ResponseStatus": "success",
            "Data": {
                "msgId": msg_id,
                "result": 1,
                "MessageAr": "تم الإرسال",
                "MessageEn": "sent successfully",
                "price": money(cost),
            },
            "Error": None,
        },
        201,
    )


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if _NUMBER.fullmatch(text) else None


def check_voice(fields: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    if _number(fields.get("callerId")) is None:
        raise Refused(14)
    numbers = [_number(item) for item in _items(fields.get("recipients"))]
    if not numbers or None in numbers:
        raise Refused(15)
    accepted = [n for n in numbers if n is not None and not n.startswith(UNASSIGNED_PREFIX)]
    rejected = [n for n in numbers if n is not None and n.startswith(UNASSIGNED_PREFIX)]
    if not accepted:
        raise Refused(15)
    audio = _text(fields, "audioUrl")
    parts = urlsplit(audio.strip()) if audio else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or not parts.path.lower().endswith(_AUDIO_SUFFIXES)
    ):
        raise Refused(17)
    return str(audio).strip(), accepted, rejected


async def voice_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    fields = await read_fields(request)
    try:
        check_access(state, _tokens(request, fields))
        audio, accepted, rejected = check_voice(fields)
        cost = _charge(state, state.knobs.price_voice, len(accepted))
    except Refused as refused:
        return fail(state, VOICE_ERRORS, refused.code)
    message_id = next(state.message_ids)
    state.record("taqnyat", "voice", message_id, accepted, body=audio)
    return reply(
        {
            "status": 1,
            "ResponseStatus": "success",
            "messageId": message_id,
            "Data": {
                "msgId": f"V-{next(state.voice_ids)}",
                "result": "1",
                "MessageAr": "تم الارسال",
                "MessageEn": "sent successfully",
                "duration": 3,
                "dtmfTimeout": "0",
                "connectionFee": 3,
                "price": money(cost),
                "rejectedNumber": list_string(rejected),
                "Error": "null",
            },
        },
        201,
    )


def add_routes(app: web.Application) -> None:
    for path in ("/mailSend.php", "/mailSend.php/"):
        app.router.add_route("GET", path, mail_send)
        app.router.add_route("POST", path, mail_send)
    for path in ("/voiceSend.php", "/voiceSend.php/"):
        app.router.add_route("GET", path, voice_send)
        app.router.add_route("POST", path, voice_send)
