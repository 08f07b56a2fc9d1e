"""Settings read once from the environment (and a `.env` file) with pydantic-settings.

Every variable of the public contract is here, under its contract name. Values that are
only needed by some commands (tokens, sender names) may be absent; `Settings.require`
fails with a message naming the missing variable when a command needs one.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from hudhud.worker.errors import ConfigurationError


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """hudhud's configuration. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=(".env", ".hudhud/dev.env"),
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- the contract ---------------------------------------------------------------
    redis_url: str = Field("redis://localhost:6379/0", validation_alias=_env("HUDHUD_REDIS_URL"))
    taqnyat_base_url: str = Field("https://api.taqnyat.sa", validation_alias=_env("TAQNYAT_BASE_URL"))
    taqnyat_token: SecretStr | None = Field(None, validation_alias=_env("TAQNYAT_TOKEN"))
    taqnyat_sender: str | None = Field(None, validation_alias=_env("TAQNYAT_SENDER"))
    taqnyat_caller_id: str | None = Field(None, validation_alias=_env("TAQNYAT_CALLER_ID"))
    taifa_base_url: str = Field("https://govconnect.ke/v1", validation_alias=_env("TAIFA_BASE_URL"))
    taifa_api_key: SecretStr | None = Field(None, validation_alias=_env("TAIFA_API_KEY"))
    # modules that register providers of their own, imported before the names below are checked
    providers_extra: str = Field("", validation_alias=_env("HUDHUD_PROVIDERS_EXTRA"))
    email_provider: str = Field("taifa", validation_alias=_env("HUDHUD_EMAIL_PROVIDER"))
    sms_provider: str = Field("taqnyat", validation_alias=_env("HUDHUD_SMS_PROVIDER"))
    voice_provider: str = Field("taqnyat", validation_alias=_env("HUDHUD_VOICE_PROVIDER"))
    visibility_timeout: int = Field(60, ge=10, validation_alias=_env("HUDHUD_VISIBILITY_TIMEOUT"))

    # --- delivery -------------------------------------------------------------------
    taqnyat_email_from: str | None = Field(None, validation_alias=_env("TAQNYAT_EMAIL_FROM"))
    taifa_from: str | None = Field(None, validation_alias=_env("TAIFA_FROM"))
    max_attempts: int = Field(8, ge=1, validation_alias=_env("HUDHUD_MAX_ATTEMPTS"))
    backoff_base: float = Field(2.0, gt=0, validation_alias=_env("HUDHUD_BACKOFF_BASE"))
    backoff_cap: float = Field(600.0, gt=0, validation_alias=_env("HUDHUD_BACKOFF_CAP"))
    eta_window: int = Field(60, ge=1, validation_alias=_env("HUDHUD_ETA_WINDOW"))
    lease_seconds: int = Field(120, ge=5, validation_alias=_env("HUDHUD_LEASE_SECONDS"))
    requeue_after: int = Field(300, ge=5, validation_alias=_env("HUDHUD_REQUEUE_AFTER"))
    retention_days: float = Field(30.0, gt=0, validation_alias=_env("HUDHUD_RETENTION_DAYS"))
    idempotency_ttl: int = Field(86400, ge=86400, validation_alias=_env("HUDHUD_IDEMPOTENCY_TTL"))
    tracking_days: float = Field(7.0, gt=0, validation_alias=_env("HUDHUD_TRACKING_DAYS"))
    rate_limit_taqnyat: float = Field(0.0, ge=0, validation_alias=_env("HUDHUD_RATE_LIMIT_TAQNYAT"))
    rate_limit_taifa: float = Field(0.0, ge=0, validation_alias=_env("HUDHUD_RATE_LIMIT_TAIFA"))
    low_balance: float = Field(10.0, ge=0, validation_alias=_env("HUDHUD_LOW_BALANCE"))
    sms_batch_size: int = Field(1000, ge=1, validation_alias=_env("HUDHUD_SMS_BATCH_SIZE"))
    taifa_batch_size: int = Field(100, ge=1, validation_alias=_env("HUDHUD_TAIFA_BATCH_SIZE"))
    # A send whose reply was lost: resends of a message its provider cannot be asked about,
    # and what becomes of a campaign batch in that case (hold: an operator decides).
    in_doubt_resends: int = Field(1, ge=0, validation_alias=_env("HUDHUD_IN_DOUBT_RESENDS"))
    in_doubt_batches: Literal["hold", "resend", "sent"] = Field(
        "hold", validation_alias=_env("HUDHUD_IN_DOUBT_BATCHES")
    )
    balance_wait: float = Field(3600.0, gt=0, validation_alias=_env("HUDHUD_BALANCE_WAIT"))
    redis_patience: float = Field(3600.0, gt=0, validation_alias=_env("HUDHUD_REDIS_PATIENCE"))
    data_key: SecretStr | None = Field(None, validation_alias=_env("HUDHUD_DATA_KEY"))

    # --- redis (pool, safety) --------------------------------------------------------
    # Connections of a process's Redis client (0: twice the concurrency, at least 64); a
    # caller waits up to the timeout for a free one instead of failing at once.
    redis_pool_size: int = Field(0, ge=0, validation_alias=_env("HUDHUD_REDIS_POOL_SIZE"))
    redis_pool_timeout: float = Field(20.0, gt=0, validation_alias=_env("HUDHUD_REDIS_POOL_TIMEOUT"))
    # Workers and beat refuse a Redis whose maxmemory-policy evicts keys, unless this is set.
    allow_eviction: bool = Field(False, validation_alias=_env("HUDHUD_ALLOW_EVICTION"))

    # --- the change stream ------------------------------------------------------------
    # Entries kept (about: trimmed with MAXLEN ~); a consumer's unacknowledged entries are
    # taken over after `claim_after` idle seconds; one tried that often is dead-lettered.
    changes_maxlen: int = Field(100000, gt=0, validation_alias=_env("HUDHUD_CHANGES_MAXLEN"))
    changes_claim_after: float = Field(60.0, gt=0, validation_alias=_env("HUDHUD_CHANGES_CLAIM_AFTER"))
    changes_max_deliveries: int = Field(5, ge=1, validation_alias=_env("HUDHUD_CHANGES_MAX_DELIVERIES"))

    # --- the HTTP API, status callbacks, provider webhooks -------------------------------
    api_keys: SecretStr | None = Field(None, validation_alias=_env("HUDHUD_API_KEYS"))
    # 24 MiB of attachments is 32 MiB of base64 inside the JSON: room for that and the rest
    api_max_body: int = Field(34 * 1024 * 1024, ge=1024, validation_alias=_env("HUDHUD_API_MAX_BODY"))
    callback_url: str | None = Field(None, validation_alias=_env("HUDHUD_CALLBACK_URL"))
    callback_secret: SecretStr | None = Field(None, validation_alias=_env("HUDHUD_CALLBACK_SECRET"))
    callback_hosts: str = Field("", validation_alias=_env("HUDHUD_CALLBACK_HOSTS"))
    callback_timeout: float = Field(15.0, gt=0, validation_alias=_env("HUDHUD_CALLBACK_TIMEOUT"))
    # Seconds before each try of a callback, comma-separated: the first counted from the
    # change, each other one from the failed try before it; after the last, it is given up.
    callback_schedule: str = Field(
        "0,5,300,1800,7200,18000,36000,36000", validation_alias=_env("HUDHUD_CALLBACK_SCHEDULE")
    )
    taifa_webhook_secret: SecretStr | None = Field(None, validation_alias=_env("TAIFA_WEBHOOK_SECRET"))
    taqnyat_dlr_passphrase: SecretStr | None = Field(None, validation_alias=_env("TAQNYAT_DLR_PASSPHRASE"))

    # --- lanes, expiry, suppression, failover -------------------------------------------
    # The share of each provider's rate limit the bulk lane leaves to transactional sends.
    transactional_share: float = Field(0.2, ge=0, lt=1, validation_alias=_env("HUDHUD_TRANSACTIONAL_SHARE"))
    # Default lifetime (seconds from the due time) of a message that names none; 0: none.
    ttl_transactional: float = Field(0.0, ge=0, validation_alias=_env("HUDHUD_TTL_TRANSACTIONAL"))
    ttl_bulk: float = Field(0.0, ge=0, validation_alias=_env("HUDHUD_TTL_BULK"))
    # What puts an address on the suppression list by itself: `bounce` (a hard bounce),
    # `complaint`; comma-separated, "" for neither.
    suppress_on: str = Field("bounce,complaint", validation_alias=_env("HUDHUD_SUPPRESS_ON"))
    # Email failover between the email providers when both are configured.
    email_failover: bool = Field(True, validation_alias=_env("HUDHUD_EMAIL_FAILOVER"))
    failover_window: float = Field(300.0, gt=0, validation_alias=_env("HUDHUD_FAILOVER_WINDOW"))
    failover_share: float = Field(0.5, gt=0, le=1, validation_alias=_env("HUDHUD_FAILOVER_SHARE"))
    failover_min_calls: int = Field(20, ge=1, validation_alias=_env("HUDHUD_FAILOVER_MIN_CALLS"))

    # --- HTTP -----------------------------------------------------------------------
    http_connect_timeout: float = Field(5.0, gt=0, validation_alias=_env("HUDHUD_HTTP_CONNECT_TIMEOUT"))
    http_read_timeout: float = Field(20.0, gt=0, validation_alias=_env("HUDHUD_HTTP_READ_TIMEOUT"))
    http_retries: int = Field(2, ge=0, validation_alias=_env("HUDHUD_HTTP_RETRIES"))
    http_pool_size: int = Field(0, ge=0, validation_alias=_env("HUDHUD_HTTP_POOL_SIZE"))

    # --- beat intervals (seconds) ----------------------------------------------------
    release_interval: float = Field(5.0, gt=0, validation_alias=_env("HUDHUD_RELEASE_INTERVAL"))
    status_interval: float = Field(30.0, gt=0, validation_alias=_env("HUDHUD_STATUS_INTERVAL"))
    balance_interval: float = Field(60.0, gt=0, validation_alias=_env("HUDHUD_BALANCE_INTERVAL"))
    events_interval: float = Field(15.0, gt=0, validation_alias=_env("HUDHUD_EVENTS_INTERVAL"))
    recover_interval: float = Field(15.0, gt=0, validation_alias=_env("HUDHUD_RECOVER_INTERVAL"))
    probe_interval: float = Field(10.0, gt=0, validation_alias=_env("HUDHUD_PROBE_INTERVAL"))

    # --- worker ---------------------------------------------------------------------
    prefetch_multiplier: int = Field(4, ge=1, validation_alias=_env("HUDHUD_PREFETCH_MULTIPLIER"))
    eta_task_limit: int = Field(1000, ge=1, validation_alias=_env("HUDHUD_ETA_TASK_LIMIT"))
    # Task events cost a fifth of a worker's CPU; Flower turns them on while it watches.
    task_events: bool = Field(False, validation_alias=_env("HUDHUD_TASK_EVENTS"))
    flower_basic_auth: SecretStr | None = Field(None, validation_alias=_env("FLOWER_BASIC_AUTH"))
    # Where each worker serves its Prometheus metrics (`/metrics`); port 0: not served.
    metrics_host: str = Field("127.0.0.1", validation_alias=_env("HUDHUD_METRICS_HOST"))
    metrics_port: int = Field(9031, ge=0, le=65535, validation_alias=_env("HUDHUD_METRICS_PORT"))

    @field_validator("taqnyat_base_url", "taifa_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("email_provider", "sms_provider", "voice_provider")
    @classmethod
    def _registered_provider(cls, value: str, info: ValidationInfo) -> str:
        from hudhud.worker.providers import registry

        registry.load_extra(str(info.data.get("providers_extra") or ""))
        allowed = registry.serving(info.field_name.removesuffix("_provider") if info.field_name else "")
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a URL starting with redis://, rediss:// or unix://")
        return value

    def require(self, field: str) -> str:
        """The value of a setting a command needs, or a ConfigurationError naming its variable."""
        value = getattr(self, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or value == "":
            raise ConfigurationError(_VARIABLES.get(field, field.upper()))
        return str(value)


_VARIABLES = {
    "taqnyat_token": "TAQNYAT_TOKEN",
    "taqnyat_sender": "TAQNYAT_SENDER",
    "taqnyat_caller_id": "TAQNYAT_CALLER_ID",
    "taifa_api_key": "TAIFA_API_KEY",
    "taifa_from": "TAIFA_FROM",
    "taqnyat_email_from": "TAQNYAT_EMAIL_FROM",
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first.get("loc") else "configuration"
        raise ConfigurationError(name, detail=_invalid(name, first)) from None


def _field_of(variable: str) -> FieldInfo | None:
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and variable in {str(c).upper() for c in alias.choices}:
            return field
    return None


def _allowed(field: FieldInfo, error: Mapping[str, Any]) -> str:
    """What the setting takes, from its type and bounds (the validator's words otherwise)."""
    kind = field.annotation
    bounds = [
        f"{words} {getattr(rule, attr):g}"
        for rule in field.metadata
        for attr, words in (("ge", "at least"), ("gt", "above"), ("le", "at most"), ("lt", "below"))
        if getattr(rule, attr, None) is not None
    ]
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(kind))
    if kind is bool:
        return "1 or 0 (true/false, yes/no, on/off)"
    if kind is int:
        return ", ".join(["a whole number", *bounds])
    if kind is float:
        return ", ".join(["a number", *bounds])
    return str(error.get("msg", "")).removeprefix("Value error, ")


def _invalid(variable: str, error: Mapping[str, Any]) -> str:
    """`'<value>' given; allowed: <what>`, the value masked for a secret (and a URL's password)."""
    field = _field_of(variable)
    if field is None:
        return str(error.get("msg", "invalid"))
    secret = SecretStr in (field.annotation, *get_args(field.annotation))
    given = "its value is secret and not shown" if secret else f"{_shown(error.get('input'))!r} given"
    return f"{given}; allowed: {_allowed(field, error)}"


def _shown(value: object) -> str:
    from hudhud.worker.redaction import mask_url

    text = str(value)
    return mask_url(text) if "://" in text else text[:200]


def reset_settings() -> None:
    """Forget the cached settings (tests and `hudhud dev` change the environment)."""
    get_settings.cache_clear()
