"""Taifa's client: sending, scheduled emails, reading and searching, the updates feed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hudhud.worker.producer import validation
from hudhud.worker.providers import results
from hudhud.worker.providers.base import Follow, Inbound, InboundAnswer, Probe, reconcile_tag
from hudhud.worker.providers.client import ProviderClient
from hudhud.worker.providers.http import unreadable_reply
from hudhud.worker.providers.taifa import sending, tracking, webhooks
from hudhud.worker.providers.taifa.failures import PROVIDER, refused_batch, refused_send, taifa_failure
from hudhud.worker.providers.taifa.replies import (
    parse_batch,
    parse_email,
    parse_events,
    parse_page,
    parse_send,
    parse_status,
    parse_updates,
    parse_validation,
)
from hudhud.worker.providers.taifa.requests import (
    MAX_PAGE_LIMIT,
    Address,
    batch_payload,
    email_id,
    email_payload,
    page_params,
)

EmailPage = results.Page[results.TaifaEmail]

if TYPE_CHECKING:
    from hudhud.config import Settings
    from hudhud.worker.ledger.tracking import Tracker


class TaifaClient(ProviderClient):
    """Taifa Mail's REST API. Checks input before any request.

    Taifa reports each email's fate later (events, a feed of status changes) and can be
    asked what it holds of a send whose reply was lost (every email carries its message's
    tag); it retries a bounced email by its id."""

    name = PROVIDER
    channels = frozenset({"email"})
    base_url_setting = "taifa_base_url"
    secret_setting = "taifa_api_key"
    secret_variable = "TAIFA_API_KEY"
    batch_size_setting = "taifa_batch_size"
    rate_limit_setting = "rate_limit_taifa"
    one_per_recipient = True
    tracks_delivery = True
    retries_by_id = True
    takes_webhooks = True

    @classmethod
    def default_sender(cls, channel: str, settings: Settings) -> tuple[str | None, str]:
        return settings.taifa_from, "TAIFA_FROM"

    @classmethod
    def retry_payload(cls, provider_message_id: str) -> dict[str, Any]:
        return {sending.RETRY_OF: provider_message_id}

    # -- the provider interface ------------------------------------------------------

    def deliver(self, channel: str, message_id: str, payload: Mapping[str, Any]) -> results.SendResult:
        return sending.deliver(self, message_id, payload)

    def follow(self, channel: str, payload: Mapping[str, Any]) -> Follow:
        return Follow.RECIPIENTS if payload.get("each") else Follow.MESSAGE

    def probe(self) -> Probe:
        self.list(limit=1)  # the cheapest call that proves the key and the account
        return Probe(can_send=True)

    def reconcilable(self, payload: Mapping[str, Any]) -> bool:
        return sending.RETRY_OF not in payload  # a retry is Taifa's own new email

    def reconcile(self, message_id: str) -> dict[str, str]:
        return self.find_by_tag(reconcile_tag(message_id))

    def follow_up(self, tracker: Tracker, now: float) -> int:
        return tracking.follow_up(self, tracker, now)

    @classmethod
    def receive(cls, inbound: Inbound, tracker: Tracker, settings: Settings, now: float) -> InboundAnswer:
        return webhooks.receive(inbound, tracker, settings, now)

    # -- sending ---------------------------------------------------------------------

    def send(
        self, from_: Address, to: Address | Iterable[Address], subject: str, **fields: Any
    ) -> results.SendResult:
        """POST /emails/. Answers Taifa's status: queued, scheduled, or rejected (with reason).

        Addresses are "a@b.c" strings or {"email", "name"} objects; `fields` are those of
        `email_payload` (html, text, cc, bcc, reply_to, headers, tags, send_at, attachments).
        `send_at` must be between 1 minute and 30 days ahead; at least one of `html` and
        `text` is required.
        """
        payload = email_payload(from_, to, subject, **fields)
        return self._accepted(parse_send(self._call("POST", "/emails/", safe=False, json_body=payload)))

    def validate(
        self, from_: Address, to: Address | Iterable[Address], subject: str, **fields: Any
    ) -> results.Validation:
        """POST /emails/validate: a dry run of `send` with the same arguments."""
        payload = email_payload(from_, to, subject, **fields)
        return parse_validation(self._call("POST", "/emails/validate", safe=True, json_body=payload))

    def batch_send(self, messages: Iterable[Mapping[str, Any]]) -> results.BatchResult:
        """POST /emails/batch. An item Taifa refuses comes back with status "failed"."""
        payload = batch_payload(messages)
        result = parse_batch(self._call("POST", "/emails/batch", safe=False, json_body=payload))
        refusal = refused_batch(result, self.http.redact)
        if refusal is not None:
            raise refusal
        return result

    def retry(self, id: str) -> results.SendResult:
        """POST /emails/{id}/retry: a new email for a bounced, rejected or failed one."""
        return self._accepted(parse_send(self._call("POST", f"/emails/{email_id(id)}/retry", safe=False)))

    # -- scheduled -------------------------------------------------------------------

    def scheduled(self, page: int = 0, limit: int = 20) -> EmailPage:
        """GET /emails/scheduled."""
        params = page_params(page, limit)
        data = self._call("GET", "/emails/scheduled", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    def cancel_scheduled(self, id: str) -> results.EmailStatus:
        """DELETE /emails/scheduled/{id}."""
        data = self._call("DELETE", f"/emails/scheduled/{email_id(id)}", safe=False)
        return parse_status(data)

    def send_now(self, id: str) -> results.EmailStatus:
        """POST /emails/scheduled/{id}/send-now."""
        data = self._call("POST", f"/emails/scheduled/{email_id(id)}/send-now", safe=False)
        return parse_status(data)

    # -- reading ---------------------------------------------------------------------

    def get(self, id: str) -> results.TaifaEmail:
        """GET /emails/{id}: the email with its bodies, headers and events."""
        return parse_email(self._call("GET", f"/emails/{email_id(id)}", safe=True))

    def events(self, id: str) -> tuple[results.TaifaEvent, ...]:
        """GET /emails/{id}/events, oldest first as Taifa gives them."""
        return parse_events(self._call("GET", f"/emails/{email_id(id)}/events", safe=True))

    def search(
        self,
        q: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        page: int = 0,
        limit: int = 20,
    ) -> EmailPage:
        """GET /emails/search; `q` takes tokens like `to:`, `from:`, `status:`, `tag:`."""
        params: dict[str, Any] = page_params(page, limit)
        for name, value in (("q", q), ("status", status), ("tag", tag)):
            if value is not None:
                params[name] = validation.text(value, name, max_len=500, single_line=True, allow_empty=True)
        data = self._call("GET", "/emails/search", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    def find_by_tag(self, tag: str, *, pages: int = 20) -> dict[str, str]:
        """What Taifa holds of a send whose reply was lost: recipient address (lower case)
        -> email id, for every email carrying `tag`. Raises a ProviderError when Taifa
        cannot be asked now; an empty answer means Taifa has none of them."""
        found: dict[str, str] = {}
        for page in range(pages):
            result = self.search(tag=tag, page=page, limit=MAX_PAGE_LIMIT)
            for item in result.items:
                if item.status in ("rejected", "failed", "error", "cancelled"):
                    continue
                for address in item.to_addresses or ("",):
                    found.setdefault(address.strip().lower(), item.id)
            if not result.has_more:
                break
        return found

    def updates(self, since: datetime | str) -> results.Updates:
        """GET /emails/updates?since=...: status changes since then (50 at most, oldest
        first); call again with `next_since` to read on."""
        if isinstance(since, datetime):
            since_text = validation.instant(since, "since").isoformat().replace("+00:00", "Z")
        else:
            validation.instant(since, "since")
            since_text = since.strip()
        data = self._call("GET", "/emails/updates", safe=True, params={"since": since_text})
        return parse_updates(data)

    def list(self, status: str | None = None, page: int = 0, limit: int = 20) -> EmailPage:
        """GET /emails/, newest first."""
        params: dict[str, Any] = page_params(page, limit)
        if status is not None:
            params["status"] = validation.text(status, "status", max_len=50, single_line=True)
        data = self._call("GET", "/emails/", safe=True, params=params)
        return parse_page(data, parse_email, page=page, limit=limit)

    # -- plumbing --------------------------------------------------------------------

    def _accepted(self, result: results.SendResult) -> results.SendResult:
        """The result of a single send, raised instead when refused for an account reason."""
        refusal = refused_send(result, self.http.redact)
        if refusal is not None:
            raise refusal
        return result

    def _call(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        reply = self.http.request(method, path, safe=safe, json_body=json_body, params=params)
        failure = taifa_failure(reply, safe=safe, redact=self.http.redact)
        if failure is not None:
            raise failure
        if reply.data is None:
            raise unreadable_reply(PROVIDER, reply, safe=safe)
        return reply.data
