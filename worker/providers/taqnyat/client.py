"""Taqnyat's client: SMS over REST, email (`mailSend.php`) and voice (`voiceSend.php`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hudhud.worker.producer import validation
from hudhud.worker.providers.base import CheckReport, Inbound, InboundAnswer
from hudhud.worker.providers.client import ProviderClient
from hudhud.worker.providers.http import Reply, unreadable_reply
from hudhud.worker.providers.results import Balance, Sender, SendResult, SystemStatus
from hudhud.worker.providers.taqnyat import account, replies, reports, salvage
from hudhud.worker.providers.taqnyat.codes import PROVIDER
from hudhud.worker.providers.taqnyat.failures import form_failure, rest_failure

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger.tracking import Tracker

SENDER_SETTINGS = {"sms": "taqnyat_sender", "voice": "taqnyat_caller_id", "email": "taqnyat_email_from"}
EMAIL_UNSUPPORTED = frozenset({"cc", "bcc", "reply_to", "headers", "attachments", "tags"})


class TaqnyatClient(ProviderClient):
    """Taqnyat's SMS, email and voice API. Checks input before any request.

    Taqnyat cannot be asked what became of a send (`sent` is final) nor what it holds of a
    send whose reply was lost; its delivery reports, where its portal is set to push them to
    `/webhooks/taqnyat`, still move a sent SMS on (`reports`). Beat watches its status page
    and balance."""

    name = PROVIDER
    channels = frozenset({"sms", "email", "voice"})
    base_url_setting = "taqnyat_base_url"
    secret_setting = "taqnyat_token"
    secret_variable = "TAQNYAT_TOKEN"
    batch_size_setting = "sms_batch_size"
    rate_limit_setting = "rate_limit_taqnyat"
    reports_outages = True
    keeps_balance = True
    takes_webhooks = True

    @staticmethod
    def decode(text: str) -> Any:
        return salvage.decode(text)

    @classmethod
    def default_sender(cls, channel: str, settings: Settings) -> tuple[str | None, str]:
        field = SENDER_SETTINGS[channel]
        return getattr(settings, field), field.upper()

    @classmethod
    def unsupported_fields(cls, channel: str) -> frozenset[str]:
        return EMAIL_UNSUPPORTED if channel == "email" else frozenset()

    def deliver(self, channel: str, message_id: str, payload: Mapping[str, Any]) -> SendResult:
        if channel == "sms":
            return self.send_sms(payload["to"], payload["body"], payload["sender"], sms_id=message_id)
        if channel == "voice":
            return self.send_voice(payload["to"], payload["audio_url"], payload["caller_id"])
        html = payload.get("html")
        return self.send_email(
            payload["to"],
            payload["subject"],
            html or payload.get("text", ""),
            sender_email=payload["from"],
            campaign_name=payload.get("campaign") or "hudhud",
            html=bool(html),
        )

    @classmethod
    def receive(cls, inbound: Inbound, tracker: Tracker, settings: Settings, now: float) -> InboundAnswer:
        return reports.receive(inbound, tracker, settings, now)

    def outage(self) -> str | None:
        status = self.system_status()
        return None if status.operational else status.description or ", ".join(status.services)

    def check(self, settings: Settings, report: CheckReport) -> None:
        account.check(self, settings, report)

    # -- SMS -------------------------------------------------------------------------

    def send_sms(
        self,
        recipients: Iterable[str],
        body: str,
        sender: str,
        *,
        scheduled_at: datetime | str | None = None,
        delete_id: str | None = None,
        sms_id: str | None = None,
    ) -> SendResult:
        """POST /v1/messages. A scheduled SMS is charged now and deletable by `delete_id`."""
        numbers = validation.recipients(recipients, "recipients", validation.msisdn)
        payload: dict[str, Any] = {
            "recipients": numbers,
            "body": validation.text(body, "body", max_len=validation.MAX_SMS_BODY),
            "sender": validation.sender_name(sender, "sender"),
        }
        if scheduled_at is not None:
            moment = validation.future_instant(scheduled_at, "scheduled_at")
            payload["scheduledDatetime"] = replies.schedule_text(moment)
        if delete_id is not None:
            payload["deleteId"] = _key(delete_id, "delete_id")
        if sms_id is not None:
            payload["smsId"] = _key(sms_id, "sms_id")
        reply = self.http.request("POST", "/v1/messages", safe=False, json_body=payload)
        self._raise_rest(reply, channel="sms", safe=False)
        if not isinstance(reply.data, Mapping):
            raise unreadable_reply(PROVIDER, reply, safe=False)
        return replies.parse_sms_sent(reply.data, numbers)

    def delete_scheduled_sms(self, delete_id: str) -> None:
        """DELETE /v1/messages/delete?deleteId=... : cancels (and refunds) a scheduled SMS."""
        key = _key(delete_id, "delete_id")
        reply = self.http.request("DELETE", "/v1/messages/delete", safe=False, params={"deleteId": key})
        self._raise_rest(reply, channel="sms", safe=False)

    # -- account ---------------------------------------------------------------------

    def balance(self) -> Balance:
        """GET /account/balance."""
        return replies.parse_balance(self._read("/account/balance"))

    def senders(self) -> tuple[Sender, ...]:
        """GET /v1/messages/senders (answered 200, sometimes 201)."""
        return replies.parse_senders(self._read("/v1/messages/senders"))

    def system_status(self) -> SystemStatus:
        """GET /system/status (no authentication)."""
        return replies.parse_system_status(self._read("/system/status", auth=False))

    # -- email and voice -------------------------------------------------------------

    def send_email(
        self,
        to: Iterable[str],
        subject: str,
        body: str,
        *,
        sender_email: str,
        campaign_name: str,
        html: bool = False,
    ) -> SendResult:
        """POST mailSend.php. `msg` carries text or HTML alike; `html` only states which."""
        addresses = validation.recipients(to, "to", validation.email)
        limit = validation.MAX_EMAIL_BODY
        payload = {
            "bearerTokens": self._secret,
            "campaignName": validation.text(campaign_name, "campaign_name", max_len=100, single_line=True),
            "subject": validation.text(subject, "subject", max_len=validation.MAX_SUBJECT, single_line=True),
            "from": validation.email(sender_email, "sender_email"),
            "to": addresses,
            "msg": validation.text(body, "body", max_len=limit),
        }
        return self._send_form("/mailSend.php", payload, channel="email", recipients=addresses)

    def send_voice(self, recipients: Iterable[str], audio_url: str, caller_id: str) -> SendResult:
        """POST voiceSend.php: plays `audio_url` (mp3/wav) to each recipient."""
        numbers = validation.recipients(recipients, "recipients", validation.msisdn)
        payload = {
            "bearerTokens": self._secret,
            "audioUrl": validation.url(audio_url, "audio_url"),
            "callerId": validation.msisdn(caller_id, "caller_id"),
            "recipients": numbers,
        }
        return self._send_form("/voiceSend.php", payload, channel="voice", recipients=numbers)

    # -- plumbing --------------------------------------------------------------------

    def _read(self, path: str, *, auth: bool = True) -> Mapping[str, Any]:
        reply = self.http.request("GET", path, safe=True, auth=auth)
        self._raise_rest(reply, channel="account", safe=True)
        if not isinstance(reply.data, Mapping):
            raise unreadable_reply(PROVIDER, reply, safe=True)
        return reply.data

    def _raise_rest(self, reply: Reply, *, channel: str, safe: bool) -> None:
        failure = rest_failure(reply, channel=channel, safe=safe, redact=self.http.redact)
        if failure is not None:
            raise failure

    def _send_form(
        self, path: str, payload: dict[str, Any], *, channel: str, recipients: list[str]
    ) -> SendResult:
        reply = self.http.request("POST", path, safe=False, json_body=payload)
        failure = form_failure(reply, channel=channel, safe=False, redact=self.http.redact)
        if failure is not None:
            raise failure
        return replies.parse_form_sent(reply.data, recipients)


def _key(value: Any, field: str) -> str:
    """A caller's own key (deleteId, smsId): short single-line text or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return validation.text(value, field, max_len=100, single_line=True).strip()
