"""The ASGI application `hudhud api` serves: routes, error shapes, one settings object."""

from __future__ import annotations

from importlib.metadata import version

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kombu.exceptions import KombuError

from hudhud.config import Settings, get_settings
from hudhud.worker.errors import ConfigurationError, InvalidInput, RedisFull
from hudhud.worker.producer.api import NotFound, Refused
from hudhud.worker.web import auth, fast, health, hooks, limits, ops, schemas, sends, suppressions

TITLE = "hudhud"


def field_error(field: str, message: str, status: int = 422) -> JSONResponse:
    """The contract's shape of a refused request: `{"error": {"field", "message"}}`."""
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    return field_error(exc.field, exc.message)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return field_error("id", str(exc), 404)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    return field_error("id", str(exc), 409)


async def _unsupported(request: Request, exc: Exception) -> JSONResponse:
    return field_error("content-type", "must be application/json", 415)


async def _misconfigured(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConfigurationError)
    return field_error(exc.variable, "is not set or not valid in the API's configuration", 500)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis (or the broker) refused or did not answer: try again after a while."""
    problem = "is full (out of memory)" if isinstance(exc, RedisFull) else "is unavailable"
    answer = field_error("redis", f"{problem}: try again later", 503)
    answer.headers["Retry-After"] = "5"
    return answer


ERROR_HANDLERS = (
    (InvalidInput, _invalid_input),
    (auth.Unauthorized, auth.unauthorized),
    (NotFound, _not_found),
    (Refused, _refused),
    (sends.UnsupportedMediaType, _unsupported),
    (ConfigurationError, _misconfigured),
    (redis.RedisError, _unavailable),
    (KombuError, _unavailable),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, for uvicorn's `--factory` (settings from the environment)."""
    app = FastAPI(title=TITLE, version=version("hudhud"), docs_url="/docs", redoc_url=None)
    app.state.settings = settings or get_settings()
    app.state.api_keys = auth.Keys.from_settings(app.state.settings)
    for error, handler in ERROR_HANDLERS:
        app.add_exception_handler(error, handler)
    app.add_middleware(limits.BodyLimit, max_body=app.state.settings.api_max_body)
    health.install_metrics(app.state.settings)
    app.include_router(health.router)
    app.include_router(hooks.router)
    app.include_router(sends.router)
    app.include_router(suppressions.router)
    app.include_router(ops.router)
    app.router.routes[:0] = fast.routes()
    schemas.install(app)
    return app
