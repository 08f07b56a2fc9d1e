"""hudhud: delivers SMS, email and voice through Taqnyat and Taifa Mail.

Web apps use `from hudhud import Hudhud, InvalidInput`. The code lives in three
sub-packages: `hudhud.config` (settings), `hudhud.tasks` (the Celery bindings) and
`hudhud.worker` (everything else).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hudhud.worker.errors import InvalidInput, RedisFull
    from hudhud.worker.producer.api import Hudhud, IdempotencyConflict, NotFound, Receipt, Refused

_EXPORTS = {
    "Hudhud": "hudhud.worker.producer.api",
    "Receipt": "hudhud.worker.producer.api",
    "IdempotencyConflict": "hudhud.worker.producer.api",
    "NotFound": "hudhud.worker.producer.api",
    "Refused": "hudhud.worker.producer.api",
    "InvalidInput": "hudhud.worker.errors",
    "RedisFull": "hudhud.worker.errors",
    # `celery -A hudhud worker` finds the app here
    "celery": "hudhud.worker.broker.celery_app",
}

__all__ = ["Hudhud", "IdempotencyConflict", "InvalidInput", "NotFound", "Receipt", "RedisFull", "Refused"]


def __getattr__(name: str) -> Any:
    """Import the producer only when a web app asks for it: `hudhud.config` stays light."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hudhud' has no attribute {name!r}")
    from importlib import import_module

    found = import_module(module)
    return found.app if name == "celery" else getattr(found, name)
