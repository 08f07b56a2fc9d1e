"""A provider that exists only in the tests: "pigeon", an SMS API of two calls.

`PigeonServer` is its tiny HTTP server (in a thread of the test process): `POST /send` with
`{"to": [...], "text": ..., "from": ...}` and a bearer token answers `{"id", "accepted"}`;
`GET /ping` answers `{"ok": true}`. It keeps every send it accepted, for the test to read.

`PigeonClient` is its client. Importing this module registers it: naming the module in
`HUDHUD_PROVIDERS_EXTRA` is all a `hudhud worker` needs to deliver through it (with
`HUDHUD_SMS_PROVIDER=pigeon`, `PIGEON_URL` and `PIGEON_TOKEN` in the environment).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from hudhud.worker.errors import ConfigurationError
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Probe
from hudhud.worker.providers.client import ProviderClient
from hudhud.worker.providers.errors import AccountError, PermanentError
from hudhud.worker.providers.http import Reply, status_retry_error, unreadable_reply
from hudhud.worker.providers.results import SendResult

NAME = "pigeon"


class PigeonClient(ProviderClient):
    name = NAME
    channels = frozenset({"sms"})
    secret_variable = "PIGEON_TOKEN"

    @classmethod
    def from_settings(cls, settings: Any, pool_size: int | None = None) -> Self:
        token = os.environ.get("PIGEON_TOKEN")
        if not token:
            raise ConfigurationError("PIGEON_TOKEN")
        return cls(
            os.environ.get("PIGEON_URL", ""), token, read_timeout=settings.http_read_timeout, retries=0
        )

    def deliver(self, channel: str, message_id: str, payload: Mapping[str, Any]) -> SendResult:
        body = {
            "to": list(payload["to"]),
            "text": payload["body"],
            "from": payload["sender"],
            "ref": message_id,
        }
        reply = self.http.request("POST", "/send", safe=False, json_body=body)
        self._raise(reply, safe=False)
        return SendResult(
            provider=NAME,
            provider_message_id=str(reply.data["id"]),
            status="sent",
            accepted=tuple(reply.data.get("accepted") or ()),
        )

    def probe(self) -> Probe:
        self._raise(self.http.request("GET", "/ping", safe=True), safe=True)
        return Probe(can_send=True)

    def _raise(self, reply: Reply, *, safe: bool) -> None:
        if reply.status >= 500 or reply.status == 429:
            raise status_retry_error(NAME, reply, f"HTTP {reply.status}", safe=safe)
        if reply.status in (401, 403):
            raise AccountError(NAME, "token refused", http_status=reply.status)
        if not reply.ok:
            raise PermanentError(
                NAME, str((reply.data or {}).get("error") or reply.status), http_status=reply.status
            )
        if not isinstance(reply.data, dict):
            raise unreadable_reply(NAME, reply, safe=safe)


registry.register(PigeonClient)


class PigeonServer:
    """The pigeon API on 127.0.0.1 (a free port), in a thread; `sends` holds what it took."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.sends: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, send: dict[str, Any]) -> str:
        with self._lock:
            self.sends.append(send)
            return f"pg-{len(self.sends)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {server.token}":
                    return True
                self._answer(401, {"error": "bad token"})
                return False

            def do_GET(self) -> None:
                if self._authorized():
                    self._answer(200, {"ok": True}) if self.path == "/ping" else self._answer(404, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                send = json.loads(self.rfile.read(length) or b"{}")
                if not self._authorized():
                    return
                if self.path != "/send" or not send.get("to") or not send.get("text"):
                    self._answer(400, {"error": "to and text are required"})
                    return
                self._answer(200, {"id": server._take(send), "accepted": send["to"]})

        return Handler
