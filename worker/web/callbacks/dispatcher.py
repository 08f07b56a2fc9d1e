"""`hudhud callbacks run`: reads the change stream (consumer group `callbacks`), queues each
change's callback in the ledger before the change is acknowledged, and POSTs the due ones from
a pool of threads: a message's callbacks one after the other, different messages at once.

A try that gets a 2xx is done; a 410 disables the endpoint (`HUDHUD_CALLBACK_URL` itself, or
a message's own URL's origin): its callbacks are dropped as each comes up, until `hudhud
callbacks enable`; anything else (a 3xx is not followed, a timeout, a refused connection) is
tried again as `HUDHUD_CALLBACK_SCHEDULE` says, then given up. A message's own `callback_url`
is checked when each call is made: its host must still be listed, and must not resolve inside
the network unless listed by its own name. A try, name lookups included, is over within
`HUDHUD_CALLBACK_TIMEOUT`; a message is leased for well longer, so that no other thread takes
its callback while a try is still on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import redis

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError
from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.callbacks import Callback, CallbackStore, Taken
from hudhud.worker.ledger.changes import Change, ChangeConsumer
from hudhud.worker.producer import targets
from hudhud.worker.web.callbacks import intake, schedule, sending
from hudhud.worker.web.callbacks.signing import Signer

log = logging.getLogger("hudhud.callbacks")

GROUP = "callbacks"
THREADS = 16
POLL = 0.2  # seconds between looks for callbacks whose next try came due
LEASE_SPARE = 10.0  # seconds a lease outlasts twice the longest try
ALIVE_EVERY = 5.0  # seconds between a dispatcher's signs of life


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        threads: int = THREADS,
        name: str | None = None,
    ) -> None:
        _check_endpoint(settings)
        self.settings = settings
        self.store = CallbackStore(ledger)
        self.signer = Signer.from_settings(settings)
        self.waits = schedule.of(settings)
        self.threads = threads
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.lease_seconds = 2 * settings.callback_timeout + LEASE_SPARE
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self.consumer = ChangeConsumer.from_settings(
            ledger, settings, GROUP, self.name, self.take_in, block=0.5
        )

    # --- from the change stream ---------------------------------------------------------
    def take_in(self, change: Change) -> None:
        """Queue the change's callback (raises, leaving the change unacknowledged, when Redis fails)."""
        prepared = intake.prepare(change, self.store, self.settings)
        if prepared.callback is None:
            if prepared.why_not == intake.DISABLED:
                self.store.count("dropped")
            return
        if self.store.queue(prepared.callback, due=time.time() + self.waits[0]):
            self.wake.set()

    # --- the calls -------------------------------------------------------------------------
    def deliver(self, taken: Taken) -> None:
        """One try of a taken callback, and what follows from it."""
        callback = taken.callback
        deadline = time.monotonic() + self.settings.callback_timeout
        url = intake.endpoint(callback.target, self.settings)
        if not url or self.store.is_disabled(intake.disabled_as(callback.target, self.settings)):
            self._end(taken, "dropped")
            return
        try:
            verdict = targets.judge(url, self.settings, listed_only=bool(callback.target), deadline=deadline)
        except targets.TooSlow:
            self._failed(taken, sending.Try(sending.TIMEOUT), url)
            return
        if verdict.refusal:
            log.warning(
                "callback %s of message %s not sent to %s: %s",
                callback.webhook_id,
                callback.message_id,
                targets.shown(url),
                verdict.refusal,
            )
            self._end(taken, "refused")
            return
        headers = self.signer.headers(callback.webhook_id, callback.body, time.time())
        tried = sending.post(url, callback.body, headers, deadline=deadline, address=verdict.address)
        if tried.got == sending.DELIVERED:
            self._end(taken, "delivered", tried.got)
        elif tried.got == sending.GONE:
            self._gone(taken)
        else:
            self._failed(taken, tried, url)

    def _end(self, taken: Taken, outcome: str, got: str | None = None) -> None:
        next_due = time.time() + self.waits[0]
        self.store.done(taken.callback, outcome, next_due=next_due, lease=taken.lease, got=got)
        self.wake.set()

    def _failed(self, taken: Taken, tried: sending.Try, url: str) -> None:
        tries = taken.attempts + 1
        now = time.time()
        at = schedule.next_try(self.waits, tries, now)
        if at is not None:
            self.store.retry(taken, at=at, got=tried.got)
            return
        callback = taken.callback
        if self.store.done(
            callback, "given_up", next_due=now + self.waits[0], lease=taken.lease, got=tried.got
        ):
            log.warning(
                "callback %s of message %s (%s) to %s given up after %d tries (last: %s)",
                callback.webhook_id,
                callback.message_id,
                _type(callback),
                targets.shown(url),
                tries,
                tried.got,
            )
            self.store.give_up_note(
                {
                    "webhook_id": callback.webhook_id,
                    "id": callback.message_id,
                    "type": _type(callback),
                    "tries": tries,
                    "last": tried.got,
                    "at": now,
                }
            )
        self.wake.set()

    def _gone(self, taken: Taken) -> None:
        """The endpoint answered 410: disabled; each callback waiting for it is dropped when it
        comes up."""
        callback = taken.callback
        endpoint = intake.disabled_as(callback.target, self.settings)
        note = {"at": time.time(), "shown": targets.shown(endpoint), "webhook_id": callback.webhook_id}
        disabled_now = self.store.disable(endpoint, note)  # before the message's next callback is let in
        self._end(taken, "disabled", sending.GONE)
        if disabled_now:
            self.store.count("endpoints_disabled")
            log.error(
                "callback endpoint %s answered 410 Gone: disabled, its callbacks are dropped until "
                "`hudhud callbacks enable`",
                targets.shown(endpoint),
            )

    # --- the loop ----------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()
        self.consumer.stop()
        self.wake.set()

    def run(self) -> None:
        while not self._group_made():
            self.stopping.wait(1.0)
        if self.stopping.is_set():
            return
        reader = threading.Thread(target=self.consumer.run, name="callbacks-changes", daemon=True)
        reader.start()
        log.info("callback dispatcher %s ready (%d threads)", self.name, self.threads)
        last_alive = 0.0
        with ThreadPoolExecutor(self.threads, thread_name_prefix="callback") as pool:
            while not self.stopping.is_set():
                now = time.time()
                if now - last_alive >= ALIVE_EVERY:
                    last_alive = self._alive(now)
                self.wake.clear()
                started = self._start_due(pool, now)
                if not started or self._free() == 0:
                    self.wake.wait(POLL)
        reader.join(5)
        try:
            self.store.gone(self.name)
        except redis.RedisError:
            pass
        log.info("callback dispatcher %s stopped", self.name)

    def _group_made(self) -> bool:
        """The consumer group exists, before the first change it must see (False: Redis failed)."""
        try:
            self.consumer.create_group()
            return True
        except redis.RedisError as exc:
            log.warning("callbacks: Redis failed (%s): tried again", type(exc).__name__)
            return self.stopping.is_set()

    def _alive(self, now: float) -> float:
        try:
            self.store.alive(self.name, now)
        except redis.RedisError as exc:
            log.warning("callbacks: Redis failed (%s)", type(exc).__name__)
        return now

    def _free(self) -> int:
        with self._lock:
            return self.threads - self._busy

    def _start_due(self, pool: ThreadPoolExecutor, now: float) -> int:
        try:
            taken = self.store.take(now=now, lease=now + self.lease_seconds, limit=self._free())
        except redis.RedisError as exc:
            log.warning("callbacks: Redis failed (%s): tried again", type(exc).__name__)
            self.stopping.wait(1.0)
            return 0
        for one in taken:
            with self._lock:
                self._busy += 1
            pool.submit(self._deliver_safely, one).add_done_callback(self._finished)
        return len(taken)

    def _finished(self, _future: Future[None]) -> None:
        with self._lock:
            self._busy -= 1
        self.wake.set()

    def _deliver_safely(self, taken: Taken) -> None:
        try:
            self.deliver(taken)
        except Exception as exc:  # counted as a failed try; when Redis fails, the lease ends
            log.warning(
                "callback %s of message %s failed in the dispatcher (%s)",
                taken.callback.webhook_id,
                taken.callback.message_id,
                type(exc).__name__,
            )
            try:
                self._failed(
                    taken, sending.Try("error"), intake.endpoint(taken.callback.target, self.settings)
                )
            except redis.RedisError:
                pass


def _check_endpoint(settings: Settings) -> None:
    url = settings.callback_url
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        raise ConfigurationError("HUDHUD_CALLBACK_URL", "an http:// or https:// URL")


def _type(callback: Callback) -> str:
    try:
        return str(json.loads(callback.body).get("type", "?"))
    except (ValueError, AttributeError):
        return "?"
