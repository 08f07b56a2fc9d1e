"""The sandbox's knobs: names, defaults and the checks applied when they change."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PLANS: dict[str, int] = {"free": 0, "starter": 25, "pro": 50, "business": 100}
DEFAULT_BALANCE = Decimal("2044.000")
# How a numbered Taqnyat SMS error is answered: `{"statusCode":400,"message":"2","reason":...}`,
# the words alone `{"statusCode":400,"message":"Your balance is 0"}`, or `{"message":"2","reason":...}`.
SMS_ERROR_SHAPES = ("code", "words", "reason")
# Taqnyat's delivery reports (`taqnyat_reports`): posted to `dlr_url` ("" for none) as JSON or
# form fields, each recipient delivered, failed, or alternately (mixed), after `dlr_delay_ms`.
DLR_FORMATS = ("json", "form")
DLR_STATUSES = ("delivered", "failed", "mixed")
# Whose paths the per-request faults hit: "" every provider's, else only that provider's.
FAULT_PROVIDERS = ("", "taifa", "taqnyat")


class KnobError(ValueError):
    """A knob patch names an unknown knob or carries a value of the wrong kind."""

    def __init__(self, message: str, unknown: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.unknown = unknown or []


@dataclass
class Knobs:
    """Behaviour switches; `balance` is kept by the state, not here."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate_5xx: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    fault_after_accept: float = 0.0
    fault_provider: str = ""
    outage: bool = False
    outage_description: str = "Scheduled maintenance: SMS, email and voice are paused"
    price_sms: float = 0.026
    price_email: float = 0.010
    price_voice: float = 0.216
    cost_as_string: bool = False
    form_fail_http_status: int = 400
    plan: str = "business"
    progress_seconds: float = 1.0
    send_limit: int | None = None
    api_disabled: bool = False
    sms_error_shape: str = "code"
    dlr_url: str = ""
    dlr_passphrase: str = ""
    dlr_format: str = "json"
    dlr_status: str = "delivered"
    dlr_delay_ms: float = 300.0
    webhook_time_scale: float = 1.0  # Taifa's webhook retry waits (1 min ... 8 h) times this

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def copy(self) -> Knobs:
        return dataclasses.replace(self)

    @property
    def faulty(self) -> bool:
        """True when any per-request fault or delay is switched on."""
        return bool(
            self.latency_ms
            or self.latency_jitter_ms
            or self.error_rate_5xx
            or self.timeout_rate
            or self.rate_429
            or self.fault_after_accept
        )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnobError(f"knob {name} must be a number")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise KnobError(f"knob {name} must not be negative")
    return number


def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise KnobError(f"knob {name} must be between 0 and 1")
    return number


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise KnobError(f"knob {name} must be true or false")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise KnobError(f"knob {name} must be a string")
    return value


def _http_status(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 599:
        raise KnobError(f"knob {name} must be an HTTP status between 200 and 599")
    return value


def _plan(name: str, value: Any) -> str:
    if value not in PLANS:
        raise KnobError(f"knob {name} must be one of {', '.join(PLANS)}")
    return str(value)


def _sms_error_shape(name: str, value: Any) -> str:
    if value not in SMS_ERROR_SHAPES:
        raise KnobError(f"knob {name} must be one of {', '.join(SMS_ERROR_SHAPES)}")
    return str(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise KnobError(f"knob {name} must be one of {', '.join(choices)}")
        return str(value)

    return check


def _fault_provider(name: str, value: Any) -> str:
    if value not in FAULT_PROVIDERS:
        raise KnobError(f'knob {name} must be taifa, taqnyat, or "" for every provider')
    return str(value)


def _url(name: str, value: Any) -> str:
    if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
        raise KnobError(f"knob {name} must be an http(s) URL, or empty for none")
    return value


def _limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KnobError(f"knob {name} must be a whole number >= 0, or null for no limit")
    return value


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative,
    "latency_jitter_ms": _non_negative,
    "error_rate_5xx": _rate,
    "timeout_rate": _rate,
    "timeout_seconds": _non_negative,
    "rate_429": _rate,
    "retry_after": _non_negative,
    "fault_after_accept": _rate,
    "fault_provider": _fault_provider,
    "outage": _flag,
    "outage_description": _text,
    "price_sms": _non_negative,
    "price_email": _non_negative,
    "price_voice": _non_negative,
    "cost_as_string": _flag,
    "form_fail_http_status": _http_status,
    "plan": _plan,
    "progress_seconds": _non_negative,
    "send_limit": _limit,
    "api_disabled": _flag,
    "sms_error_shape": _sms_error_shape,
    "dlr_url": _url,
    "dlr_passphrase": _text,
    "dlr_format": _one_of(DLR_FORMATS),
    "dlr_status": _one_of(DLR_STATUSES),
    "dlr_delay_ms": _non_negative,
    "webhook_time_scale": _non_negative,
}
KNOB_NAMES: tuple[str, ...] = (*_CHECKS, "balance")


def parse_amount(value: Any) -> Decimal:
    """An amount given as a number or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise KnobError("an amount must be a number or a decimal string")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise KnobError(f"amount {value!r} is not a number") from None
    if not amount.is_finite():
        raise KnobError("an amount must be finite")
    return amount


def parse_balance(value: Any) -> Decimal:
    """A balance given as a number or a decimal string, never negative."""
    amount = parse_amount(value)
    if amount < 0:
        raise KnobError("balance must not be negative")
    return amount


def check_patch(values: Mapping[str, Any]) -> dict[str, Any]:
    """Checked values of a patch (balance as a Decimal); raises KnobError on any problem."""
    unknown = sorted(name for name in values if name not in KNOB_NAMES)
    if unknown:
        raise KnobError(f"unknown knob(s): {', '.join(unknown)}", unknown)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        checked[name] = parse_balance(value) if name == "balance" else _CHECKS[name](name, value)
    return checked


def apply_patch(knobs: Knobs, checked: Mapping[str, Any]) -> None:
    """Set already checked values (without `balance`) on `knobs`."""
    for name, value in checked.items():
        if name != "balance":
            setattr(knobs, name, value)
