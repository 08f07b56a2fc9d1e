"""Where a status callback may go.

A send's own `callback_url` must name a host of `HUDHUD_CALLBACK_HOSTS` (none listed: no
per-message URL is taken). An entry is a host (`hooks.example.com`) or every host under a
domain (`*.example.com`). A host may resolve to a loopback, private or link-local address
only when it is listed by its own name: a name matched by a wildcard, or any name the list
does not hold, must resolve to public addresses, so that a message cannot aim hudhud's
callbacks at the machine it runs on or at the network behind it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from hudhud.config.settings import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.producer import validation as v


@dataclass(frozen=True)
class Hosts:
    exact: frozenset[str]
    domains: tuple[str, ...]  # ".example.com" for "*.example.com"

    @classmethod
    def of(cls, settings: Settings) -> Hosts:
        exact: set[str] = set()
        domains: list[str] = []
        for entry in settings.callback_hosts.split(","):
            name = entry.strip().lower().rstrip(".")
            if name.startswith("*."):
                domains.append(name[1:])
            elif name:
                exact.add(name)
        return cls(frozenset(exact), tuple(domains))

    def allows(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.exact or any(name.endswith(d) and len(name) > len(d) for d in self.domains)

    def trusts_inside(self, host: str) -> bool:
        """Whether `host` may resolve to a loopback, private or link-local address."""
        return host.lower().rstrip(".") in self.exact


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def callback_url(value: object, field: str, settings: Settings) -> str:
    """A send's own callback URL, checked against `HUDHUD_CALLBACK_HOSTS` (not resolved here:
    the address is checked when each callback is made, since a name can change its address)."""
    url = v.url(value, field)
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise InvalidInput(field, "must not carry a user name or password")
    hosts = Hosts.of(settings)
    if not hosts.exact and not hosts.domains:
        raise InvalidInput(field, "is not accepted: HUDHUD_CALLBACK_HOSTS lists no host")
    if not hosts.allows(host_of(url)):
        raise InvalidInput(field, "names a host that HUDHUD_CALLBACK_HOSTS does not list")
    return url


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address in its last 32 bits
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # a network's own translator: never public
COMPATIBLE = ipaddress.ip_network("::/96")  # the deprecated IPv4-compatible form (and :: and ::1)


class TooSlow(Exception):
    """A host name did not resolve before the deadline."""


def wrapped(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo, NAT64, IPv4-compatible)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in NAT64 or ip in COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not ip.is_global or ip.is_multicast


def inside(address: str) -> bool:
    """Whether an IP address is loopback, private, link-local or otherwise not public, also
    when it is an IPv6 address that carries such an IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _not_public(ip)
    if ip.ipv4_mapped is not None:
        return _not_public(ip.ipv4_mapped)
    if ip in NAT64_LOCAL:
        return True
    judged: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip, *wrapped(ip)]
    return any(_not_public(each) for each in judged)


def _lookup(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def addresses(host: str, port: int, *, deadline: float | None = None) -> list[str]:
    """Every address `host` resolves to (an IP literal: itself). With a `deadline`
    (`time.monotonic()` seconds), the name is resolved in a thread of its own, since the
    system's resolver takes no time limit: TooSlow when it has not answered by then."""
    if deadline is None:
        return _lookup(host, port)
    answer: list[list[str] | BaseException] = []

    def resolve() -> None:
        try:
            answer.append(_lookup(host, port))
        except BaseException as exc:  # handed to the caller
            answer.append(exc)

    worker = threading.Thread(target=resolve, name="callback-resolve", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not answer:
        raise TooSlow("the host name did not resolve in time")
    found = answer[0]
    if isinstance(found, BaseException):
        raise found
    return found


@dataclass(frozen=True)
class Verdict:
    """Whether a callback may go to a URL now: `refusal` says why not; `address`, when set,
    is the checked address the call must connect to (so that the name cannot resolve
    elsewhere between the check and the call)."""

    refusal: str | None = None
    address: str | None = None


def judge(url: str, settings: Settings, *, listed_only: bool, deadline: float | None = None) -> Verdict:
    """May a callback go to `url` now? `listed_only`: a send's own URL, whose host must still
    be listed; the operator's `HUDHUD_CALLBACK_URL` is trusted. TooSlow when the host does not
    resolve by `deadline` (see `addresses`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    hosts = Hosts.of(settings)
    if listed_only and not hosts.allows(host):
        return Verdict("its host is no longer listed in HUDHUD_CALLBACK_HOSTS")
    if not listed_only or hosts.trusts_inside(host):
        return Verdict()
    try:
        found = addresses(host, parts.port or (443 if parts.scheme == "https" else 80), deadline=deadline)
    except (OSError, UnicodeError):
        return Verdict("its host does not resolve")
    if not found or any(inside(a) for a in found):
        return Verdict("its host resolves to a loopback, private or link-local address")
    return Verdict(address=found[0])


def reachable_safely(url: str, settings: Settings, *, listed_only: bool) -> str | None:
    """Why a callback must not go to `url` now (None: it may); see `judge`."""
    return judge(url, settings, listed_only=listed_only).refusal


def shown(url: str) -> str:
    """`url` as logs and reports show it: its scheme, host and port; a path, query or user
    part (which may carry a token) only hinted at."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme or '?'}://{host}{port}{rest}"


def origin(url: str) -> str:
    """The endpoint a URL names, as `scheme://host:port` (the port always written), without
    its path, query or user part."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme.lower()}://{host}:{port}"
