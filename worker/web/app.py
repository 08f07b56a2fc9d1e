"""The ASGI application `hudhud api` serves: routes, error shapes, one settings object."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hudhud.config import Settings, get_settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.web import health, hooks

TITLE = "hudhud"


def field_error(field: str, message: str, status: int = 422) -> JSONResponse:
    """The contract's shape of a refused request: `{"error": {"field", "message"}}`."""
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return field_error(exc.field, exc.message)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, for uvicorn's `--factory` (settings from the environment)."""
    app = FastAPI(title=TITLE, version=version("hudhud"), docs_url="/docs", redoc_url=None)
    app.state.settings = settings or get_settings()
    app.add_exception_handler(InvalidInput, _invalid_input)
    app.include_router(health.router)
    app.include_router(hooks.router)
    return app
