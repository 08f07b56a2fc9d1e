"""API keys: `Authorization: Bearer <key>` with a key of `HUDHUD_API_KEYS` (`name:key,...`).

A presented key is compared with every configured one (their SHA-256 digests, so every
comparison takes the same time whatever the lengths), without stopping at a match: how long
the check takes says nothing about which key, or how much of one, was right. Keys are never
logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError

log = logging.getLogger("hudhud.api")
VARIABLE = "HUDHUD_API_KEYS"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description=f"a key of {VARIABLE}: `Authorization: Bearer <key>`",
)


class Unauthorized(Exception):
    """No key, or not one of the configured keys."""


@dataclass(frozen=True)
class Keys:
    """The configured keys, as (name, digest of the key) pairs."""

    entries: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        text = settings.api_keys.get_secret_value() if settings.api_keys else ""
        entries = []
        for number, item in enumerate(filter(None, (part.strip() for part in text.split(","))), 1):
            name, colon, key = item.partition(":")
            if not colon or not name.strip() or not key.strip():
                raise ConfigurationError(VARIABLE, f"entry {number} is not name:key")
            entries.append((name.strip(), _digest(key.strip())))
        if not entries:
            log.warning("%s is not set: the HTTP API refuses every call with 401", VARIABLE)
        return cls(tuple(entries))

    def match(self, presented: str) -> str | None:
        """The name of the key `presented` is, or None."""
        digest = _digest(presented)
        matched = None
        for name, expected in self.entries:
            if hmac.compare_digest(digest, expected):
                matched = name
        return matched


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


async def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> str:
    """The route's dependency: the name of the caller's key, else `Unauthorized`."""
    keys: Keys = request.app.state.api_keys
    name = keys.match(credentials.credentials) if credentials else None
    if name is None:
        raise Unauthorized()
    return name


async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "field": "authorization",
                "message": "needs a valid API key: Authorization: Bearer <key>",
            }
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
