"""Taifa Mail's REST API under /v1/emails (seed 004)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from hudhud.worker.sandbox.bodies import Unreadable, parse_json
from hudhud.worker.sandbox.clock import iso_micros, parse_iso_micros
from hudhud.worker.sandbox.knobs import PLANS
from hudhud.worker.sandbox.responses import (
    bearer,
    field_errors,
    reply,
    taifa_error,
    taifa_not_found,
    taifa_unauthorized,
)
from hudhud.worker.sandbox.state import STATE, State
from hudhud.worker.sandbox.taifa_checks import Checked, check_send, refusal
from hudhud.worker.sandbox.taifa_model import REJECT, SUPPRESSED, Email, SendRequest
from hudhud.worker.sandbox.taifa_store import Filters, paginate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RETRYABLE = ("bounced", "rejected", "failed")
MAX_LIMIT = 100


class BadInput(Exception):
    """A request answered with FastAPI's 422 body."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def authed(handler: Handler) -> Handler:
    """Answer 401 unless the request carries the sandbox's Taifa API key; 422 on BadInput."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if bearer(request) != request.app[STATE].taifa_key:
            return taifa_unauthorized()
        try:
            return await handler(request)
        except BadInput as bad:
            return field_errors(bad.errors)

    return guarded


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return parse_json(raw)
    except Unreadable as error:
        raise BadInput(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", 0],
                    "msg": "JSON decode error",
                    "ctx": {"error": str(error)},
                }
            ]
        ) from None


def query_int(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(
            [{"type": "int_parsing", "loc": ["query", name], "msg": "Input should be a valid integer"}]
        ) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadInput([{"type": "value_error", "loc": ["query", name], "msg": f"Input should be {bound}"}])
    return value


def page_reply(request: web.Request, emails: Iterable[Email] | None, now: float) -> web.Response:
    """One page of `emails`, or of every email when None."""
    page = query_int(request, "page", 0, 0, None)
    limit = query_int(request, "limit", 20, 1, MAX_LIMIT)
    if emails is None:
        chosen, total = request.app[STATE].emails.page_of_all(page, limit)
    else:
        chosen, total = paginate(emails, page, limit)
    return reply(
        {"items": [email.list_item(now) for email in chosen], "total": total, "page": page, "limit": limit}
    )


def filtered(request: web.Request, query: str, now: float) -> Iterable[Email] | None:
    filters = Filters.parse(query, request.query.get("status"), request.query.get("tag"))
    if not filters.checks(now):
        return None
    return request.app[STATE].emails.search(filters, now)


def limit_reached(state: State) -> bool:
    limit = state.knobs.send_limit
    return limit is not None and len(state.emails) >= limit


def create_email(state: State, request: SendRequest, now: float, retry_of_id: str | None = None) -> Email:
    email = Email(request, state.emails.stamp(now), state.knobs.progress_seconds, retry_of_id)
    state.emails.add(email)
    if email.kind != REJECT:
        state.record(
            "taifa",
            "email",
            email.id,
            email.to_addresses,
            subject=request.subject,
            body=request.html if request.html is not None else request.text,
            tags=request.tags,
        )
    return email


def limit_refusal() -> web.Response:
    return taifa_error(403, "send_limit_reached", "The send limit of this account is reached")


async def redirect_collection(request: web.Request) -> web.StreamResponse:
    """Like FastAPI: the collection lives at the path with a trailing slash (seed 004)."""
    target = request.url.with_path("/v1/emails/")
    if request.query_string:
        target = target.with_query(request.query_string)
    raise web.HTTPTemporaryRedirect(target)


@authed
async def send(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    now = time.time()
    checked = check_send(await json_body(request), now)
    if checked.errors:
        return field_errors(checked.errors)
    problem = refusal(checked)
    if problem is not None:
        return reply(problem.body(), problem.status)
    if limit_reached(state):
        return limit_refusal()
    assert checked.request is not None
    return reply(create_email(state, checked.request, now).send_reply(), 202)


def validation_issues(state: State, checked: Checked) -> list[dict[str, str]]:
    issues = checked.issues()
    if checked.request is not None:
        issues += [
            {"field": f"to.{index}.email", "error": SUPPRESSED}
            for index, address in enumerate(checked.request.to)
            if address.email.split("@", 1)[0].lower().startswith(REJECT)
        ]
    if limit_reached(state):
        issues.append({"field": "account", "error": "the send limit of this account is reached"})
    return issues


@authed
async def validate(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        body = await json_body(request)
    except BadInput:
        issues = [{"field": "body", "error": "JSON decode error"}]
    else:
        issues = validation_issues(state, check_send(body, time.time()))
    ok = not issues
    return reply({"valid": ok, "can_send": ok, "issues": issues})


def find(request: web.Request) -> Email | None:
    return request.app[STATE].emails.get(request.match_info["email_id"])


@authed
async def get_email(request: web.Request) -> web.StreamResponse:
    email = find(request)
    if email is None:
        return taifa_not_found()
    return reply(email.detail(time.time()))


@authed
async def events(request: web.Request) -> web.StreamResponse:
    email = find(request)
    if email is None:
        return taifa_not_found()
    return reply(email.events(time.time()))


@authed
async def retry(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    email = find(request)
    if email is None:
        return taifa_not_found()
    now = time.time()
    status = email.status_at(now)
    if status not in RETRYABLE:
        return taifa_error(409, "not_retryable", f"Email with status '{status}' cannot be retried")
    if limit_reached(state):
        return limit_refusal()
    again = dataclasses.replace(email.request, send_at=None)
    return reply(create_email(state, again, now, retry_of_id=email.id).send_reply(), 202)


@authed
async def search(request: web.Request) -> web.StreamResponse:
    now = time.time()
    return page_reply(request, filtered(request, request.query.get("q", ""), now), now)


@authed
async def list_emails(request: web.Request) -> web.StreamResponse:
    now = time.time()
    return page_reply(request, filtered(request, "", now), now)


def batch_item(state: State, body: Any, now: float) -> tuple[dict[str, Any], bool]:
    """The result row of one batch item and whether it was sent."""
    checked = check_send(body, now)
    problem = None if checked.errors else refusal(checked)
    if checked.errors or problem is not None:
        reason = problem.message if problem is not None else checked.first_reason()
        return {"id": None, "status": "failed", "rejection_reason": reason}, False
    if limit_reached(state):
        return {
            "id": None,
            "status": "failed",
            "rejection_reason": "the send limit of this account is reached",
        }, False
    assert checked.request is not None
    email = create_email(state, checked.request, now)
    row = email.send_reply()
    del row["message_id"]
    return row, email.kind != REJECT


@authed
async def batch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    plan = state.knobs.plan
    if PLANS[plan] == 0:
        return taifa_error(403, "plan_feature", f"Batch sending is not available on the {plan} plan")
    items = await json_body(request)
    if not isinstance(items, list):
        raise BadInput([{"type": "list_type", "loc": ["body"], "msg": "Input should be a valid list"}])
    if not items:
        raise BadInput(
            [
                {
                    "type": "too_short",
                    "loc": ["body"],
                    "msg": "List should have at least 1 item after validation, not 0",
                }
            ]
        )
    if len(items) > PLANS[plan]:
        return taifa_error(
            400,
            "batch_too_large",
            f"A batch on the {plan} plan holds at most {PLANS[plan]} emails, this one has {len(items)}",
        )
    now = time.time()
    outcomes = [batch_item(state, item, now) for item in items]
    sent = sum(1 for _, ok in outcomes if ok)
    return reply(
        {
            "total": len(items),
            "sent": sent,
            "failed": len(items) - sent,
            "results": [row for row, _ in outcomes],
        },
        202,
    )


@authed
async def scheduled(request: web.Request) -> web.StreamResponse:
    now = time.time()
    return page_reply(request, request.app[STATE].emails.scheduled(now), now)


def scheduled_email(request: web.Request, now: float) -> Email | web.Response:
    email = find(request)
    if email is None:
        return taifa_not_found()
    status = email.status_at(now)
    if status != "scheduled":
        return taifa_error(409, "not_scheduled", f"Email is not scheduled (status '{status}')")
    return email


def _reschedule(request: web.Request, field: str, status: str) -> web.StreamResponse:
    """Stamp a scheduled email's `cancelled_at` or `start_at` with now."""
    now = time.time()
    email = scheduled_email(request, now)
    if isinstance(email, web.Response):
        return email
    setattr(email, field, request.app[STATE].emails.stamp(now))
    return reply({"id": email.id, "status": status})


