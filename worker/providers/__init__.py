"""Provider clients: one interface (`base`), one registry (`registry`), one package per
provider (`taqnyat`, `taifa`) over one small HTTP base (`http`, `client`).

Errors live in `errors`, results in `results`: import them from there.
"""

from hudhud.worker.providers.base import Provider
from hudhud.worker.providers.registry import get, register

__all__ = ["Provider", "get", "register"]
