"""The one interface every provider client implements; core code talks to nothing else.

A provider is a class with a name (its registry entry), the channels it serves and a few
verbs. Delivery calls `deliver`; beat's health jobs call `outage`, `balance` and `probe`;
its tracking job calls `follow_up` on every provider that reports delivery later; doubt
handling calls `reconcile`; `hudhud check` calls `check`. The producer side reads only the
class (no secret needed): `batch_limit`, `default_sender`, `unsupported_fields`,
`one_per_recipient`, `retries_by_id` with `retry_payload`. Nothing outside a provider's own
module compares a provider's name: a quirk is a property or a verb here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from hudhud.worker.providers.results import Balance, SendResult

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger.tracking import Tracker

Facts = dict[str, Any]

RECONCILE_TAG = "hudhud-"


def reconcile_tag(message_id: str) -> str:
    """The tag a message carries at a provider that takes tags: it finds the message again."""
    return f"{RECONCILE_TAG}{message_id}"


class Follow(StrEnum):
    """How the fate of a sent message is followed after the hand-over."""

    NONE = ""  # `sent` is final: the provider reports nothing further
    MESSAGE = "message"  # the message itself is followed (events by its provider id)
    RECIPIENTS = "recipients"  # each recipient's own provider id is followed (a batch)


@dataclass(frozen=True)
class Probe:
    """Whether the account can send now, with the balance seen on the way (if any)."""

    can_send: bool
    outage: str | None = None
    balance: Decimal | None = None


@dataclass(frozen=True)
class Inbound:
    """A webhook call a provider made to `/webhooks/<name>`: headers (names lower-cased), the
    query string's values, and the raw body (a signature covers the bytes as sent)."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class InboundAnswer:
    """What `/webhooks/<name>` answers, once what the call reported is recorded: an HTTP
    status and a JSON body (a dict) or a plain-text body (a str)."""

    status: int
    body: dict[str, Any] | str = field(default_factory=dict)


