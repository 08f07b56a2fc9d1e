"""The small HTTP base under every provider client.

It owns the `requests.Session` (one connection pool sized to the worker's concurrency),
the (connect, read) timeouts, the User-Agent, JSON decoding (a provider passes its own
decoder when its bodies need it) and the SHORT retries of transient faults. It knows no
provider: the name it is given only labels its log lines and errors. It answers with a
`Reply` for every HTTP answer, whatever its status: mapping statuses and bodies to the
error hierarchy is the provider module's job. Faults without a usable HTTP answer (no
connection, timeouts, a reply cut short) become `RetryableError` (or `InDoubtError`) here,
and a malformed base URL a `ConfigurationError`.

Retry policy
------------
Reads (`safe=True`: GET, and POSTs without side effects such as Taifa's validate) are
retried on any connection error, any timeout, any 5xx and 429.

Sends (`safe=False`: anything that may deliver, delete or change state) are retried only
where the provider cannot have acted on the request:

- connection faults that happened before the request was sent (DNS, refused, connect
  timeout);
- 429, 503 and 502: the front answered "not now" (503, 429) or could not reach the
  application at all (502, a proxy page);

and never after a read timeout, a connection dropped after sending, a 500 or a 504: those
may follow an accepted send whose reply was lost, and resending could deliver the message
twice. They surface as `InDoubtError` (a `RetryableError`), so the caller can reconcile
before trying again. `retry_sends_on_read_timeout=True` trades that safety for fewer
in-doubt sends (read timeouts and 504 are then retried too).

A 429 is retried inside the call only when its Retry-After is short (`max_inline_wait`);
a longer one is handed back at once. 4xx are never retried. Waits are short, exponential
and jittered (`backoff` doubles from its start value up to `max_backoff`).

Nothing here logs or raises a URL query, a header or a body: those carry tokens,
recipients and message text.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import requests
import urllib3.exceptions
from prometheus_client import Histogram
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.providers.decoding import decode_body, page_summary, parse_retry_after, plain
from hudhud.worker.providers.errors import InDoubtError, RetryableError
from hudhud.worker.redaction import Redactor

__all__ = ["HttpClient", "Redactor", "Reply", "decode_body", "page_summary", "parse_retry_after", "plain"]

log = logging.getLogger(__name__)

READ_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SEND_RETRY_STATUSES = frozenset({429, 502, 503})
IN_DOUBT_STATUSES = frozenset({500, 504})
DEFAULT_POOL_SIZE = 10
# Each HTTP call to a provider, in this process: `call` is the method and the path with its
# ids replaced (`POST /v1/messages`), `outcome` ok, 4xx, 429, 5xx, timeout or connection.
REQUEST_SECONDS = Histogram(
    "hudhud_provider_request_duration_seconds",
    "Seconds each HTTP call to a provider took, by provider, call and outcome",
    ["provider", "call", "outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def user_agent() -> str:
    """`hudhud/<version>`, from the installed package when there is one."""
    try:
        version = metadata.version("hudhud")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"hudhud/{version}"


# --- the HTTP base -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers, decoded body (None when not JSON) and its text."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    data: Any = field(repr=False)
    text: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def summary(self) -> str:
        """Short words for a body that is not JSON."""
        return page_summary(self.text) or "empty reply"


def _body_text(response: requests.Response) -> str:
    """The body as text: the declared charset, else UTF-8 (never a guess)."""
    declared = "charset=" in response.headers.get("Content-Type", "").lower()
    encoding = (response.encoding if declared else None) or "utf-8"
    try:
        return response.content.decode(encoding, errors="replace")
    except LookupError:
        return response.content.decode("utf-8", errors="replace")


class _RetryableReply(Exception):
    """An HTTP answer the retry policy may try again; carries the answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)
_TRANSPORT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_PRE_SEND = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.NameResolutionError,
)


