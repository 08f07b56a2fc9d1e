"""Taqnyat's delivery reports, as its portal pushes them: after an accepted SMS, one report
per recipient is posted to the knob `dlr_url` from a background task (never on the request's
path), `dlr_delay_ms` later.

A report carries `messageId`, `smsId` (when the send gave one), `mobile`, `status` (`DELIVRD`
or `UNDELIV`), `statusDescription` and `deliveredAt`, as JSON or as form fields (`dlr_format`),
with the pass phrase (`dlr_passphrase`) both as the query parameter `passphrase` and as a
field. `dlr_status` chooses delivered, failed, or mixed (recipients alternate, the first
delivered). An answer other than 2xx is tried again twice, `dlr_delay_ms` apart (at least
200 ms). `GET /_sandbox/reports` lists the reports and how each was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from hudhud.worker.sandbox.clock import iso_time
from hudhud.worker.sandbox.knobs import Knobs
from hudhud.worker.sandbox.responses import reply
from hudhud.worker.sandbox.state import STATE, SendRecord

TRIES = 3
MIN_PAUSE = 0.2
TIMEOUT = aiohttp.ClientTimeout(total=10)
DELIVERED = ("DELIVRD", "Delivered to handset")
FAILED = ("UNDELIV", "Absent subscriber")


@dataclass
class PushedReport:
    """One report to push, and how each try was answered."""

    send: SendRecord
    recipient: str
    word: str
    format: str
    tries: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.send.seq,
            "provider_message_id": self.send.provider_message_id,
            "recipient": self.recipient,
            "status": self.word,
            "format": self.format,
            "done": self.done,
            "tries": self.tries,
        }


@dataclass
class Reporter:
    """The reports pushed so far, their tasks and the HTTP session they share."""

    reports: list[PushedReport] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self.session


REPORTER: web.AppKey[Reporter] = web.AppKey("taqnyat_reporter", Reporter)


def word_for(status: str, index: int) -> tuple[str, str]:
    if status == "failed" or (status == "mixed" and index % 2 == 1):
        return FAILED
    return DELIVERED


def schedule(app: web.Application, send: SendRecord, *, send_at: float | None = None) -> None:
    """Push a report for each recipient of an accepted SMS (a scheduled one once its time has
    come), if the knobs ask for reports."""
    knobs = app[STATE].knobs.copy()
    if not knobs.dlr_url:
        return
    reporter = app[REPORTER]
    for index, recipient in enumerate(send.recipients):
        word, _ = word_for(knobs.dlr_status, index)
        report = PushedReport(send, recipient, word, knobs.dlr_format)
        reporter.reports.append(report)
        task = asyncio.get_running_loop().create_task(push(reporter, report, knobs, index, send_at))
        reporter.tasks.add(task)
        task.add_done_callback(reporter.tasks.discard)


def fields_of(report: PushedReport, knobs: Knobs, index: int) -> dict[str, str]:
    word, description = word_for(knobs.dlr_status, index)
    fields = {
        "messageId": str(report.send.provider_message_id),
        "mobile": report.recipient,
        "status": word,
        "statusDescription": description,
        "deliveredAt": iso_time(time.time()),
        "passphrase": knobs.dlr_passphrase,
    }
    if report.send.sms_id not in (None, ""):
        fields["smsId"] = str(report.send.sms_id)
    return fields


async def push(
    reporter: Reporter, report: PushedReport, knobs: Knobs, index: int, send_at: float | None
) -> None:
    pause = knobs.dlr_delay_ms / 1000
    await asyncio.sleep(pause + max(0.0, (send_at or 0.0) - time.time()))
    fields = fields_of(report, knobs, index)  # once: a report sent again is the same report
    for _ in range(TRIES):
        answered = await _post(reporter.client(), fields, knobs)
        report.tries.append(answered)
        if 200 <= answered.get("http_status", 0) < 300:
            report.done = True
            return
        await asyncio.sleep(max(pause, MIN_PAUSE))


async def _post(session: aiohttp.ClientSession, fields: dict[str, str], knobs: Knobs) -> dict[str, Any]:
    body: dict[str, Any] = {"json": fields} if knobs.dlr_format == "json" else {"data": fields}
    at = iso_time(time.time())
    try:
        async with session.post(knobs.dlr_url, params={"passphrase": knobs.dlr_passphrase}, **body) as answer:
            text = await answer.text()
            return {"at": at, "http_status": answer.status, "answer": text[:200]}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"at": at, "error": type(exc).__name__}


async def listing(request: web.Request) -> web.Response:
    """The reports of the sends the sandbox still remembers (a reset forgets them)."""
    sends = {id(send) for send in request.app[STATE].sends}
    shown = [r.as_dict() for r in request.app[REPORTER].reports if id(r.send) in sends]
    target = urlsplit(request.app[STATE].knobs.dlr_url)
    return reply({"count": len(shown), "dlr_url": target._replace(query="").geturl(), "reports": shown})


async def _close(app: web.Application) -> None:
    reporter = app[REPORTER]
    for task in list(reporter.tasks):
        task.cancel()
    for task in list(reporter.tasks):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if reporter.session is not None:
        await reporter.session.close()


def add_routes(app: web.Application) -> None:
    app[REPORTER] = Reporter()
    app.on_cleanup.append(_close)
    app.router.add_get("/_sandbox/reports", listing)
