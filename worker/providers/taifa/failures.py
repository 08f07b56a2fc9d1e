"""Taifa's failures mapped to the error hierarchy, and 202 refusals for an account reason."""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

from hudhud.worker.providers.decoding import first_text, plain
from hudhud.worker.providers.errors import AccountError, BalanceError, PermanentError, ProviderError
from hudhud.worker.providers.http import Reply, status_retry_error
from hudhud.worker.providers.results import BatchResult, SendResult, mapping, text_or_none
from hudhud.worker.redaction import NO_SECRETS, Redactor, scrubbed

PROVIDER = "taifa"

# The request field behind an error code that names none.
CODE_FIELDS = {
    "invalid_attachment": "attachments",
    "payload_too_large": "attachments",
    "invalid_send_at": "send_at",
}
_RETRY_STATUSES = frozenset({408, 425, 429})
_ACCOUNT_STATUSES = frozenset({401, 403})
_PAYMENT_STATUSES = frozenset({402})
_LOC_ROOTS = frozenset({"body", "query", "path", "header"})
_ECHOING_KEYS = frozenset({"input", "ctx"})  # FastAPI echoes the offending value there

# --- mapping failures ----------------------------------------------------------------


def loc_field(loc: Any) -> str | None:
    """FastAPI's `["body", "to", 0, "email"]` as `to[0].email`."""
    if not isinstance(loc, list | tuple):
        return None
    parts = builtins.list(loc)
    if parts and parts[0] in _LOC_ROOTS:
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def read_detail(detail: Any) -> tuple[str | None, str | None, str | None]:
    """(code, words, field) of an error `detail`, whichever of its three shapes it has."""
    if isinstance(detail, str):
        return None, detail.strip() or None, None
    if isinstance(detail, Mapping):
        code = text_or_none(detail.get("code"))
        words = first_text(detail.get("message"), detail.get("msg"))
        field = loc_field(detail.get("loc")) or text_or_none(detail.get("field"))
        return code, words, field or CODE_FIELDS.get(code or "")
    if isinstance(detail, list) and detail:
        items = [mapping(item) for item in detail]
        fields = [loc_field(item.get("loc")) for item in items]
        texts = [first_text(item.get("msg"), item.get("message")) or "invalid" for item in items]
        if len(items) == 1:
            words = texts[0]
        else:
            words = "; ".join(f"{f}: {t}" if f else t for f, t in zip(fields, texts, strict=True))
        return text_or_none(items[0].get("type")), words, fields[0]
    return None, None, None


def without_echoes(value: Any) -> Any:
    """A reply without the values FastAPI echoes back (they may be recipients)."""
    return scrubbed(value, drop=_ECHOING_KEYS, redact=None)