@authed
async def cancel(request: web.Request) -> web.StreamResponse:
    return _reschedule(request, "cancelled_at", "cancelled")


@authed
async def send_now(request: web.Request) -> web.StreamResponse:
    return _reschedule(request, "start_at", "queued")


@authed
async def updates(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("since")
    since = 0 if not raw else parse_iso_micros(raw)
    if since is not None:
        since = max(since, 0)  # nothing changed before the epoch
    if since is None:
        raise BadInput(
            [
                {
                    "type": "datetime_parsing",
                    "loc": ["query", "since"],
                    "msg": "Input should be a valid datetime",
                }
            ]
        )
    now = time.time()
    rows = request.app[STATE].emails.updates(since, now)
    items = [
        {"id": email.id, "status": email.status_at(now), "updated_at": iso_micros(at)} for at, email in rows
    ]
    return reply({"items": items, "next_since": iso_micros(rows[-1][0] if rows else since)})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_route("*", "/v1/emails", redirect_collection)
    router.add_post("/v1/emails/", send)
    router.add_get("/v1/emails/", list_emails)
    router.add_post("/v1/emails/validate", validate)
    router.add_post("/v1/emails/batch", batch)
    router.add_get("/v1/emails/search", search)
    router.add_get("/v1/emails/updates", updates)
    router.add_get("/v1/emails/scheduled", scheduled)
    router.add_delete("/v1/emails/scheduled/{email_id}", cancel)
    router.add_post("/v1/emails/scheduled/{email_id}/send-now", send_now)
    router.add_get("/v1/emails/{email_id}", get_email)
    router.add_get("/v1/emails/{email_id}/events", events)
    router.add_post("/v1/emails/{email_id}/retry", retry)
