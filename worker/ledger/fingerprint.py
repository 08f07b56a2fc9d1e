"""Keyed fingerprints of numbers and addresses, so the ledger can hold "who" without the who.

A record keeps its recipients in plain form only while it may still be sent; once final,
what remains is a keyed hash (HMAC-SHA256) of each: enough to compare a request again and to
answer "was this number in that campaign?", useless to whoever reads Redis. A plain hash
would not do: phone numbers are few enough to hash them all.

The key is `HUDHUD_DATA_KEY` when set; otherwise one is made at random the first time and
kept in Redis (`hudhud:data-key`, without expiry: fingerprints made with it must stay
comparable), so every worker and producer of a deployment uses the same one.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable

import redis

DATA_KEY = "hudhud:data-key"
LENGTH = 32  # hex digits kept: 128 bits


def normalized(value: str) -> str:
    return value.strip().lower()


class Fingerprints:
    def __init__(self, client: redis.Redis, secret: str | None = None) -> None:
        self._client = client
        self._key: bytes | None = secret.encode() if secret else None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    stored = self._client.get(DATA_KEY)
                    if stored is None:
                        self._client.set(DATA_KEY, secrets.token_hex(32), nx=True)
                        stored = self._client.get(DATA_KEY)
                    if stored is None:
                        raise RuntimeError("the data key could not be kept in Redis")
                    self._key = stored if isinstance(stored, bytes) else str(stored).encode()
        return self._key

    def of(self, value: str) -> str:
        return hmac.digest(self.key(), normalized(value).encode(), "sha256").hex()[:LENGTH]

    def of_all(self, values: Iterable[str]) -> list[str]:
        key = self.key()
        return [hmac.digest(key, normalized(v).encode(), "sha256").hex()[:LENGTH] for v in values]
