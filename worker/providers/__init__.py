"""Provider clients: one module per provider over one small HTTP base."""

from hudhud.worker.providers.errors import (
    AccountError,
    BalanceError,
    InDoubtError,
    PermanentError,
    ProviderError,
    RetryableError,
)
from hudhud.worker.providers.results import (
    Balance,
    BatchResult,
    EmailStatus,
    Page,
    Sender,
    SendResult,
    SystemStatus,
    TaifaEmail,
    TaifaEvent,
    Updates,
    Validation,
    ValidationIssue,
)
from hudhud.worker.providers.taifa import TaifaClient
from hudhud.worker.providers.taqnyat import TaqnyatClient

__all__ = [
    "AccountError",
    "Balance",
    "BalanceError",
    "BatchResult",
    "EmailStatus",
    "InDoubtError",
    "Page",
    "PermanentError",
    "ProviderError",
    "RetryableError",
    "SendResult",
    "Sender",
    "SystemStatus",
    "TaifaClient",
    "TaifaEmail",
    "TaifaEvent",
    "TaqnyatClient",
    "Updates",
    "Validation",
    "ValidationIssue",
]
