"""hudhud configuration: one Settings object read from the environment and `.env`."""

from hudhud.config.settings import Settings, get_settings, reset_settings

__all__ = ["Settings", "get_settings", "reset_settings"]
