"""The Standard Webhooks headers of a callback: `webhook-id` (the same on every try),
`webhook-timestamp` and `webhook-signature` (both of this try), signed with
`HUDHUD_CALLBACK_SECRET`."""

from __future__ import annotations

import binascii
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError

SECRET = "HUDHUD_CALLBACK_SECRET"
PREFIX = "whsec_"


class Signer:
    def __init__(self, secret: str) -> None:
        if not secret.startswith(PREFIX):
            raise ConfigurationError(SECRET, f"a secret starting with {PREFIX} (then base64)")
        try:
            self._webhook = Webhook(secret)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(SECRET, f"{PREFIX} must be followed by base64") from exc
        except Exception as exc:  # the package's own error for an empty secret
            raise ConfigurationError(SECRET, f"{PREFIX} must be followed by base64") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        secret = settings.callback_secret.get_secret_value() if settings.callback_secret else ""
        if not secret:
            raise ConfigurationError(SECRET)
        return cls(secret)

    def headers(self, webhook_id: str, body: str, now: float) -> dict[str, str]:
        moment = datetime.fromtimestamp(int(now), UTC)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": self._webhook.sign(webhook_id, moment, body),
        }
