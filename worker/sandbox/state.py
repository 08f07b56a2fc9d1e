"""Everything the sandbox remembers: knobs, the Taqnyat balance and the record of sends."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from hudhud.worker.sandbox.clock import iso_time
from hudhud.worker.sandbox.knobs import DEFAULT_BALANCE, Knobs, apply_patch, check_patch
from hudhud.worker.sandbox.taifa_store import EmailStore

DEFAULT_TAQNYAT_TOKEN = "sandbox-taqnyat-token"
DEFAULT_TAIFA_KEY = "tfm_k_sandbox"
TOKEN_API_DISABLED = "sandbox-api-disabled"
TOKEN_IP_BLOCKED = "sandbox-ip-blocked"
BASE_SENDERS = ("HUDHUD", "Taqnyat")
FIRST_MESSAGE_ID = 5452899970123
FIRST_MAIL_ID = 202
_MILLI = Decimal("0.001")
# The seqs recorded while handling the current request (set by the fault middleware).
ACCEPTED_HERE: ContextVar[list[int] | None] = ContextVar("accepted_here", default=None)


def money(amount: Decimal) -> str:
    """An amount as the providers print it: at least three decimals ("0.026", "2044.000")."""
    if amount == amount.quantize(_MILLI):
        return str(amount.quantize(_MILLI))
    return format(amount.normalize(), "f")


class SendRecord:
    """One accepted send, as listed by GET /_sandbox/sends."""

    __slots__ = (
        "accepted_at",
        "body",
        "channel",
        "delete_id",
        "provider",
        "provider_message_id",
        "recipients",
        "seq",
        "sms_id",
        "subject",
        "tags",
    )

    def __init__(
        self,
        seq: int,
        provider: str,
        channel: str,
        provider_message_id: Any,
        recipients: list[str],
        *,
        body: str | None = None,
        subject: str | None = None,
        tags: list[str] | None = None,
        sms_id: Any = None,
        delete_id: Any = None,
    ) -> None:
        self.seq = seq
        self.provider = provider
        self.channel = channel
        self.provider_message_id = provider_message_id
        self.recipients = recipients
        self.body = body
        self.subject = subject
        self.tags = tags
        self.sms_id = sms_id
        self.delete_id = delete_id
        self.accepted_at = time.time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "provider": self.provider,
            "channel": self.channel,
            "provider_message_id": self.provider_message_id,
            "recipients": self.recipients,
            "sms_id": self.sms_id,
            "delete_id": self.delete_id,
            "tags": self.tags or [],
            "subject": self.subject,
            "body": self.body,
            "accepted_at": iso_time(self.accepted_at),
        }


@dataclass
class ScheduledSms:
    """A scheduled SMS that can still be deleted (and refunded) until its time comes."""

    delete_id: str
    cost: Decimal
    send_at: float


@dataclass
class State:
    """The whole sandbox state; one instance per application."""

    taqnyat_token: str
    taifa_key: str
    senders: tuple[str, ...]
    start_knobs: Knobs
    start_balance: Decimal
    knobs: Knobs = field(init=False)
    balance: Decimal = field(init=False)
    sends: list[SendRecord] = field(default_factory=list)
    scheduled_sms: dict[str, list[ScheduledSms]] = field(default_factory=dict)
    emails: EmailStore = field(default_factory=EmailStore)
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_MESSAGE_ID))
    mail_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_MAIL_ID))
    voice_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(8))
    # answers given to provider calls, by "<provider> <HTTP status>" (the sends that were
    # refused, too: a test can tell how hard hudhud knocked)
    answers: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.knobs = self.start_knobs.copy()
        self.balance = self.start_balance

    @classmethod
    def create(
        cls, knobs: dict[str, Any] | None, taqnyat_token: str, taifa_key: str, extra_sender: str | None = None
    ) -> State:
        checked = check_patch(knobs or {})
        start = Knobs()
        apply_patch(start, checked)
        senders: tuple[str, ...] = BASE_SENDERS
        if extra_sender and extra_sender not in senders:
            senders = (*senders, extra_sender)
        return cls(
            taqnyat_token=taqnyat_token,
            taifa_key=taifa_key,
            senders=senders,
            start_knobs=start,
            start_balance=checked.get("balance", DEFAULT_BALANCE),
        )

    def knobs_view(self) -> dict[str, Any]:
        return {**self.knobs.as_dict(), "balance": money(self.balance)}

    def patch_knobs(self, values: dict[str, Any]) -> None:
        checked = check_patch(values)
        apply_patch(self.knobs, checked)
        if "balance" in checked:
            self.balance = checked["balance"]

    def reset(self) -> None:
        """Knobs and balance back to their start values; sends and emails forgotten."""
        self.knobs = self.start_knobs.copy()
        self.balance = self.start_balance
        self.sends = []
        self.answers = Counter()
        self.scheduled_sms = {}
        self.emails = EmailStore()

    def record(
        self, provider: str, channel: str, provider_message_id: Any, recipients: list[str], **details: Any
    ) -> SendRecord:
        entry = SendRecord(len(self.sends) + 1, provider, channel, provider_message_id, recipients, **details)
        self.sends.append(entry)
        accepted = ACCEPTED_HERE.get()
        if accepted is not None:
            accepted.append(entry.seq)
        return entry

    def charge(self, cost: Decimal) -> int:
        """Take `cost` off the balance: 0 when paid, else Taqnyat's code 2 (empty) or 3 (short)."""
        if self.balance <= 0:
            return 2
        if self.balance < cost:
            return 3
        self.balance -= cost
        return 0

    def price(self, per_recipient: float, count: int) -> Decimal:
        return Decimal(str(per_recipient)) * count

    def sends_since(self, since_seq: int, limit: int | None) -> list[SendRecord]:
        start = max(since_seq, 0)
        stop = None if limit is None else start + limit
        return self.sends[start:stop]


STATE: web.AppKey[State] = web.AppKey("sandbox_state", State)
