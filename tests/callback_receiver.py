"""A producer's callback endpoint for tests: a threaded HTTP server in the test process that
checks every callback's signature with `standardwebhooks`, records it, and answers as told
(500 for the first tries of each webhook-id, 410, or not at all once stopped); and one that
answers a byte at a time."""

from __future__ import annotations

import json
import socket
import threading
import time
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


@dataclass
class Trickler:
    """An endpoint that reads a callback (or a TLS hello), then answers one byte at a time
    (`every` seconds apart: a status line and headers, or a TLS record, that would take
    minutes): it records when each connection came and when the caller let go of it."""

    port: int
    every: float = 0.2
    answer: bytes = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 2000 + b"\r\nContent-Length: 0\r\n\r\n"
    opened: list[float] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _socket: socket.socket | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/slow"

    def start(self) -> Trickler:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._socket = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            self._socket.close()

    def connections(self) -> int:
        with self._lock:
            return len(self.opened)

    def held(self) -> list[float]:
        """Seconds each finished connection was held by its caller."""
        with self._lock:
            return [end - start for start, end in zip(self.opened, self.closed, strict=False)]

    def _accept(self) -> None:
        assert self._socket is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.opened.append(time.monotonic())
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            conn.recv(65536)
            for byte in self.answer:
                if self._stopping.wait(self.every):
                    break
                conn.sendall(bytes([byte]))
                if self._gone(conn):
                    break
        except OSError:
            pass
        finally:
            with self._lock:
                self.closed.append(time.monotonic())
            conn.close()

    @staticmethod
    def _gone(conn: socket.socket) -> bool:
        """Whether the caller closed its side (a read that does not wait finds the end)."""
        try:
            conn.setblocking(False)
            return conn.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            conn.settimeout(5)
