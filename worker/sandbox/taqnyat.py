"""Taqnyat's REST side: SMS send and delete, balance, senders and system status."""

from __future__ import annotations

import json
import math
import re
import time
from decimal import Decimal
from typing import Any

from aiohttp import web

from hudhud.worker.sandbox import taqnyat_reports
from hudhud.worker.sandbox.bodies import form_fields, load_json, plain
from hudhud.worker.sandbox.clock import parse_iso
from hudhud.worker.sandbox.responses import bearer, reply, taqnyat_error
from hudhud.worker.sandbox.state import (
    STATE,
    TOKEN_API_DISABLED,
    TOKEN_IP_BLOCKED,
    ScheduledSms,
    State,
    money,
)

UNASSIGNED_PREFIX = "999"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_NUMBER = re.compile(r"[0-9]{8,15}")
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
_BLOCKED_REASONS = {
    "101": "sending by API is disabled",
    "102": "this ip Not authorized to using the API",
}


def authorised(state: State, token: str | None) -> bool:
    return token in (state.taqnyat_token, TOKEN_API_DISABLED, TOKEN_IP_BLOCKED)


def blocked_code(state: State, tokens: list[str]) -> int | None:
    """101 or 102 when the account (knob `api_disabled`) or a special token forbids sending."""
    if state.knobs.api_disabled or TOKEN_API_DISABLED in tokens:
        return 101
    if TOKEN_IP_BLOCKED in tokens:
        return 102
    return None


def sms_refused(state: State, code: int, words: str) -> web.Response:
    """A numbered SMS error in the shape the knob `sms_error_shape` asks for."""
    shape = state.knobs.sms_error_shape
    if shape == "words":
        return taqnyat_error(400, words)
    if shape == "reason":
        return reply({"message": str(code), "reason": words}, 400)
    return taqnyat_error(400, str(code), words)


def unauthorised() -> web.Response:
    return taqnyat_error(401, "invalid credentials information")


def number_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def split_numbers(values: Any) -> tuple[list[str], list[str]]:
    """Accepted and rejected recipients; a comma-separated string counts as a list."""
    if isinstance(values, str):
        values = [part for part in values.split(",") if part.strip()]
    if not isinstance(values, list):
        return [], []
    accepted: list[str] = []
    rejected: list[str] = []
    for value in values:
        number = str(value).strip() if isinstance(value, str | int) else ""
        valid = not isinstance(value, bool) and _NUMBER.fullmatch(number) is not None
        if valid and not number.startswith(UNASSIGNED_PREFIX):
            accepted.append(number)
        else:
            rejected.append(number_text(value).strip())
    return accepted, rejected


def list_string(items: list[str]) -> str:
    """Taqnyat's list-in-a-string, trailing comma included: "[966500000000,]"."""
    return "[" + "".join(f"{item}," for item in items) + "]"


def sms_parts(text: str) -> int:
    """How many SMS a text takes: GSM-7 160/153 characters, otherwise UCS-2 70/67."""
    single, multi = (160, 153) if all(char in _GSM7 for char in text) else (70, 67)
    return 1 if len(text) <= single else math.ceil(len(text) / multi)


async def read_body(request: web.Request) -> dict[str, Any] | None:
    """A JSON object body, or form fields; None when the body is not readable as either
    (not JSON, nested too deeply, strings that are not Unicode, a form that cannot be decoded)."""
    if not request.body_exists:
        return {}
    if request.content_type in FORM_TYPES:
        form = await form_fields(request)
        return None if form is None else {key: form.getone(key) for key in form}
    _, body = load_json(await request.read(), unicode_only=True)
    return body if isinstance(body, dict) else None


def _required_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _schedule(body: dict[str, Any]) -> tuple[bool, float | None]:
    """(valid, time) of `scheduledDatetime`; a time without offset counts as UTC."""
    value = body.get("scheduledDatetime")
    if value in (None, ""):
        return True, None
    if not isinstance(value, str):
        return False, None
    moment = parse_iso(value)
    return moment is not None, moment


def _sms_refusal(state: State, token: str | None, body: dict[str, Any]) -> web.Response | None:
    code = blocked_code(state, [token] if token else [])
    if code is not None:
        return sms_refused(state, code, _BLOCKED_REASONS[str(code)])
    if _required_text(body, "body") is None:
        return taqnyat_error(400, "body is required")
    sender = _required_text(body, "sender")
    if sender is None:
        return taqnyat_error(400, "sender is required")
    if sender not in state.senders:
        return sms_refused(state, 14, "Invalid sender")
    return None


