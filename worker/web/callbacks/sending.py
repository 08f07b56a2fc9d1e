"""One try of a callback over HTTP, and the word for what it got: `2xx`, `410` (the endpoint
is gone), `3xx`/`4xx`/`5xx` (redirects are not followed), `timeout` or `connection`."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

import requests
import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH

DELIVERED = "2xx"
GONE = "410"


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


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json", "User-Agent": user_agent()}


def post(session: requests.Session, url: str, body: str, headers: dict[str, str], timeout: float) -> Try:
    try:
        answer = session.post(
            url,
            data=body.encode("utf-8"),
            headers=_headers(headers),
            timeout=timeout,
            allow_redirects=False,
            stream=True,  # the answer's body is never read
        )
    except requests.Timeout:
        return Try("timeout")
    except requests.RequestException:
        return Try("connection")
    answer.close()
    return Try(word(answer.status_code), answer.status_code)


def post_to(address: str, url: str, body: str, headers: dict[str, str], timeout: float) -> Try:
    """One try at `url` over a connection to `address` (the one its name was checked to
    resolve to), TLS still verified for the URL's own host name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    named = f"[{host}]" if ":" in host else host
    options = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False}
    pool: urllib3.HTTPConnectionPool = (
        urllib3.HTTPSConnectionPool(
            address,
            port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=DEFAULT_CA_BUNDLE_PATH,
            **options,  # type: ignore[arg-type]
        )
        if secure
        else urllib3.HTTPConnectionPool(address, port, **options)  # type: ignore[arg-type]
    )
    sent = {**_headers(headers), "Host": named + (f":{parts.port}" if parts.port else "")}
    try:
        answer = pool.urlopen(
            "POST", target, body=body.encode("utf-8"), headers=sent, redirect=False, preload_content=False
        )
        answer.release_conn()
        return Try(word(answer.status), answer.status)
    except urllib3.exceptions.TimeoutError:
        return Try("timeout")
    except urllib3.exceptions.HTTPError:
        return Try("connection")
    finally:
        pool.close()
