"""The HTTP API's answers to idempotency keys: one request per key is recorded, and whoever
sends that key again with the same request gets the first answer back.

A key is claimed before its request is recorded (`p|{token}|{fingerprint}`, held a while),
then holds the answer (`d|{fingerprint}|{status}|{body}`) for `HUDHUD_IDEMPOTENCY_TTL`
seconds; a request that did not succeed frees it. Both the key and the request are kept as
keyed fingerprints (`Ledger.keyed`): the store says nothing of who was sent what.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from hudhud.worker.ledger import Ledger, scripts
from hudhud.worker.ledger.keys import reply_key

PENDING = "p"
ANSWERED = "d"


class Found(StrEnum):
    CLAIMED = "claimed"  # this request holds the key: record it, then keep or free
    IN_FLIGHT = "in_flight"  # the first request with this key is still being recorded
    ANSWERED = "answered"  # the first request's answer, to give again
    OTHER_REQUEST = "other_request"  # the key was used for a different request


@dataclass(frozen=True)
class Claim:
    found: Found
    key: str = ""  # the reply's Redis key
    pending: str = ""  # the value this request claimed the key with
    status: int = 0  # the first answer's (ANSWERED)
    body: bytes = b""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _as_text(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class Replies:
    def __init__(self, ledger: Ledger, *, keep_seconds: int) -> None:
        self.ledger = ledger
        self.keep_seconds = keep_seconds
        client = ledger.redis
        self._claim = client.register_script(scripts.source("reply_claim"))
        self._settle = client.register_script(scripts.source("reply_settle"))

    def claim(self, idempotency_key: str, request_digest: str, *, hold: int) -> Claim:
        """Claim `idempotency_key` for the request whose digest is `request_digest` (a hash
        of what makes two requests the same), or say who holds it."""
        key = reply_key(self.ledger.keyed(_digest(idempotency_key)))
        fingerprint = self.ledger.keyed(request_digest)
        pending = f"{PENDING}|{secrets.token_hex(8)}|{fingerprint}"
        found = self._claim(keys=[key], args=[pending, hold])
        if found is None:
            return Claim(Found.CLAIMED, key, pending)
        kind, _, rest = _as_text(found).partition(b"|")
        if kind == PENDING.encode():
            held_for = rest.partition(b"|")[2].decode()
            same = held_for == fingerprint
            return Claim(Found.IN_FLIGHT if same else Found.OTHER_REQUEST)
        answered_for, _, rest = rest.partition(b"|")
        if answered_for.decode() != fingerprint:
            return Claim(Found.OTHER_REQUEST)
        status, _, body = rest.partition(b"|")
        return Claim(Found.ANSWERED, status=int(status), body=body)

    def keep(self, claim: Claim, status: int, body: bytes) -> bool:
        """Keep the answer of a claimed key, to give again; False if the claim had lapsed and
        another request holds the key now."""
        fingerprint = claim.pending.rpartition("|")[2]
        answer = b"|".join([ANSWERED.encode(), fingerprint.encode(), str(status).encode(), body])
        return bool(self._settle(keys=[claim.key], args=[claim.pending, answer, self.keep_seconds]))

    def free(self, claim: Claim) -> bool:
        """Let the key go (the request did not succeed), so the client can try it again."""
        return bool(self._settle(keys=[claim.key], args=[claim.pending, "", self.keep_seconds]))
