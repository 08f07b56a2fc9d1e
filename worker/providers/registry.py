"""The providers hudhud knows, by name, and which one serves a channel.

The built-in ones (Taqnyat, Taifa) register when this module is imported. A provider defined
elsewhere is a module named in `HUDHUD_PROVIDERS_EXTRA` (comma-separated import paths): it is
imported at start and calls `register(ItsClass)`. `HUDHUD_SMS_PROVIDER`,
`HUDHUD_EMAIL_PROVIDER` and `HUDHUD_VOICE_PROVIDER` route a channel to one of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.providers.base import Provider

if TYPE_CHECKING:
    from hudhud.config import Settings

_PROVIDERS: dict[str, type[Provider]] = {}
_LOADED: set[str] = set()

CHANNEL_SETTINGS = {"sms": "sms_provider", "email": "email_provider", "voice": "voice_provider"}


def register(provider: type[Provider]) -> type[Provider]:
    """Add a provider class under its `name` (usable as a class decorator)."""
    if not provider.name or not provider.channels:
        raise ValueError("a provider needs a name and the channels it serves")
    _PROVIDERS[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    """Forget a provider (a test's own, once the test is over)."""
    _PROVIDERS.pop(name, None)


def load_extra(modules: str) -> None:
    """Import each module named in `modules` (comma-separated), once: each registers itself."""
    for path in (part.strip() for part in modules.split(",")):
        if not path or path in _LOADED:
            continue
        try:
            importlib.import_module(path)
        except ImportError as exc:
            raise ConfigurationError(
                "HUDHUD_PROVIDERS_EXTRA", detail=f"cannot import {path} ({exc})"
            ) from None
        _LOADED.add(path)


def names() -> list[str]:
    """The registered names, in the order they were registered (the built-in ones first)."""
    return list(_PROVIDERS)


def providers() -> Iterator[type[Provider]]:
    """Every registered provider class, in the order of `names`."""
    return (_PROVIDERS[name] for name in names())


def serving(channel: str) -> list[str]:
    """The names of the providers that serve `channel`, sorted."""
    return sorted(p.name for p in providers() if p.serves(channel))


def get(name: str) -> type[Provider]:
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}") from None


def known(name: object) -> bool:
    return isinstance(name, str) and name in _PROVIDERS


def for_channel(channel: str, settings: Settings) -> str:
    """The provider a send on `channel` goes to when it names none."""
    return str(getattr(settings, CHANNEL_SETTINGS[channel]))


class Serving:
    """A live view of the names of the providers serving a channel (`name in view`)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def __contains__(self, name: object) -> bool:
        return known(name) and get(str(name)).serves(self.channel)

    def __iter__(self) -> Iterator[str]:
        return iter(serving(self.channel))

    def __repr__(self) -> str:
        return f"Serving({self.channel!r}: {', '.join(self)})"


def _builtin() -> None:
    from hudhud.worker.providers.taifa import TaifaClient
    from hudhud.worker.providers.taqnyat import TaqnyatClient

    register(TaqnyatClient)
    register(TaifaClient)


_builtin()