@dataclass
class CheckReport:
    """One provider's part of `hudhud check`: facts, and what stops or threatens delivery."""

    facts: Facts = field(default_factory=lambda: {"reachable": False, "credentials": "unknown"})
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Provider:
    """What every provider client implements (defaults: a provider that reports nothing)."""

    name: ClassVar[str] = ""
    channels: ClassVar[frozenset[str]] = frozenset()
    # the channel's settings: the recipients one call takes, and a rate limit (per second)
    batch_size_setting: ClassVar[str] = "sms_batch_size"
    rate_limit_setting: ClassVar[str] = ""
    # a campaign batch goes as one message per recipient (each with its own provider id)
    one_per_recipient: ClassVar[bool] = False
    # the account has a status page (`outage`) and a balance (`balance`) that beat watches
    reports_outages: ClassVar[bool] = False
    keeps_balance: ClassVar[bool] = False
    # the provider reports delivery after the hand-over (`follow_up` follows it)
    tracks_delivery: ClassVar[bool] = False
    # the variable of the account's secret, named when the provider refuses it
    secret_variable: ClassVar[str] = ""
    # `hudhud retry` can ask the provider to send a bounced or failed message again, by the
    # payload `retry_payload` gives
    retries_by_id: ClassVar[bool] = False
    # the provider calls `/webhooks/<name>` with its reports (`receive` reads them)
    takes_webhooks: ClassVar[bool] = False

    # -- what the producer side reads (no client, no secret) ----------------------------

    @classmethod
    def serves(cls, channel: str) -> bool:
        return channel in cls.channels

    @classmethod
    def batch_limit(cls, settings: Settings) -> tuple[int, str]:
        """Recipients one call takes, and the variable that sets it."""
        return int(getattr(settings, cls.batch_size_setting)), f"HUDHUD_{cls.batch_size_setting.upper()}"

    @classmethod
    def rate_limit(cls, settings: Settings) -> float:
        return float(getattr(settings, cls.rate_limit_setting, 0.0) or 0.0) if cls.rate_limit_setting else 0.0

    @classmethod
    def default_sender(cls, channel: str, settings: Settings) -> tuple[str | None, str]:
        """The configured sender of `channel` (sender name, caller id, from address) and the
        variable that holds it."""
        return None, f"{cls.name.upper()}_SENDER"

    @classmethod
    def unsupported_fields(cls, channel: str) -> frozenset[str]:
        """Fields of a send on `channel` this provider cannot carry (refused before recording)."""
        return frozenset()

    @classmethod
    def retry_payload(cls, provider_message_id: str) -> dict[str, Any]:
        """The payload of a new message that asks the provider to send again the one it
        knows as `provider_message_id` (where `retries_by_id`)."""
        raise NotImplementedError(f"{cls.name} does not retry a message by its id")

    @classmethod
    def from_settings(cls, settings: Settings, pool_size: int | None = None) -> Self:
        raise NotImplementedError

    # -- delivery -----------------------------------------------------------------------

    def deliver(self, channel: str, message_id: str, payload: Mapping[str, Any]) -> SendResult:
        """Hand one recorded message (its checked payload) to the provider: one call."""
        raise NotImplementedError

    def deliver_batch(self, channel: str, message_id: str, payload: Mapping[str, Any]) -> SendResult:
        """A campaign batch; by default one call to the whole recipient list."""
        return self.deliver(channel, message_id, payload)

    def follow(self, channel: str, payload: Mapping[str, Any]) -> Follow:
        """How a message sent on `channel` is followed after the hand-over."""
        return Follow.NONE

    # -- the account --------------------------------------------------------------------

    def outage(self) -> str | None:
        """What the provider's status page reports down (None: nothing, or no such page).
        Raises a ProviderError when the page cannot be read."""
        return None

    def balance(self) -> Balance | None:
        """The account's balance, where the provider has one."""
        return None

    def probe(self) -> Probe:
        """Can the account send now? Raises a ProviderError when it cannot be asked."""
        seen = self.balance()
        outage = self.outage()
        return Probe(outage is None, outage, None if seen is None else Decimal(seen.balance))

    def check(self, settings: Settings, report: CheckReport) -> None:
        """`hudhud check`'s facts of this provider, added to `report`."""
        report.facts.update(self.probe_facts(report))

    def probe_facts(self, report: CheckReport) -> Facts:
        from hudhud.worker.providers.errors import AccountError, ProviderError

        try:
            probe = self.probe()
        except AccountError as exc:
            what = self.secret_variable or "the credentials"
            report.problems.append(f"{self.name}: {what} refused ({exc.describe()})")
            return {"reachable": True, "credentials": f"refused ({exc.describe()})"}
        except ProviderError as exc:
            report.problems.append(f"{self.name}: unreachable: {exc.describe()}")
            return {"error": exc.describe()}
        status = "operational" if probe.outage is None else f"outage: {probe.outage}"
        return {"reachable": True, "credentials": "valid", "status": status}

    # -- after the hand-over ------------------------------------------------------------

    def reconcilable(self, payload: Mapping[str, Any]) -> bool:
        """Whether the provider can be asked what it holds of this payload's send."""
        return False

    def reconcile(self, message_id: str) -> dict[str, str] | None:
        """What the provider holds of an in-doubt send: recipient -> provider id (empty:
        none of it). None: it cannot tell. Raises a ProviderError when it cannot be asked now."""
        return None

    def follow_up(self, tracker: Tracker, now: float) -> int:
        """Beat's tracking run: record what the provider reported since the last run (final
        statuses, events); the number of messages finished."""
        return 0

    @classmethod
    def receive(cls, inbound: Inbound, tracker: Tracker, settings: Settings, now: float) -> InboundAnswer:
        """A webhook call to `/webhooks/<name>` (where `takes_webhooks`): check that it comes
        from the provider, record what it reports through `tracker` (the same writes as
        `follow_up`'s), then answer. Raising leaves the call unanswered with a 2xx, so the
        provider sends it again."""
        return InboundAnswer(404, {"error": {"field": "provider", "message": "takes no webhooks"}})

    def close(self) -> None:
        """Release the client's connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