def failed_before_sending(exc: BaseException) -> bool:
    """True when a requests fault happened before any byte of the request left."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ProxyError | requests.exceptions.SSLError):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, _PRE_SEND):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            cause = reason
            continue
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = nested or cause.__cause__ or cause.__context__
    return False


def call_name(path: str) -> str:
    """A path with its ids replaced by `{id}`: `/v1/emails/8f3a.../retry` -> `/v1/emails/{id}/retry`."""
    parts = path.split("?", 1)[0].split("/")
    return "/".join("{id}" if _is_id(part) else part for part in parts) or "/"


def _is_id(segment: str) -> bool:
    return segment.isdigit() or (len(segment) >= 8 and any(c.isdigit() for c in segment))


def _status_outcome(status: int) -> str:
    return "ok" if status < 400 else "429" if status == 429 else f"{status // 100}xx"


def _fault_outcome(exc: requests.RequestException) -> str:
    return "timeout" if isinstance(exc, requests.Timeout) else "connection"


class HttpClient:
    """A session for one provider: pool, timeouts, User-Agent, decoding, short retries."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        token: str | None = None,
        base_url_variable: str = "",
        decode: Callable[[str], Any] = decode_body,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        retries: int = 2,
        pool_size: int = DEFAULT_POOL_SIZE,
        retry_sends_on_read_timeout: bool = False,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_inline_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.retry_sends_on_read_timeout = retry_sends_on_read_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_inline_wait = max_inline_wait
        self.base_url_variable = base_url_variable or f"{provider.upper()}_BASE_URL"
        self.decode = decode
        self.redact = Redactor((token,) if token else ())
        self._token = token
        self._sleep = sleep
        self.session = self._new_session(max(1, pool_size))

    def __repr__(self) -> str:
        return f"HttpClient({self.provider!r}, {self.base_url!r})"

    def _new_session(self, pool_size: int) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=False, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": user_agent(), "Accept": "application/json"})
        # The environment's proxies and CA bundle are read once, here, not on every request
        # (requests' per-request lookup costs about a twentieth of a worker's CPU).
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
        return session

    def close(self) -> None:
        self.session.close()

    # -- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        auth: bool = True,
    ) -> Reply:
        """One call with the short retry policy; every HTTP answer comes back as a `Reply`.

        The first attempt runs on its own; only a failed one sets up tenacity, which takes
        that failure as its first attempt (its wait, log line and count stay the same)."""
        call = functools.partial(
            self._attempt, method, path, safe=safe, params=params, json_body=json_body, auth=auth
        )
        try:
            return call()
        except (_RetryableReply, *_TRANSPORT, *_BAD_URL) as exc:
            failures: list[BaseException] = [exc]

        def again() -> Reply:
            if failures:
                raise failures.pop()
            return call()

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: self._should_retry(exc, safe=safe)),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return again()
        except _RetryableReply as answered:
            return answered.reply
        except (*_TRANSPORT, *_BAD_URL) as exc:
            raise self._transport_error(exc, safe=safe) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        params: Mapping[str, Any] | None,
        json_body: Any,
        auth: bool,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {self._token}"} if auth and self._token else {}
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                json=json_body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=True,
            )
            text = _body_text(response)
        except requests.RequestException as exc:
            self._time(method, path, _fault_outcome(exc), started)
            raise
        self._time(method, path, _status_outcome(response.status_code), started)
        reply = Reply(
            status=response.status_code,
            headers=CaseInsensitiveDict(response.headers),
            data=self.decode(text),
            text=text,
        )
        log.debug(
            "%s %s %s -> %d in %.3fs", self.provider, method, path, reply.status, time.monotonic() - started
        )
        if self._retryable_status(reply, safe=safe):
            raise _RetryableReply(reply)
        return reply

    def _time(self, method: str, path: str, outcome: str, started: float) -> None:
        call = f"{method} {call_name(path)}"
        REQUEST_SECONDS.labels(self.provider, call, outcome).observe(time.monotonic() - started)

    # -- policy ----------------------------------------------------------------------

    def _retryable_status(self, reply: Reply, *, safe: bool) -> bool:
        statuses = READ_RETRY_STATUSES if safe or self.retry_sends_on_read_timeout else SEND_RETRY_STATUSES
        return reply.status in statuses

    def _should_retry(self, exc: BaseException, *, safe: bool) -> bool:
        if isinstance(exc, _RetryableReply):
            wait = exc.reply.retry_after
            return wait is None or wait <= self.max_inline_wait
        if not isinstance(exc, _TRANSPORT):
            return False
        if failed_before_sending(exc):
            return True
        return safe or self.retry_sends_on_read_timeout

    def _wait(self, state: RetryCallState) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, _RetryableReply) and failure.reply.retry_after is not None:
            wait = max(wait, failure.reply.retry_after)
        return wait

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        reason = (
            f"HTTP {failure.reply.status}" if isinstance(failure, _RetryableReply) else type(failure).__name__
        )
        log.info(
            "%s %s %s: %s, retry %d of %d",
            self.provider,
            method,
            path,
            reason,
            state.attempt_number,
            self.retries,
        )

    def _transport_error(
        self, exc: requests.RequestException, *, safe: bool
    ) -> RetryableError | ConfigurationError:
        fault = type(exc).__name__
        if isinstance(exc, _BAD_URL):
            return ConfigurationError(self.base_url_variable, fault)
        if failed_before_sending(exc):
            return RetryableError(self.provider, f"could not connect ({fault})", sent_nothing=True)
        if safe:
            return RetryableError(self.provider, f"no usable reply ({fault})")
        return InDoubtError(
            self.provider, f"no usable reply after the request was sent ({fault}); it may have been accepted"
        )


def status_retry_error(
    provider: str, reply: Reply, words: str, *, safe: bool, **details: Any
) -> RetryableError:
    """The retryable error of a 5xx/429 answer: in doubt for a send answered 500/504; a
    429, 502 or 503 proves nothing was sent."""
    if not safe and reply.status in IN_DOUBT_STATUSES:
        return InDoubtError(
            provider, words, retry_after=reply.retry_after, http_status=reply.status, **details
        )
    return RetryableError(
        provider,
        words,
        retry_after=reply.retry_after,
        http_status=reply.status,
        sent_nothing=reply.status in SEND_RETRY_STATUSES,
        **details,
    )


def unreadable_reply(provider: str, reply: Reply, *, safe: bool) -> RetryableError:
    """A 2xx whose body cannot be read: for a send, it may have been accepted."""
    kind = RetryableError if safe else InDoubtError
    return kind(provider, f"unreadable reply ({reply.summary()})", http_status=reply.status)