_QUALIFIED_LIMIT = (
    r"(?:send|sending|daily|monthly|hourly|weekly|plan|account|usage|email|emails|message|messages)"
    r" (?:limit|quota)"
)
_BALANCE_WORDS = re.compile(
    r"\bpayment required\b|\bbilling\b|\bpayment (?:failed|overdue|past due|declined|missing)\b"
    r"|\b(?:insufficient|not enough|no|out of) (?:\w+ )?(?:credits?|balance|funds)\b"
    r"|\b(?:credits?|balance|funds)\b(?: \w+){0,2}? (?:exhausted|depleted|insufficient|too low|used up)\b"
    r"|\b(?:unpaid|overdue) (?:invoice|bill|balance)\b"
)
# A batch over the plan's size is this request's fault: split it, nothing to hold.
_BATCH_SIZE_WORDS = re.compile(r"\bbatch\b.*\b(?:larger|too large|too big|too many|size|over|exceeds?)\b")
_ACCOUNT_WORDS = re.compile(
    r"\b(?:invalid|incorrect|wrong|unknown|expired|revoked|missing|bad|no) (?:\w+ )?api ?keys?\b"
    r"|\bapi ?keys?\b(?: \w+){0,2}? (?:invalid|incorrect|wrong|expired|revoked|missing|disabled|not found)\b"
    r"|\b(?:unauthori[sz]ed|unauthenticated|not authenticated|forbidden|access denied|permission denied)\b"
    r"|\b(?:account|user|subscription|organi[sz]ation|workspace|domain|sender)\b(?: \w+){0,3}?"
    r" (?:is |has been |was )?(?:suspended|disabled|inactive|deactivated|blocked|banned|locked|closed"
    r"|terminated|frozen|expired|on hold)\b"
    r"|\b(?:suspended|disabled|inactive|deactivated|blocked|banned|locked|closed) (?:\w+ )?account\b"
    r"|\bquotas?\b(?: \w+){0,3}? (?:is |has been )?(?:reached|exceeded|exhausted|used up|hit)\b"
    r"|\b(?:over|exceeded|exceeds|reached|hit) (?:the |your |its )?(?:\w+ )?quotas?\b"
    rf"|\b{_QUALIFIED_LIMIT}\b(?: \w+){{0,4}}? (?:is |has been )?(?:reached|exceeded|exhausted|hit)\b"
    rf"|\b(?:over|exceeded|exceeds|reached|hit) (?:the |your |its )?(?:\w+ )?{_QUALIFIED_LIMIT}\b"
    r"|\blimit of (?:this|your|the) account\b"
    r"|\bplan feature\b|\bpaid plan\b|\bupgrade (?:your |the )?(?:\w+ )?plan\b"
    r"|\bnot (?:available|included|allowed|supported) (?:on|in|with) (?:the |your )?(?:\w+ )?plan\b"
    r"|\bplan (?:does not|doesn t) (?:allow|include|support)\b"
)


def plain_words(text: str) -> str:
    """Taifa's words or code for matching: `send_limit_reached` -> `send limit reached`."""
    return " ".join(re.sub(r"[\W_]+", " ", text[:500].casefold()).split())


def account_fault(code: str | None, words: str | None, status: int) -> type[ProviderError] | None:
    """BalanceError or AccountError when the status, the code or the words name a fault of
    the account (key, suspension, quota, plan, payment), whatever the status; else None."""
    said = plain_words(" ".join(part for part in (code, words) if part))
    if status in _PAYMENT_STATUSES or _BALANCE_WORDS.search(said):
        return BalanceError
    if status in _ACCOUNT_STATUSES:
        return AccountError
    if _BATCH_SIZE_WORDS.search(said):
        return None
    return AccountError if _ACCOUNT_WORDS.search(said) else None


def taifa_failure(reply: Reply, *, safe: bool = False, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a Taifa reply, or None for a 2xx."""
    if reply.ok:
        return None
    data = mapping(reply.data)
    code, words, field = read_detail(data.get("detail") if data else None)
    said = words or first_text(data.get("message"), data.get("error"))
    text = redact(said or _no_words(reply))
    raw = plain(without_echoes(reply.data))
    held = account_fault(code, said, reply.status)
    if held is not None:
        return held(PROVIDER, text, http_status=reply.status, code=code, raw=raw)
    if reply.status >= 500 or reply.status in _RETRY_STATUSES:
        return status_retry_error(PROVIDER, reply, text, safe=safe, code=code, raw=raw)
    return PermanentError(PROVIDER, text, http_status=reply.status, code=code, field=field, raw=raw)


def _no_words(reply: Reply) -> str:
    return reply.summary() if reply.data is None else f"HTTP {reply.status}"


def refused_send(result: SendResult, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a send answered 202 `rejected` for an account reason (a reached send
    limit, a suspended account): nothing was sent, and no other message would be either."""
    if result.status not in ("rejected", "failed"):
        return None
    held = account_fault(None, result.rejection_reason, 202)
    if held is None:
        return None
    words = redact(result.rejection_reason or result.status)
    return held(PROVIDER, words, raw=plain(without_echoes(result.raw)))


def refused_batch(result: BatchResult, redact: Redactor = NO_SECRETS) -> ProviderError | None:
    """The error of a batch of which Taifa accepted nothing, an item refused for an account
    reason among them: the whole batch can be held and sent again."""
    if not result.results or any(item.status not in ("rejected", "failed") for item in result.results):
        return None
    return next(filter(None, (refused_send(item, redact) for item in result.results)), None)
