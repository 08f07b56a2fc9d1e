"""Taqnyat's delivery reports at `/webhooks/taqnyat`: the pass phrase, and what a report does.

Taqnyat's portal configures the URL and a pass phrase that the endpoint echoes back. A call
counts only with that pass phrase (`TAQNYAT_DLR_PASSPHRASE`, found and compared by
`pass_phrase` before the body is parsed); it is then answered with the pass phrase as plain
text, once every report in it is recorded. The shapes read are in `report_shapes`; a JSON
body nested too deep is answered 400.

A report finds its message by Taqnyat's `messageId` (remembered at the hand-over), else by
the `smsId` hudhud sent (the message's own id). It is kept as a `report` event, numbers
masked. A final word (delivered / failed) then moves a `sent` message on:
- one recipient: to `delivered` or `failed` (the word as the error);
- several recipients of one message: `delivered` with the first delivered report, `failed`
  once every recipient's report says failed;
- a campaign batch: the reported number's own outcome (the batch stays `sent`).
A report for a message still being handed over is answered 503 (Taqnyat sends it again);
one of no message of ours is answered `{"ignored": true}` and only counted.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hudhud.worker.ledger import reports as ledger_reports
from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.reports import Membership
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers.base import Inbound, InboundAnswer
from hudhud.worker.providers.taqnyat import pass_phrase
from hudhud.worker.providers.taqnyat.codes import PROVIDER
from hudhud.worker.providers.taqnyat.report_shapes import Call, Report, TooDeep, read
from hudhud.worker.redaction import NO_SECRETS

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger.tracking import Tracker

log = logging.getLogger("hudhud.webhooks")

SETTING = "TAQNYAT_DLR_PASSPHRASE"
EVENT = "report"
VIA = f"{PROVIDER} webhook"

IGNORED: Counter[str] = Counter()  # reports answered `ignored`, by reason
_COUNTING = threading.Lock()


class Applied(StrEnum):
    IGNORED = "ignored"  # no message of ours
    KEPT = "kept"  # recorded as an event (and the message moved on where the word says so)
    NOT_YET = "not yet"  # the message is still being handed over: to be sent again


def receive(inbound: Inbound, tracker: Tracker, settings: Settings, now: float) -> InboundAnswer:
    secret = settings.taqnyat_dlr_passphrase
    phrase = secret.get_secret_value() if secret is not None else ""
    if not phrase:
        return InboundAnswer(503, _error(SETTING, "is not set: Taqnyat's delivery reports are refused"))
    if not pass_phrase.matches(pass_phrase.offered(inbound), phrase):
        return InboundAnswer(401, _error("passphrase", "is missing or wrong"))
    try:
        call = read(inbound, phrase)
    except TooDeep as exc:
        return InboundAnswer(400, _error("body", str(exc)))
    return _answer(tracker, call, phrase, now)


def _answer(tracker: Tracker, call: Call, phrase: str, now: float) -> InboundAnswer:
    reporting = [report for report in call.reports if report.reports_anything]
    if call.readable and not reporting:
        return InboundAnswer(200, phrase)  # the portal's check of the URL: no report in it
    outcomes = [apply(tracker, report, now) for report in reporting]
    if Applied.NOT_YET in outcomes:
        return InboundAnswer(503, _error("messageId", "is still being handed over: send the report again"))
    if Applied.KEPT not in outcomes:
        ignored("unreadable body" if not call.readable else "no message of ours", len(reporting) or 1)
        return InboundAnswer(200, {"ignored": True})
    return InboundAnswer(200, phrase)


def ignored(reason: str, count: int) -> None:
    with _COUNTING:
        IGNORED[reason] += count
    log.info("taqnyat delivery report ignored (%s): %d", reason, count)


def _error(name: str, message: str) -> dict[str, Any]:
    return {"error": {"field": name, "message": message}}


# --- one report ---------------------------------------------------------------------------


def apply(tracker: Tracker, report: Report, now: float) -> Applied:
    """Record one report on its message; Redis errors propagate (the call is retried)."""
    found = locate(tracker, report)
    if found is None:
        return Applied.IGNORED
    message_id, record = found
    if record.get("status") == Status.SENDING:
        return Applied.NOT_YET
    recipient = ledger_reports.fingerprint(tracker, report.number) if report.number else None
    entry = report_event(report, recipient, now)
    if not _seen(record, entry):
        ledger_reports.keep(tracker, message_id, entry)
    final = report.status
    if final is not None and record.get("status") == Status.SENT:
        _move_on(tracker, message_id, record, recipient, final, error_of(report, final), now)
    return Applied.KEPT


def locate(tracker: Tracker, report: Report) -> tuple[str, dict[str, Any]] | None:
    """The message a report is about, and its record: by Taqnyat's id, else by our own."""
    if report.provider_id is not None:
        owner = tracker.owners([report.provider_id])[0]
        if owner is not None:
            record = tracker.record(owner[0])
            return None if record is None else (owner[0], record)
    if report.own_id is None:
        return None
    record = tracker.record(report.own_id)
    if record is None or record.get("provider") != PROVIDER:
        return None
    known = record.get("provider_message_id")
    if known and report.provider_id is not None and known != report.provider_id:
        return None
    return report.own_id, record


def report_event(report: Report, recipient: str | None, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": EVENT, "at": iso(now), "via": "webhook", "source": PROVIDER}
    optional = {
        "status": report.status,
        "word": NO_SECRETS(report.word) if report.word else None,
        "recipient": recipient,
        "reported_at": report.reported_at,
        "report": report.raw,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    return entry


def error_of(report: Report, status: Status) -> str | None:
    if status == Status.DELIVERED:
        return None
    words = NO_SECRETS(report.word or "failed")
    if report.description and report.description != report.word:
        words = f"{words} ({report.description})"
    return f"{PROVIDER}: {words}"[:300]


def _seen(record: dict[str, Any], entry: dict[str, Any]) -> bool:
    """The same report kept already (Taqnyat sends a report again when unsure of our answer)."""
    same = {k: v for k, v in entry.items() if k != "at"}
    return any(
        isinstance(e, dict) and e.get("type") == EVENT and {k: v for k, v in e.items() if k != "at"} == same
        for e in record.get("events", ())
    )


def _move_on(
    tracker: Tracker,
    message_id: str,
    record: dict[str, Any],
    recipient: str | None,
    final: Status,
    error: str | None,
    now: float,
) -> None:
    if recipient is not None:
        member = ledger_reports.membership(tracker, message_id, recipient)
        if member is Membership.MEMBER:
            ledger_reports.finish_member(tracker, message_id, recipient, final, now=now, error=error)
            return
        if member is Membership.STRANGER:
            return
    elif ledger_reports.membership(tracker, message_id, "") is not Membership.NOT_A_BATCH:
        return  # a batch's report without a number tells no recipient apart
    if _finishes(record, recipient, final):
        tracker.finish(message_id, final, now=now, via=VIA, error=error)


def _finishes(record: dict[str, Any], recipient: str | None, final: Status) -> bool:
    """Whether a single message's report ends it: see the module's rules."""
    accepted = set(json.loads(record.get("accepted") or "[]"))
    if recipient is not None and accepted and recipient not in accepted:
        return False
    if final == Status.DELIVERED or recipient is None or len(accepted) <= 1:
        return True
    failed = {
        e.get("recipient")
        for e in record.get("events", ())
        if isinstance(e, dict) and e.get("type") == EVENT and e.get("status") == Status.FAILED
    }
    return accepted <= failed | {recipient}
