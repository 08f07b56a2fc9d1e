"""hudhud: delivers SMS, email and voice through Taqnyat and Taifa Mail.

Web apps use `from hudhud import Hudhud, InvalidInput`. The code lives in three
sub-packages: `hudhud.config` (settings), `hudhud.tasks` (the Celery bindings) and
`hudhud.worker` (everything else).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hudhud.worker.errors import InvalidInput, RedisFull
    from hudhud.worker.producer import Hudhud, IdempotencyConflict, NotFound, Receipt, Refused

_EXPORTS = {
    "Hudhud": "hudhud.worker.producer",
    "Receipt": "hudhud.worker.producer",
    "IdempotencyConflict": "hudhud.worker.producer",
    "NotFound": "hudhud.worker.producer",
    "Refused": "hudhud.worker.producer",
    "InvalidInput": "hudhud.worker.errors",
    "RedisFull": "hudhud.worker.errors",
}

__all__ = ["Hudhud", "IdempotencyConflict", "InvalidInput", "NotFound", "Receipt", "RedisFull", "Refused"]


def __getattr__(name: str) -> Any:
    """Import the producer only when a web app asks for it: `hudhud.config` stays light."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hudhud' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
