"""The one error hierarchy of provider calls, decided in the provider modules.

- `RetryableError`: timeouts, connection errors, 5xx, 429 (with `retry_after` seconds).
  Its subclass `InDoubtError` marks a send that reached the provider without a usable
  reply (read timeout, dropped connection, 500/504): it may have been accepted.
- `BalanceError`: the account has no balance (Taqnyat codes 2 and 3).
- `AccountError`: credentials, API access or IP refused (101, 102, 104, 401, 403).
- `PermanentError`: the provider refused this message's input (14-17, 400, 404, 409, 413, 422).

`str()` of each shows the provider's own words, never a token or a recipient.
Configuration errors (`hudhud.worker.errors.ConfigurationError`) stand outside this tree.
"""

from __future__ import annotations

from typing import Any


class ProviderError(Exception):
    """A provider call that did not succeed."""

    kind = "provider"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        http_status: int | None = None,
        code: str | int | None = None,
        field: str | None = None,
        raw: Any = None,
    ) -> None:
        self.provider = provider
        self.message = message
        self.http_status = http_status
        self.code = None if code is None else str(code)
        self.field = field
        self.raw = raw
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = [f"{self.provider}"]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        head = " ".join(parts)
        where = f" (field {self.field})" if self.field else ""
        return f"{head}: {self.message}{where}"


class RetryableError(ProviderError):
    """A transient fault: try again later, after `retry_after` seconds when the provider says.

    `sent_nothing` is true when the fault proves the provider did not act on the request
    (a 429, a 503 or 502 from its front, a connection that never opened): such a try does
    not spend the message's retry budget."""

    kind = "retryable"
    in_doubt = False

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        retry_after: float | None = None,
        sent_nothing: bool = False,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        self.sent_nothing = sent_nothing
        super().__init__(provider, message, **kwargs)


class InDoubtError(RetryableError):
    """A send reached the provider but no usable reply came back: it may have been accepted.

    Retrying it may duplicate the message; reconcile with the provider where it can be asked.
    """

    in_doubt = True


class BalanceError(ProviderError):
    """The account's balance is spent: the account, not the message, is at fault."""

    kind = "balance"


class AccountError(ProviderError):
    """Credentials, API access or IP refused: hold messages, alert, do not hammer."""

    kind = "account"


class PermanentError(ProviderError):
    """The provider refused this message: it fails, with the provider's own words."""

    kind = "permanent"
