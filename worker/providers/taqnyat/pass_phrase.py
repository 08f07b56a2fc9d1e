"""The pass phrase a call to `/webhooks/taqnyat` offers, found before its body is read.

At most one candidate is taken from each place it may come: the query, a header named like a
secret, `Authorization`, and the body's top-level fields (form fields, or a JSON object's
top-level keys, stepped over without parsing what they hold). Each is compared by its
SHA-256 digest in constant time, so neither its length nor its text shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

from hudhud.worker.providers.base import Inbound
from hudhud.worker.providers.taqnyat.body_scan import multipart_fields, top_fields
from hudhud.worker.providers.taqnyat.report_shapes import is_secret_name

MAX_PHRASES = 4  # one from each place a pass phrase may come
AUTH_SCHEMES = ("bearer", "token", "passphrase")
# A form field whose name holds a secret's word (or an escape that may spell one).
_SECRET_FIELD = re.compile(r"(?:^|&)([^=&]*(?:pass|secret|token|key|%)[^=&]*)=([^&]*)", re.IGNORECASE)


def matches(offered: list[str], phrase: str) -> bool:
    """Whether any offered pass phrase is the configured one."""
    expected = _digest(phrase)
    found = False
    for candidate in offered[:MAX_PHRASES]:
        found |= hmac.compare_digest(_digest(candidate), expected)
    return found


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def offered(inbound: Inbound) -> list[str]:
    """The candidates, in the order query, header, `Authorization`, body."""
    found = [
        _first(inbound.query.items()),
        _first((k, v) for k, v in inbound.headers.items() if k != "authorization"),
        _authorization(inbound.headers),
        _first(body_fields(inbound)),
    ]
    return [phrase for phrase in found if phrase is not None]


def _first(fields: Iterable[tuple[str, str]]) -> str | None:
    return next((value.strip() for name, value in fields if is_secret_name(name)), None)


def _authorization(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "").strip()
    if not auth:
        return None
    scheme, _, rest = auth.partition(" ")
    return rest.strip() if scheme.lower() in AUTH_SCHEMES else auth


def body_fields(inbound: Inbound) -> Iterable[tuple[str, str]]:
    """The body's top-level fields as text, read no further than needed."""
    raw = inbound.body
    content_type = inbound.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return multipart_fields(content_type, raw) or ()
    text = raw.decode("utf-8", "replace").strip()
    if text[:1] in ("{", "["):
        return top_fields(text)
    if "=" in text and not any(c.isspace() for c in text[:10_000]):
        return _form_pairs(text)
    return ()


def _form_pairs(text: str) -> Iterable[tuple[str, str]]:
    """The url-encoded fields whose names may be a secret's (the others are not decoded)."""
    for found in _SECRET_FIELD.finditer(text):
        yield unquote_plus(found.group(1)), unquote_plus(found.group(2))
