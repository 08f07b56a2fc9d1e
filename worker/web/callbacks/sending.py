"""One try of a callback over HTTP, and the word for what it got: `2xx`, `410` (the endpoint
is gone), `3xx`/`4xx`/`5xx` (redirects are not followed), `timeout` or `connection`.

A try has one deadline for all of it: resolving the name, connecting, TLS, sending, and the
answer's status line and headers (its body is never read). A socket's own timeout bounds
each read only, so an endpoint that answers a byte at a time would hold a try for as long as
it likes: at the deadline a watchdog shuts the connection down instead.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from urllib.parse import SplitResult, urlsplit

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from hudhud.worker.producer import targets

DELIVERED = "2xx"
GONE = "410"
TIMEOUT = "timeout"
CONNECTION = "connection"


def user_agent() -> str:
    try:
        return f"hudhud/{metadata.version('hudhud')}"
    except metadata.PackageNotFoundError:
        return "hudhud"


@dataclass(frozen=True)
class Try:
    got: str
    status: int | None = None


def word(status: int) -> str:
    return GONE if status == 410 else f"{status // 100}xx"


class TooLate(Exception):
    """The try's deadline passed."""


def left(deadline: float) -> float:
    """Seconds until `deadline` (`time.monotonic()` seconds); TooLate when none are left."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TooLate
    return remaining


class Watchdog:
    """Shuts a connection down at the deadline, which ends whatever read or write waits on it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.fired = False
        self.sock = sock
        self._over = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Watch `sock` instead (TLS takes the connection over from the plain socket)."""
        with self._lock:
            self.sock = sock

    def _fire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.fired = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def end(self) -> None:
        """The try is over: called before the socket is closed, so that the watchdog never
        shuts down a socket that took the closed one's number."""
        with self._lock:
            self._over = True
            self._timer.cancel()


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)


def _headers(headers: dict[str, str], parts: SplitResult) -> dict[str, str]:
    host = parts.hostname or ""
    named = f"[{host}]" if ":" in host else host
    return {
        **headers,
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
        "Host": named + (f":{parts.port}" if parts.port else ""),
    }


def _connect(found: list[str], port: int, deadline: float) -> socket.socket:
    """A connection to the first of `found` that takes one before the deadline."""
    failure: OSError = OSError("no address")
    for address in found:
        try:
            return socket.create_connection((address, port), timeout=left(deadline))
        except TimeoutError:
            raise
        except OSError as exc:
            failure = exc
    raise failure


def post(url: str, body: str, headers: dict[str, str], *, deadline: float, address: str | None = None) -> Try:
    """One try at `url`, over a connection to `address` when given (the one its name was
    checked to resolve to; TLS still verified for the URL's own host name), all of it over
    by `deadline` (`time.monotonic()` seconds)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    try:
        left(deadline)
        found = [address] if address else targets.addresses(host, port, deadline=deadline)
        raw = _connect(found, port, deadline)
    except (TooLate, targets.TooSlow, TimeoutError):
        return Try(TIMEOUT)
    except (OSError, UnicodeError):
        return Try(CONNECTION)
    watchdog = Watchdog(raw, deadline)
    connection = http.client.HTTPConnection(f"[{host}]" if ":" in host else host, port)
    try:
        connection.sock = _secured(watchdog, host) if secure else raw
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body.encode("utf-8"), headers=_headers(headers, parts))
        answer = connection.getresponse()  # the status line and headers; the body is not read
        return Try(word(answer.status), answer.status)
    except TimeoutError:
        return Try(TIMEOUT)
    except (OSError, http.client.HTTPException, ValueError):
        return Try(TIMEOUT if watchdog.fired else CONNECTION)
    finally:
        watchdog.end()
        connection.close()
        watchdog.sock.close()


def _secured(watchdog: Watchdog, host: str) -> ssl.SSLSocket:
    """TLS over the watched connection, its certificate checked for `host`; the handshake is
    watched too."""
    secured = _tls().wrap_socket(watchdog.sock, server_hostname=host, do_handshake_on_connect=False)
    watchdog.watch(secured)
    secured.do_handshake()
    return secured
