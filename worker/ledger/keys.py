"""Every Redis key hudhud uses, built here and nowhere else.

Per message (`{id}` is the message id; a campaign batch is a message too):
- `m:{id}` hash: the record (status, attempts, payload, provider ids, cost, error, ...)
- `e:{id}` list: JSON events `{type, at, ...}` (status history and provider events)
- `rs:{id}` hash: a campaign batch's per-recipient final outcomes (recipient -> JSON)
- `r:{campaign}` hash: a campaign's recipients (recipient index -> number)
Indexes and shared state:
- `idem:{key}` string: `{id}|{request hash}`, kept `HUDHUD_IDEMPOTENCY_TTL` seconds
- `scheduled` zset: parked messages by due time (scheduled sends and long back-offs)
- `queued` zset: messages that should have a task in the broker, by enqueue time
- `leases` zset: claimed messages by lease expiry
- `expiries` zset: messages given an expiry, by when they expire (beat ends those still
  waiting then; entries of messages that ended before are dropped at that time)
- `held:{provider}` zset: messages waiting while that provider is paused
- `pause:{provider}` string: JSON reason of a provider pause
- `tracking` zset: handed-over emails waiting for a final event
- `rate:{provider}` string: the global rate limiter's theoretical arrival time;
  `rate:{provider}:bulk` the bulk lane's own, at the rate the transactional share leaves it
- `suppressed` hash: the suppression list, keyed fingerprint of a number or address -> JSON
  `{reason, source, at}` (no plain number or address)
- `slow:{provider}` hash: until when that provider asked every caller to wait (Retry-After)
- `doubt` zset: messages whose hand-over is in doubt and that wait for an operator's decision
- `ended:failed`, `ended:expired` zsets: messages that ended so, by when they ended, for
  `hudhud redrive` (written by `change.lua`; entries past the retention trimmed there, and a
  message leaves once it is redriven)
- `short:{provider}` zset: messages the provider's balance cannot pay for, waiting for a top-up
- `gone` list: ids found in an index without their record (evicted or expired), for `check`
- `changes` stream: every status change, in order (the outbox); `changes:dead` its dead letters
- `{provider}:id:{provider id}` string: the message (and recipient) a provider's id belongs
  to, for a provider that reports delivery later
- `{provider}:updates-since` string: the cursor of a provider's feed of status changes
- `{provider}:delivery:{digest}` string: a webhook delivery id that provider's calls carried
  (its digest), kept a week: a delivery sent again changes nothing
- `lock:{name}` string: a beat job's lock (`lock:{provider}-events`: the tracking run)
- `data-key` string: the key of recipient fingerprints (never expires)
- `stats:messages`, `stats:recipients` hashes: status changes counted by `change.lua` as it
  appends them (`channel|provider|status` -> count; campaign recipients in the second);
  `stats:send` hash: the seconds from creation (or due time) to hand-over, as histogram
  buckets (`channel|provider|le`, `|sum`, `|count`); `stats:in-doubt` string: messages found in
  doubt; `balance:{provider}` hash: the provider's last balance read (`amount`, `currency`, `at`)
- `unreadable` list: queue items that were not broker messages, set aside
- `broker:idle`, `broker:write-probe`, `check:write-probe`: the transport's and check's own
- `reply:{key}` string: the HTTP API's answer to an `Idempotency-Key` (`{key}` its fingerprint):
  `p|…` while the first request is recorded, then `d|…` with the answer to replay
- `cb:d:{entry}` hash: the status callback of one change; `cb:q:{id}` zset: a message's
  pending callbacks in stream order; `cb:due` zset: each message with pending callbacks, by
  when its first is due; `cb:stats` hash: callback counters; `cb:disabled` hash: endpoints
  that answered 410 (`HUDHUD_CALLBACK_URL`, or the origin of a message's own URL);
  `cb:given-up` list: the last callbacks given up; `cb:dispatchers` zset: dispatchers seen
"""

from __future__ import annotations

PREFIX = "hudhud:"
NONE = PREFIX + "none"  # a placeholder for "no key" in a script's KEYS: never written

