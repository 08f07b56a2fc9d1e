"""Taqnyat's successful replies read into hudhud's results."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from hudhud.worker.providers.decoding import plain
from hudhud.worker.providers.errors import PermanentError, RetryableError
from hudhud.worker.providers.results import (
    Balance,
    Sender,
    SendResult,
    SystemStatus,
    day_first_date,
    exact_id,
    list_like,
    mapping,
    money,
    text_or_none,
)
from hudhud.worker.providers.taqnyat.codes import ACCOUNT_CURRENCY, PROVIDER, RIYADH


def parse_sms_sent(data: Any, recipients: Iterable[str] = ()) -> SendResult:
    """`{"messageId":5452899970123,"cost":0.026,"accepted":"[966500000000,]",...}`."""
    body = mapping(data)
    rejected = list_like(body.get("rejected"))
    if "accepted" in body:
        accepted = list_like(body.get("accepted"))
    else:
        accepted = tuple(r for r in recipients if r not in rejected)
    if not accepted and rejected:
        raise PermanentError(
            PROVIDER, "every recipient was rejected", code=15, field="recipients", raw=plain(data)
        )
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("messageId")),
        status="sent",
        cost=money(body.get("cost")),
        currency=text_or_none(body.get("currency")) or ACCOUNT_CURRENCY,
        accepted=accepted,
        rejected=rejected,
        raw=plain(body),
    )


def parse_form_sent(data: Any, recipients: Iterable[str] = ()) -> SendResult:
    """A `ResponseStatus: success` reply of mailSend.php or voiceSend.php."""
    body = mapping(data)
    details = mapping(body.get("Data"))
    rejected = list_like(details.get("rejectedNumber"))
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("messageId")) or exact_id(details.get("msgId")),
        status="sent",
        cost=money(details.get("price")),
        # mailSend.php and voiceSend.php name no currency: Taqnyat's account is kept in SAR
        currency=text_or_none(details.get("currency") or body.get("currency")) or ACCOUNT_CURRENCY,
        accepted=tuple(r for r in recipients if r not in rejected),
        rejected=rejected,
        raw=plain(body),
    )


def parse_balance(data: Any) -> Balance:
    """`{"balance":"2044.000","currency":"SAR","accountExpiryDate":"23-08-2031",...}`."""
    body = mapping(data)
    amount = money(body.get("balance"))
    if amount is None:
        raise RetryableError(PROVIDER, "balance reply without a readable balance", raw=plain(data))
    return Balance(
        provider=PROVIDER,
        balance=amount,
        currency=text_or_none(body.get("currency")),
        account_status=text_or_none(body.get("accountStatus")),
        expires_on=day_first_date(body.get("accountExpiryDate")),
        points=money(body.get("points")),
        raw=plain(body),
    )


def parse_senders(data: Any) -> tuple[Sender, ...]:
    body = mapping(data)
    items = body.get("senders") if body else data
    senders = []
    for item in items if isinstance(items, list) else []:
        entry = mapping(item)
        name = text_or_none(entry.get("senderName") or entry.get("name"))
        if name:
            senders.append(
                Sender(name, text_or_none(entry.get("status")), text_or_none(entry.get("destination")))
            )
    return tuple(senders)


def parse_system_status(data: Any) -> SystemStatus:
    """`{"status":{"service":"none","description":"All Services are Operational"}}`."""
    body = mapping(data)
    status = mapping(body.get("status"))
    service = (text_or_none(status.get("service")) or "none").lower()
    services = () if service == "none" else tuple(s.strip() for s in service.split(",") if s.strip())
    return SystemStatus(
        operational=not services,
        services=services,
        description=text_or_none(status.get("description")),
        raw=plain(body),
    )


def schedule_text(moment: datetime) -> str:
    """`scheduledDatetime` in Riyadh time, to the minute, rounded up (never early)."""
    local = moment.astimezone(RIYADH)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return local.strftime("%Y-%m-%dT%H:%M") + "+03:00"
