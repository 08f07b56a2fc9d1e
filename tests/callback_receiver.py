"""A producer's callback endpoint for tests: a threaded HTTP server in the test process that
checks every callback's signature with `standardwebhooks`, records it, and answers as told
(500 for the first tries of each webhook-id, 410, or not at all once stopped)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    verified: bool
    body: dict[str, Any]
    raw: str
    headers: dict[str, str]
    answered: int


@dataclass
class Receiver:
    port: int
    secret: str = SECRET
    fail_first: int = 0  # tries of each webhook-id answered 500 before a 200
    answer: int | None = None  # when set, every try gets this status
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hudhud"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                self.send_response(receiver.take(raw, {k.lower(): v for k, v in self.headers.items()}))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, raw: str, headers: dict[str, str]) -> int:
        try:
            Webhook(self.secret).verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        with self._lock:
            tries = sum(1 for r in self.received if r.webhook_id == headers.get("webhook-id"))
            if self.answer is not None:
                status = self.answer
            else:
                status = 500 if tries < self.fail_first else 200
            self.received.append(
                Received(
                    webhook_id=headers.get("webhook-id", ""),
                    timestamp=headers.get("webhook-timestamp", ""),
                    signature=headers.get("webhook-signature", ""),
                    verified=verified,
                    body=json.loads(raw) if raw else {},
                    raw=raw,
                    headers=headers,
                    answered=status,
                )
            )
        return status

    def delivered(self) -> list[Received]:
        """The callbacks answered 2xx, in the order they came."""
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def of(self, message_id: str) -> list[Received]:
        return [r for r in self.delivered() if r.body.get("data", {}).get("id") == message_id]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)
