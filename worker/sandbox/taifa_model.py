"""Taifa Mail emails and their life, computed from timestamps when asked (no timers)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from hudhud.worker.sandbox.clock import iso_time

NORMAL, BOUNCE, FAIL, OPEN, REJECT = "normal", "bounce", "fail", "open", "reject"
SUPPRESSED = "recipient is on the suppression list"
_EVENT_METADATA: dict[str, dict[str, Any]] = {
    "scheduled": {},
    "queued": {},
    "sent": {},
    "delivered": {"smtp_response": "250 2.0.0 OK"},
    "bounced": {
        "bounce_type": "hard",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist",
    },
    "failed": {"reason": "delivery failed: the receiving server did not answer"},
    "opened": {"user_agent": "Mozilla/5.0"},
    "clicked": {"url": "https://example.com/"},
    "rejected": {"reason": SUPPRESSED},
    "cancelled": {},
}


@dataclass(slots=True)
class Address:
    email: str
    name: str | None = None


@dataclass(slots=True)
class SendRequest:
    """A send body that passed every check."""

    from_: Address
    to: list[Address]
    subject: str
    html: str | None = None
    text: str | None = None
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: Address | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    send_at: float | None = None

    @property
    def kind(self) -> str:
        """Which scripted life the special recipients ask for (first match wins)."""
        locals_ = [address.email.split("@", 1)[0].lower() for address in self.to]
        for prefix in (REJECT, BOUNCE, FAIL, OPEN):
            if any(local.startswith(prefix) for local in locals_):
                return prefix
        return NORMAL


class Email:
    """One email row. Its status is a function of the clock, the kind and `step`."""

    __slots__ = (
        "cancelled_at",
        "created_at",
        "id",
        "kind",
        "message_id",
        "request",
        "retry_of_id",
        "start_at",
        "step",
        "to_addresses",
    )

    def __init__(self, request: SendRequest, now: float, step: float, retry_of_id: str | None = None) -> None:
        self.id = str(uuid.uuid4())
        self.message_id = f"<{uuid.uuid4()}@govconnect.ke>"
        self.request = request
        self.kind = request.kind
        self.created_at = now
        self.start_at = request.send_at if request.send_at is not None else now
        self.step = step
        self.cancelled_at: float | None = None
        self.retry_of_id = retry_of_id
        self.to_addresses = [address.email for address in request.to]

    @property
    def rejection_reason(self) -> str | None:
        return SUPPRESSED if self.kind == REJECT else None

    @property
    def from_address(self) -> str:
        return self.request.from_.email

    @property
    def scheduled_at(self) -> float | None:
        return self.request.send_at

    def status_at(self, now: float) -> str:
        if self.kind == REJECT:
            return "rejected"
        if self.cancelled_at is not None:
            return "cancelled"
        elapsed = now - self.start_at
        if elapsed < 0:
            return "scheduled"
        if self.kind == FAIL:
            return "failed" if elapsed >= 2 * self.step else "queued"
        if elapsed < self.step:
            return "queued"
        if elapsed < 2 * self.step:
            return "sent"
        return "bounced" if self.kind == BOUNCE else "delivered"

    def timeline(self) -> list[tuple[str, float]]:
        """Every event of this email's life, past and future, oldest first."""
        if self.kind == REJECT:
            return [("rejected", self.created_at)]
        events: list[tuple[str, float]] = []
        if self.scheduled_at is not None:
            events.append(("scheduled", self.created_at))
        if self.cancelled_at is not None:
            return [*events, ("cancelled", self.cancelled_at)]
        start, step = self.start_at, self.step
        events.append(("queued", start))
        if self.kind == FAIL:
            return [*events, ("failed", start + 2 * step)]
        events.append(("sent", start + step))
        if self.kind == BOUNCE:
            return [*events, ("bounced", start + 2 * step)]
        events.append(("delivered", start + 2 * step))
        if self.kind == OPEN:
            events += [("opened", start + 3 * step), ("clicked", start + 3 * step)]
        return events

    def updated_at(self, now: float) -> float:
        """When the status last changed, as seen at `now` (the arithmetic twin of timeline)."""
        if self.kind == REJECT:
            return self.created_at
        if self.cancelled_at is not None:
            return self.cancelled_at
        elapsed, step = now - self.start_at, self.step
        if elapsed < 0:
            return self.created_at
        if self.kind == FAIL:
            return self.start_at + 2 * step if elapsed >= 2 * step else self.start_at
        if elapsed < step:
            return self.start_at
        return self.start_at + (step if elapsed < 2 * step else 2 * step)

    def sent_at(self, now: float) -> float | None:
        if self.kind in (REJECT, FAIL) or self.cancelled_at is not None:
            return None
        at = self.start_at + self.step
        return at if at <= now else None

    def delivered_at(self, now: float) -> float | None:
        if self.kind not in (NORMAL, OPEN) or self.cancelled_at is not None:
            return None
        at = self.start_at + 2 * self.step
        return at if at <= now else None

    def events(self, now: float) -> list[dict[str, Any]]:
        namespace = uuid.UUID(self.id)
        return [
            {
                "id": str(uuid.uuid5(namespace, name)),
                "event_type": name,
                "metadata": _EVENT_METADATA[name],
                "created_at": iso_time(at),
            }
            for name, at in self.timeline()
            if at <= now
        ]

    def list_item(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "from_address": self.from_address,
            "to_addresses": self.to_addresses,
            "subject": self.request.subject,
            "status": self.status_at(now),
            "tags": self.request.tags,
            "scheduled_at": _iso_or_none(self.scheduled_at),
            "created_at": iso_time(self.created_at),
            "sent_at": _iso_or_none(self.sent_at(now)),
            "delivered_at": _iso_or_none(self.delivered_at(now)),
            "retry_of_id": self.retry_of_id,
        }

    def detail(self, now: float) -> dict[str, Any]:
        return {
            **self.list_item(now),
            "message_id": self.message_id,
            "rejection_reason": self.rejection_reason,
            "html": self.request.html,
            "text": self.request.text,
            "headers": self.request.headers,
            "events": self.events(now),
        }

    def send_reply(self) -> dict[str, Any]:
        """The 202 body of a send, a retry or a batch item."""
        status = (
            "rejected"
            if self.kind == REJECT
            else ("scheduled" if self.scheduled_at is not None else "queued")
        )
        return {
            "id": self.id,
            "status": status,
            "message_id": self.message_id,
            "rejection_reason": self.rejection_reason,
        }


def _iso_or_none(stamp: float | None) -> str | None:
    return None if stamp is None else iso_time(stamp)
