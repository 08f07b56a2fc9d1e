"""`hudhud check`'s facts of a Taqnyat account: status page, balance, senders."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from hudhud.worker.providers.base import CheckReport
from hudhud.worker.providers.errors import AccountError, ProviderError
from hudhud.worker.providers.taqnyat.codes import PROVIDER

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.providers.taqnyat.client import TaqnyatClient


def check(client: TaqnyatClient, settings: Settings, report: CheckReport) -> None:
    """Reachable, status (an outage is a problem), balance (empty: a problem; low: a
    warning), senders (a default sender the account lacks: a problem)."""
    facts = report.facts
    try:
        status = client.system_status()
        facts.update(
            reachable=True, status="operational" if status.operational else f"outage: {status.description}"
        )
        if not status.operational:
            report.problems.append(f"{PROVIDER}: outage reported ({status.description})")
    except ProviderError as exc:
        facts["status"] = f"unknown ({exc.describe()})"
    try:
        _balance_and_senders(client, settings, report)
    except AccountError as exc:
        facts.update(reachable=True, credentials=f"refused ({exc.describe()})")
        report.problems.append(f"{PROVIDER}: TAQNYAT_TOKEN refused ({exc.describe()})")
    except ProviderError as exc:
        facts["error"] = exc.describe()
        report.problems.append(f"{PROVIDER}: {'' if facts['reachable'] else 'unreachable: '}{exc.describe()}")


def _balance_and_senders(client: TaqnyatClient, settings: Settings, report: CheckReport) -> None:
    facts = report.facts
    balance = client.balance()
    shown = f"{balance.balance} {balance.currency or ''}".strip()
    facts.update(reachable=True, credentials="valid", balance=shown)
    amount = Decimal(balance.balance)
    if amount <= 0:
        report.problems.append(f"{PROVIDER}: the balance is {shown}: every send is refused")
    elif amount <= Decimal(str(settings.low_balance)):
        report.warnings.append(
            f"{PROVIDER}: the balance {shown} is at or below HUDHUD_LOW_BALANCE ({settings.low_balance:g})"
        )
    names = [s.name for s in client.senders()]
    facts["senders"] = ", ".join(names) or "(none)"
    if settings.taqnyat_sender and settings.taqnyat_sender not in names:
        report.problems.append(
            f"{PROVIDER}: TAQNYAT_SENDER {settings.taqnyat_sender} is not a sender of the account"
        )
