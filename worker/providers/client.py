"""The base of a provider client over HTTP: its session, built from hudhud's settings.

A subclass names its provider, the settings of its base URL and secret, and may pass its
own body decoder; everything else it adds is the provider's own (`base.Provider`'s verbs).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from hudhud.worker.providers.base import Provider
from hudhud.worker.providers.decoding import decode_body
from hudhud.worker.providers.http import DEFAULT_POOL_SIZE, HttpClient


class ProviderClient(Provider):
    """A provider client with one HTTP base (pool, timeouts, short retries, redaction)."""

    base_url_setting: ClassVar[str] = ""
    secret_setting: ClassVar[str] = ""

    @staticmethod
    def decode(text: str) -> Any:
        """A body's JSON value (None when it is not JSON); a provider may read more."""
        return decode_body(text)

    @property
    def provider(self) -> str:
        return self.name

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        retries: int = 2,
        pool_size: int = DEFAULT_POOL_SIZE,
        retry_sends_on_read_timeout: bool = False,
    ) -> None:
        self._secret = secret
        self.http = HttpClient(
            self.name,
            base_url,
            token=secret,
            base_url_variable=self.base_url_setting.upper(),
            decode=self.decode,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries=retries,
            pool_size=pool_size,
            retry_sends_on_read_timeout=retry_sends_on_read_timeout,
        )

    @classmethod
    def from_settings(cls, settings: Any, pool_size: int | None = None) -> Self:
        """A client from hudhud's settings; ConfigurationError naming an unset secret."""
        return cls(
            getattr(settings, cls.base_url_setting),
            settings.require(cls.secret_setting),
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
            retries=settings.http_retries,
            pool_size=pool_size or settings.http_pool_size or DEFAULT_POOL_SIZE,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.base_url!r})"

    def close(self) -> None:
        self.http.close()
