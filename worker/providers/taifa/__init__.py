"""Taifa Mail (govconnect.ke/v1): a FastAPI-style REST API for email (seed 004).

What this package knows about Taifa's quirks:
- `POST /v1/emails/` needs its trailing slash (without it: a 307 to the slash path).
- Errors are `{"detail": {"code", "message"}}`, `{"detail": "..."}`, or FastAPI's 422
  `{"detail": [{"loc": ["body", "to", 0, "email"], "msg": "..."}]}` (`failures`).
- 403 means a plan feature gate or the send limit: the account is at fault, not the message.
  So do an invalid API key, a suspended account, a reached quota or plan limit and 402
  (payment required, taken as a spent balance) under any status, and a 202 `rejected` for
  such a reason: they hold messages, never end them.
- A 202 may still carry `status: "rejected"` (suppression list): that is an answer, not an error.
- Each email's fate comes later, through its events and the account's feed of changes
  (`tracking`); a lost reply is settled by the message's tag (`sending`).
"""

from hudhud.worker.providers.taifa.client import TaifaClient
from hudhud.worker.providers.taifa.failures import PROVIDER

__all__ = ["PROVIDER", "TaifaClient"]