SCHEDULED = PREFIX + "scheduled"
QUEUED = PREFIX + "queued"
LEASES = PREFIX + "leases"
EXPIRIES = PREFIX + "expiries"
TRACKING = PREFIX + "tracking"
DOUBT = PREFIX + "doubt"
GONE = PREFIX + "gone"
CHANGES = PREFIX + "changes"
CHANGES_DEAD = PREFIX + "changes:dead"
DATA_KEY = PREFIX + "data-key"
SUPPRESSED = PREFIX + "suppressed"
UNREADABLE = PREFIX + "unreadable"
BROKER_IDLE = PREFIX + "broker:idle"
BROKER_WRITE_PROBE = PREFIX + "broker:write-probe"
CHECK_WRITE_PROBE = PREFIX + "check:write-probe"
CALLBACKS_DUE = PREFIX + "cb:due"
CALLBACKS_STATS = PREFIX + "cb:stats"
CALLBACKS_DISABLED = PREFIX + "cb:disabled"
CALLBACKS_GIVEN_UP = PREFIX + "cb:given-up"
CALLBACKS_DISPATCHERS = PREFIX + "cb:dispatchers"
STATS_MESSAGES = PREFIX + "stats:messages"  # `change.lua` builds the same three
STATS_RECIPIENTS = PREFIX + "stats:recipients"
STATS_SEND = PREFIX + "stats:send"
STATS_IN_DOUBT = PREFIX + "stats:in-doubt"


def msg_key(message_id: str) -> str:
    return f"{PREFIX}m:{message_id}"


def events_key(message_id: str) -> str:
    return f"{PREFIX}e:{message_id}"


def outcomes_key(batch: str) -> str:
    return f"{PREFIX}rs:{batch}"


def recipients_key(campaign_id: str) -> str:
    return f"{PREFIX}r:{campaign_id}"


def idem_key(key: str) -> str:
    return f"{PREFIX}idem:{key}"


def ended_key(status: str) -> str:
    """The index of messages that ended `failed` or `expired` (`change.lua` builds the same)."""
    return f"{PREFIX}ended:{status}"


def pause_key(provider: str) -> str:
    return f"{PREFIX}pause:{provider}"


def held_key(provider: str) -> str:
    return f"{PREFIX}held:{provider}"


def rate_key(provider: str) -> str:
    return f"{PREFIX}rate:{provider}"


def bulk_rate_key(provider: str) -> str:
    return f"{PREFIX}rate:{provider}:bulk"


def slow_key(provider: str) -> str:
    return f"{PREFIX}slow:{provider}"


def short_key(provider: str) -> str:
    return f"{PREFIX}short:{provider}"


def lock_key(name: str) -> str:
    return f"{PREFIX}lock:{name}"


def provider_id_key(provider: str, provider_id: str) -> str:
    return f"{PREFIX}{provider}:id:{provider_id}"


def feed_cursor_key(provider: str) -> str:
    return f"{PREFIX}{provider}:updates-since"


def delivery_key(provider: str, digest: str) -> str:
    return f"{PREFIX}{provider}:delivery:{digest}"


def delivery_body_key(provider: str, digest: str) -> str:
    return f"{PREFIX}{provider}:delivery-body:{digest}"


def follow_lock_key(provider: str) -> str:
    return lock_key(f"{provider}-events")


def callback_key(entry: str) -> str:
    return f"{PREFIX}cb:d:{entry}"


def callback_queue_key(message_id: str) -> str:
    return f"{PREFIX}cb:q:{message_id}"


def reply_key(fingerprint: str) -> str:
    return f"{PREFIX}reply:{fingerprint}"


def unkeyed(key: str) -> str:
    """The part of a key after the prefix (`hudhud:held:{provider}` -> `held:{provider}`)."""
    return key.removeprefix(PREFIX)


FAILOVER_STATS = f"{PREFIX}failover:stats"  # hash "from>to:reason" -> count of moves


def balance_key(provider: str) -> str:
    return f"{PREFIX}balance:{provider}"


def calls_key(provider: str, bucket: int) -> str:
    """A hash of one provider's call outcomes (`ok`, `failed`) in one bucket of time."""
    return f"{PREFIX}calls:{provider}:{bucket}"