async def send_sms(request: web.Request) -> web.Response:
    state = request.app[STATE]
    token = bearer(request)
    if not authorised(state, token):
        return unauthorised()
    body = await read_body(request)
    if body is None:
        return taqnyat_error(400, "request body must be a JSON object")
    refusal = _sms_refusal(state, token, body)
    if refusal is not None:
        return refusal
    accepted, rejected = split_numbers(body.get("recipients"))
    if not accepted:
        return sms_refused(state, 15, "Mobile(s) number(s) is not specified or incorrect")
    valid, send_at = _schedule(body)
    if not valid:
        return taqnyat_error(400, "scheduledDatetime is not valid, use YYYY-MM-DDTHH:mm")
    cost = state.price(state.knobs.price_sms, len(accepted))
    code = state.charge(cost)
    if code == 2:
        return sms_refused(state, 2, "Your balance is 0")
    if code == 3:
        return sms_refused(state, 3, "Your balance is not enough")
    answer = _accept_sms(state, body, accepted, rejected, cost, send_at)
    taqnyat_reports.schedule(request.app, state.sends[-1], send_at=send_at)  # the send just recorded
    return answer


def _accept_sms(
    state: State,
    body: dict[str, Any],
    accepted: list[str],
    rejected: list[str],
    cost: Decimal,
    send_at: float | None,
) -> web.Response:
    message_id = next(state.message_ids)
    delete_id = plain(body.get("deleteId"))
    state.record(
        "taqnyat",
        "sms",
        message_id,
        accepted,
        body=body["body"],
        sms_id=plain(body.get("smsId")),
        delete_id=delete_id,
    )
    if send_at is not None and send_at > time.time() and delete_id not in (None, ""):
        state.scheduled_sms.setdefault(str(delete_id), []).append(ScheduledSms(str(delete_id), cost, send_at))
    return reply(
        {
            "statusCode": 201,
            "messageId": message_id,
            "cost": money(cost) if state.knobs.cost_as_string else float(cost),
            "currency": "SAR",
            "totalCount": len(accepted),
            "msgLength": sms_parts(body["body"]),
            "accepted": list_string(accepted),
            "rejected": list_string(rejected),
        },
        201,
    )


async def delete_sms(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not authorised(state, bearer(request)):
        return unauthorised()
    delete_id: Any = request.query.get("deleteId")
    if delete_id is None:
        body = await read_body(request) or {}
        delete_id = body.get("deleteId")
    if delete_id in (None, ""):
        return taqnyat_error(400, "deleteId is required")
    now = time.time()
    pending = [sms for sms in state.scheduled_sms.pop(str(delete_id), []) if sms.send_at > now]
    if not pending:
        return taqnyat_error(422, "deleteId not found")
    state.balance += sum((sms.cost for sms in pending), Decimal(0))
    return reply({"statusCode": 201, "message": "Deleted successfully"}, 201)


async def balance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not authorised(state, bearer(request)):
        return unauthorised()
    return reply(
        {
            "statusCode": 200,
            "accountStatus": "active",
            "accountExpiryDate": "23-08-2031",
            "balance": money(state.balance),
            "currency": "SAR",
            "points": 0,
        }
    )


async def senders(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not authorised(state, bearer(request)):
        return unauthorised()
    listed = [{"senderName": name, "status": "active", "destination": "local"} for name in state.senders]
    return reply({"statusCode": 200, "senders": listed})


async def system_status(request: web.Request) -> web.Response:
    knobs = request.app[STATE].knobs
    if knobs.outage:
        status = {"service": "sms,email,voice", "description": knobs.outage_description}
    else:
        status = {"service": "none", "description": "All Services are Operational"}
    return reply({"statusCode": 200, "status": status})


def add_routes(app: web.Application) -> None:
    taqnyat_reports.add_routes(app)
    app.router.add_post("/v1/messages", send_sms)
    app.router.add_delete("/v1/messages", delete_sms)
    app.router.add_delete("/v1/messages/delete", delete_sms)
    app.router.add_get("/v1/messages/senders", senders)
    app.router.add_get("/account/balance", balance)
    app.router.add_get("/system/status", system_status)
    app.router.add_get("/system/status/", system_status)
