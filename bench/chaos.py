"""Chaos run: a whole hudhud deployment under worker kills, a Redis crash, provider faults, lost
replies and balance trouble, then a check that no message was lost or sent twice unannounced.

    python bench/chaos.py [--messages N] [--kills K] [--quick] [--seed S] [--keep DIR]

Sends single messages over every channel and provider (15% of them through a plain Celery app
that names no queue, some with idempotency keys and a few of those sent twice) and SMS
campaigns in batches. Prints one line `sent=… foreign=… batches=… waited_for_top_up=…
lost=… duplicated=… in_doubt=… in_doubt_twice=… in_doubt_unsent=… held_for_decision=…
failed_sent=… kills=… redis_kills=… wall=…s` and exits non-zero when a message was lost, sent
twice unannounced, or recorded `failed` while the provider had it. Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from celery import Celery  # noqa: E402

from hudhud.worker.broker.celery_app import create_app  # noqa: E402
from hudhud.worker.delivery.attempt import Delivery  # noqa: E402
from hudhud.worker.delivery.doubt import awaiting_decision  # noqa: E402
from hudhud.worker.ledger import events_key  # noqa: E402
from hudhud.worker.ops.processes import DEFAULT_QUEUES  # noqa: E402
from hudhud.worker.producer.api import Hudhud  # noqa: E402
from hudhud.worker.producer.campaign import batch_id  # noqa: E402
from tests.helpers import RedisServer, Sandbox  # noqa: E402
from tests.stack import Stack  # noqa: E402

FINAL = {"sent", "delivered", "bounced", "failed", "rejected", "cancelled"}
DELIVERED = {"sent", "delivered"}
ENDED_UNSENT = {"failed", "rejected"}
KINDS = ("sms", "voice", "email-taifa", "email-taqnyat")
FOREIGN_TASKS = {"sms": "hudhud.send_sms", "voice": "hudhud.send_voice", "email": "hudhud.send_email"}

SMS_BATCH_SIZE = 100
KEYED_EVERY = 3  # every third foreign send carries an idempotency key
TWICE_EVERY = 3  # and every third of those is sent twice, under another task id
CHAOS_ENV = {
    "HUDHUD_LEASE_SECONDS": "10",
    "HUDHUD_REQUEUE_AFTER": "15",
    "HUDHUD_HTTP_READ_TIMEOUT": "2",
    "HUDHUD_HTTP_CONNECT_TIMEOUT": "1",
    "HUDHUD_MAX_ATTEMPTS": "40",
    "HUDHUD_SMS_BATCH_SIZE": str(SMS_BATCH_SIZE),
}
FAULTS_ON: dict[str, object] = {
    "error_rate_5xx": 0.05,
    "timeout_rate": 0.02,
    "timeout_seconds": 3,
    "rate_429": 0.02,
    "retry_after": 1,
}
FAULTS_OFF: dict[str, object] = {
    "error_rate_5xx": 0.0,
    "timeout_rate": 0.0,
    "rate_429": 0.0,
    "fault_after_accept": 0.0,
}
TOP_UP = 100000
# While the balance is short, it is set back to this every SHORT_EVERY seconds: a single SMS
# (0.026 SAR) or call (0.216) fits, a batch of SMS_BATCH_SIZE SMS (2.60 SAR) does not.
SHORT_BALANCE = 2.0
SHORT_EVERY = 0.1


@dataclass
class Plan:
    messages: int
    kills: int
    send_seconds: float
    chaos_seconds: float
    outage_seconds: float
    drain_timeout: float
    lost_replies: float  # the sandbox's `fault_after_accept` while faults are on
    campaigns: int  # SMS campaigns sent among the single messages
    short_campaigns: int  # SMS campaigns sent while the balance cannot pay for one batch
    short_seconds: float
    campaign_size: int = 2 * SMS_BATCH_SIZE
    scheduled_share: float = 0.1
    foreign_share: float = 0.15


@dataclass
class Sent:
    """One planned message. `ids` holds one message id, or for a keyed foreign send sent
    twice the two task ids: the one whose intake ran first became the message."""

    ids: tuple[str, ...]
    kind: str
    recipients: tuple[str, ...]
    scheduled: bool
    foreign: bool = False

    def message_id(self, records: dict[str, dict[str, Any]]) -> str:
        return next((i for i in self.ids if records.get(i)), self.ids[0])


@dataclass
class Log:
    events: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.2f}s] {text}"
        self.events.append(line)
        print(line, file=sys.stderr, flush=True)


_PLANS = {
    # quick: messages, kills, then the timings and mix of the run
    True: (
        300,
        3,
        {
            "send_seconds": 15,
            "chaos_seconds": 30,
            "outage_seconds": 8,
            "drain_timeout": 120,
            "campaigns": 3,
            "short_campaigns": 1,
            "short_seconds": 6,
        },
    ),
    False: (
        5000,
        10,
        {
            "send_seconds": 60,
            "chaos_seconds": 90,
            "outage_seconds": 30,
            "drain_timeout": 300,
            "campaigns": 10,
            "short_campaigns": 2,
            "short_seconds": 12,
        },
    ),
}


def plan_for(quick: bool, messages: int | None, kills: int | None) -> Plan:
    default_messages, default_kills, timings = _PLANS[quick]
    return Plan(
        messages or default_messages,
        default_kills if kills is None else kills,
        lost_replies=0.1,
        **timings,
    )


def fields_for(kind: str, index: int, at: datetime | None) -> tuple[str, dict[str, Any], str]:
    """channel, producer fields and the unique recipient of message number `index`."""
    if kind == "sms":
        to = f"96650{index:07d}"
        return "sms", {"to": to, "body": f"chaos {index}", "at": at}, to
    if kind == "voice":
        to = f"96655{index:07d}"
        return "voice", {"to": to, "audio_url": "https://cdn.example.com/chaos.mp3", "at": at}, to
    provider = "taifa" if kind == "email-taifa" else "taqnyat"
    to = f"chaos{index}@example.com"
    return (
        "email",
        {"to": to, "subject": f"chaos {index}", "text": "hello", "provider": provider, "at": at},
        to,
    )


def allowed(kind: str, in_doubt: bool) -> int:
    """How many times a recipient of this message may have been accepted: once; twice for
    a message in doubt that is sent again blind (a single Taqnyat message: its two replies
    may also both have been lost without anything sent, which the check counts apart). A
    Taifa email is looked up before any resend, and a batch in doubt waits for a decision
    (this run sends it again only when the provider lacks it): never twice."""
    return 2 if in_doubt and kind in ("sms", "voice", "email-taqnyat") else 1


def foreign_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
    """A send's fields as a producer with only `celery` installed gives them: plain JSON."""
    kwargs = {k: v for k, v in fields.items() if v is not None}
    kwargs["to"] = [kwargs["to"]]
    if "at" in kwargs:
        kwargs["at"] = kwargs["at"].isoformat()
    return kwargs


def campaign_recipients(number: int, size: int) -> list[str]:
    return [f"96657{number:02d}{i:05d}" for i in range(size)]


def patiently(what: str, call: Any, errors: list[int]) -> Any:
    """`call()`, again while Redis is down (connection refused, loading, broken pipe)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return call()
        except Exception as exc:
            errors[0] += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot {what}: {exc}") from exc
            time.sleep(0.2)


class Chaos:
    def __init__(self, plan: Plan, workdir: Path, seed: int) -> None:
        self.plan = plan
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.log = Log()
        self.redis_server = RedisServer(workdir / "redis", aof=True)
        self.sandbox = Sandbox(
            log=workdir / "sandbox.log", extra_args=["--knobs", json.dumps({"progress_seconds": 0.3})]
        )
        self.stack: Stack | None = None
        self.foreign: Celery | None = None
        self.campaigner: Hudhud | None = None
        self.workers = ["w1", "w2"]
        self.restarts = 0
        self.kills = 0
        self.redis_kills = 0
        self.sent: list[Sent] = []
        self.errors = [0]  # producer calls retried while Redis was down
        self.foreign_sends = 0
        self.lock = threading.Lock()
        self.redis_down = threading.Event()
        self.short_stop: threading.Event | None = None
        self.short_thread: threading.Thread | None = None
        self.decisions: Counter[str] = Counter()

    # --- processes ------------------------------------------------------------------
    def start(self) -> Stack:
        self.redis_server.start()
        self.sandbox.start()
        self.stack = Stack(
            self.workdir, redis_server=self.redis_server, sandbox=self.sandbox, extra_env=CHAOS_ENV
        )
        for name in self.workers:
            self.start_worker(name)
        self.stack.start_beat()
        # A producer with only `celery` installed: no hudhud settings, no queue named.
        self.foreign = Celery(broker=self.redis_server.url)
        # Campaigns sent from the chaos thread get their own producer.
        self.campaigner = Hudhud(self.stack.settings, app=create_app(self.stack.settings))
        self.log("stack up: redis, sandbox, 2 workers, beat")
        return self.stack

    def start_worker(self, name: str) -> None:
        assert self.stack is not None
        self.stack.start_worker(name, concurrency=20, queues=DEFAULT_QUEUES)

    def stop(self) -> None:
        self.end_short_balance()
        if self.foreign is not None:
            self.foreign.close()
        if self.stack is not None:
            self.stack.stop()
        self.sandbox.stop()
        self.redis_server.stop()

    def kill_worker(self) -> None:
        assert self.stack is not None
        slot = self.rng.randrange(len(self.workers))
        name = self.workers[slot]
        self.stack.kill(name)
        self.kills += 1
        self.restarts += 1
        new = f"w{slot + 1}r{self.restarts}"
        self.workers[slot] = new
        self.log(f"SIGKILL worker {name}; starting {new}")
        for _ in range(5):
            try:
                self.start_worker(new)
                return
            except (RuntimeError, TimeoutError) as exc:
                self.log(f"restart of {new} failed: {exc!s:.200}; again")
                time.sleep(1)

    def kill_redis(self) -> None:
        self.redis_down.set()
        self.redis_server.kill()
        self.redis_kills += 1
        self.log("SIGKILL redis-server")
        time.sleep(1.5)
        self.redis_server.start()
        self.redis_down.clear()
        self.log("redis-server restarted from its AOF")

    def balance(self, value: float) -> None:
        reply = requests.post(f"{self.sandbox.url}/_sandbox/balance", json={"set": value}, timeout=10)
        reply.raise_for_status()

    # --- producing ------------------------------------------------------------------
    def produce(self) -> None:
        assert self.stack is not None
        plan = self.plan
        interval = plan.send_seconds / max(plan.messages, 1)
        campaign_every = max(1, plan.messages // (plan.campaigns + 1))
        campaigns = 0
        start = time.monotonic()
        for index in range(plan.messages):
            pause = start + index * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if index and index % campaign_every == 0 and campaigns < plan.campaigns:
                self.send_campaign(self.stack.hudhud, campaigns)
                campaigns += 1
            kind = KINDS[index % len(KINDS)]
            scheduled = self.rng.random() < plan.scheduled_share
            at = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(5, 40)) if scheduled else None
            channel, fields, recipient = fields_for(kind, index, at)
            foreign = self.rng.random() < plan.foreign_share
            if foreign:
                ids = self.send_foreign(channel, fields, index)
            else:
                ids = (str(uuid.uuid4()),)
                self.submit(channel, fields, ids[0])
            with self.lock:
                self.sent.append(Sent(ids, kind, (recipient,), scheduled, foreign))
        self.log(
            f"produced {plan.messages} messages and {campaigns} campaigns ({self.errors[0]} calls retried)"
        )

    def submit(self, channel: str, fields: dict[str, Any], message_id: str) -> None:
        """One send; on a Redis error, again with the same id (the ledger keeps the first)."""
        assert self.stack is not None
        hudhud = self.stack.hudhud
        patiently(
            f"submit {message_id}", lambda: hudhud.send(channel, fields, message_id=message_id), self.errors
        )

    def send_foreign(self, channel: str, fields: dict[str, Any], index: int) -> tuple[str, ...]:
        """A send by task name alone, its task id the message id; some with a key, and a few
        of those twice (the second must change nothing)."""
        kwargs = foreign_kwargs(fields)
        number = self.foreign_sends
        self.foreign_sends += 1
        times = 1
        if number % KEYED_EVERY == 0:
            kwargs["key"] = f"chaos-{index}-{uuid.uuid4().hex[:8]}"
            times = 2 if number % (KEYED_EVERY * TWICE_EVERY) == 0 else 1
        ids = tuple(str(uuid.uuid4()) for _ in range(times))
        for task_id in ids:
            self.publish_foreign(FOREIGN_TASKS[channel], kwargs, task_id)
        return ids

    def publish_foreign(self, task: str, kwargs: dict[str, Any], task_id: str) -> None:
        """On a Redis error, again with the same task id: a second copy is recorded once."""
        assert self.foreign is not None
        app = self.foreign
        patiently(
            f"publish {task_id}", lambda: app.send_task(task, kwargs=kwargs, task_id=task_id), self.errors
        )

    def send_campaign(self, hudhud: Hudhud, number: int) -> None:
        """One SMS campaign of `campaign_size` recipients, in batches of SMS_BATCH_SIZE."""
        recipients = campaign_recipients(number, self.plan.campaign_size)
        cid = str(uuid.uuid4())
        fields = {"to": recipients, "body": f"chaos campaign {number}", "key": f"chaos-campaign-{cid}"}
        receipt = patiently(
            f"send campaign {cid}",
            lambda: hudhud.send_campaign("sms", fields, campaign_id=cid),
            self.errors,
        )
        with self.lock:
            for n in range(receipt.batches):
                chunk = tuple(recipients[n * SMS_BATCH_SIZE : (n + 1) * SMS_BATCH_SIZE])
                self.sent.append(Sent((batch_id(receipt.id, n),), "campaign-sms", chunk, False))
        self.log(f"campaign {number}: {receipt.recipients} recipients in {receipt.batches} batches")

    # --- chaos ----------------------------------------------------------------------
    def chaos(self) -> None:
        plan = self.plan
        events: list[tuple[float, str]] = [
            (self.rng.uniform(2, plan.chaos_seconds), "kill") for _ in range(plan.kills)
        ]
        events.append((self.rng.uniform(0.3, 0.6) * plan.send_seconds, "redis"))
        outage_at = self.rng.uniform(0.35, 0.5) * plan.chaos_seconds
        events += [
            (1.0, "faults-on"),
            (2.0, "balance-short"),
            (2.0 + plan.short_seconds, "balance-up"),
            (outage_at, "balance-0"),
            (outage_at + plan.outage_seconds, "balance-up"),
            (plan.chaos_seconds, "faults-off"),
        ]
        events.sort()
        start = time.monotonic()
        for at, what in events:
            pause = start + at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                self.act(what)
            except Exception as exc:  # keep the run going; the check will tell
                self.log(f"{what} failed: {exc!r}")

    def act(self, what: str) -> None:
        if what == "kill":
            self.kill_worker()
        elif what == "redis":
            self.kill_redis()
        elif what == "balance-short":
            self.short_balance()
        elif what == "balance-0":
            self.balance(0)
            self.log("balance outage: 0")
        elif what == "balance-up":
            self.end_short_balance()
            self.balance(TOP_UP)
            self.log(f"balance topped up: {TOP_UP}")
        elif what == "faults-on":
            faults = {**FAULTS_ON, "fault_after_accept": self.plan.lost_replies}
            self.sandbox.knobs(**faults)
            self.log(f"faults on: {faults}")
        elif what == "faults-off":
            self.sandbox.knobs(**FAULTS_OFF)
            self.log("faults off")

    def short_balance(self) -> None:
        """A balance that pays for single sends but not for one batch, kept so while single
        sends spend it; campaigns sent meanwhile wait for the top-up."""
        stop = threading.Event()

        def keep() -> None:
            while not stop.is_set():
                with contextlib.suppress(requests.RequestException):
                    self.balance(SHORT_BALANCE)
                stop.wait(SHORT_EVERY)

        self.balance(SHORT_BALANCE)
        self.short_stop = stop
        self.short_thread = threading.Thread(target=keep, name="short-balance", daemon=True)
        self.short_thread.start()
        self.log(f"balance short: {SHORT_BALANCE} (a batch of {SMS_BATCH_SIZE} SMS costs more)")
        assert self.campaigner is not None
        for number in range(self.plan.short_campaigns):
            self.send_campaign(self.campaigner, self.plan.campaigns + number)

    def end_short_balance(self) -> None:
        if self.short_stop is not None and self.short_thread is not None:
            self.short_stop.set()
            self.short_thread.join(10)
            self.short_stop = self.short_thread = None

    # --- the check ------------------------------------------------------------------
    def statuses(self) -> dict[str, dict[str, Any]]:
        assert self.stack is not None
        records: dict[str, dict[str, Any]] = {}
        with self.lock:
            pipe_ids = [i for s in self.sent for i in s.ids]
        for begin in range(0, len(pipe_ids), 500):
            chunk = pipe_ids[begin : begin + 500]
            pipe = self.stack.redis.pipeline(transaction=False)
            for message_id in chunk:
                pipe.hgetall(f"hudhud:m:{message_id}")
            for message_id, raw in zip(chunk, pipe.execute(), strict=True):
                records[message_id] = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
        return records

    def current(self, records: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
        """(status, message id) of every planned message."""
        with self.lock:
            planned = list(self.sent)
        pairs = []
        for s in planned:
            message_id = s.message_id(records)
            pairs.append(((records.get(message_id) or {}).get("status", "missing"), message_id))
        return pairs

    def delivery(self) -> Delivery:
        assert self.stack is not None
        return Delivery(self.stack.ledger, self.stack.settings, lambda name: None)

    def drain(self) -> dict[str, dict[str, Any]]:
        """Wait until every message is final, deciding the batches held in doubt once
        nothing else can move."""
        deadline = time.monotonic() + self.plan.drain_timeout
        last_report = 0.0
        while True:
            try:
                records = self.statuses()
                held = dict(awaiting_decision(self.delivery(), limit=100_000))
            except Exception as exc:
                self.log(f"ledger read failed: {exc!r}")
                time.sleep(1)
                continue
            open_ = Counter(
                status
                for status, message_id in self.current(records)
                if status not in FINAL and message_id not in held
            )
            if not open_ and not held:
                self.log("every message is final")
                return records
            if time.monotonic() > deadline:
                self.log(f"drain timed out; still open: {dict(open_)}, held for a decision: {len(held)}")
                return records
            if held and set(open_) <= {"missing"}:
                # Nothing else is pending but sends not recorded yet (or never: lost tasks).
                self.decide(held)
            if time.monotonic() - last_report > 10:
                self.log(f"waiting: {dict(open_)}, held for a decision: {len(held)}")
                last_report = time.monotonic()
            time.sleep(1)

    def decide(self, held: dict[str, float]) -> None:
        """As a careful operator would, with `hudhud resolve`: a batch the provider has is
        recorded sent, one it has not is sent again."""
        assert self.stack is not None
        accepted = self.accepted_per_recipient(self.sandbox_sends())[0]
        recipients = {s.ids[0]: s.recipients for s in self.sent}
        for message_id in held:
            have = any(accepted[r] for r in recipients.get(message_id, ()))
            decision = "--sent" if have else "--resend"
            done = self.stack.cli("resolve", message_id, decision, "--json")
            if done.returncode != 0:
                self.log(f"hudhud resolve {message_id} {decision} failed: {done.stdout} {done.stderr[-500:]}")
                continue
            self.decisions[decision[2:]] += 1
            self.log(f"held batch {message_id}: hudhud resolve {decision}: {done.stdout.strip()}")

    def sandbox_sends(self) -> list[dict[str, Any]]:
        sends: list[dict[str, Any]] = []
        since = 0
        for _ in range(1000):
            reply = requests.get(
                f"{self.sandbox.url}/_sandbox/sends", params={"since_seq": since, "limit": 5000}, timeout=60
            )
            reply.raise_for_status()
            page = reply.json()
            sends += page["sends"]
            if not page["sends"]:
                return sends
            since = page["sends"][-1]["seq"]
        return sends

    def accepted_per_recipient(self, sends: list[dict[str, Any]]) -> tuple[Counter[str], int]:
        """How many times the sandbox accepted each planned recipient; and the number of
        accepted sends that were to none of them."""
        planned = {r for s in self.sent for r in s.recipients}
        counts: Counter[str] = Counter()
        unmatched = 0
        for send in sends:
            ours = [str(r) for r in send.get("recipients") or [] if str(r) in planned]
            counts.update(ours)
            unmatched += not ours
        return counts, unmatched

    def check(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        sends = self.sandbox_sends()
        counts, unmatched = self.accepted_per_recipient(sends)
        lost: list[str] = []
        duplicated: list[str] = []
        failed_sent: list[str] = []
        in_doubt: list[str] = []
        twice: list[str] = []
        in_doubt_unsent: list[str] = []
        status_count: Counter[str] = Counter()
        for s in self.sent:
            message_id = s.message_id(records)
            record = records.get(message_id) or {}
            status = record.get("status", "missing")
            status_count[status] += 1
            taken = [counts[r] for r in s.recipients]
            doubtful = record.get("in_doubt") == "1"
            if doubtful:
                in_doubt.append(message_id)
            unsent = status in DELIVERED and min(taken) == 0
            if status not in FINAL or (unsent and allowed(s.kind, doubtful) == 1):
                lost.append(message_id)
            elif unsent:
                # Its replies were lost twice: recorded sent in doubt, not sent a third time.
                in_doubt_unsent.append(message_id)
            recorded = sum(1 for i in s.ids if records.get(i))
            if max(taken) > allowed(s.kind, doubtful) or recorded > 1:
                duplicated.append(message_id)
            elif max(taken) == 2:
                twice.append(message_id)
            if status in ENDED_UNSENT and max(taken) > 0 and not doubtful:
                failed_sent.append(message_id)
        batches = [s.ids[0] for s in self.sent if s.kind == "campaign-sms"]
        summary = {
            "sent": self.plan.messages,
            "foreign": sum(1 for s in self.sent if s.foreign),
            "keyed_twice": sum(1 for s in self.sent if len(s.ids) > 1),
            "batches": len(batches),
            "waited_for_top_up": self.waited_for_top_up(batches),
            "batch_recipients": sum(len(s.recipients) for s in self.sent if s.kind == "campaign-sms"),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "in_doubt": len(in_doubt),
            "in_doubt_twice": len(twice),
            "in_doubt_unsent": len(in_doubt_unsent),
            "held_for_decision": sum(self.decisions.values()),
            "decisions": dict(self.decisions),
            "failed_sent": len(failed_sent),
            "kills": self.kills,
            "redis_kills": self.redis_kills,
            "statuses": dict(status_count),
            "unmatched_sends": unmatched,
            "producer_retries": self.errors[0],
            "lost_ids": lost[:20],
            "duplicated_ids": duplicated[:20],
            "failed_sent_ids": failed_sent[:20],
            "in_doubt_unsent_ids": in_doubt_unsent[:20],
        }
        for message_id in (lost + duplicated + failed_sent)[:10]:
            self.explain(message_id, records, counts, sends)
        return summary

    def waited_for_top_up(self, message_ids: list[str]) -> int:
        """How many of these messages were held once because the balance could not pay."""
        assert self.stack is not None
        pipe = self.stack.redis.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.lrange(events_key(message_id), 0, -1)
        waited = 0
        for events in pipe.execute():
            kinds = [json.loads(e) for e in events if e.startswith(b"{")]
            waited += any(e.get("type") == "held" and "top-up" in e.get("error", "") for e in kinds)
        return waited

    def explain(
        self,
        message_id: str,
        records: dict[str, dict[str, Any]],
        counts: Counter[str],
        sends: list[dict[str, Any]],
    ) -> None:
        """The story of one message that failed the check, for the log."""
        assert self.stack is not None
        s = next(s for s in self.sent if message_id in s.ids)
        record = records.get(message_id) or {}
        events: Any = ""
        with contextlib.suppress(Exception):
            events = (self.stack.ledger.get(message_id) or {}).get("events", "")
        mine = set(s.recipients)
        accepted = [
            f"#{x['seq']} {x.get('accepted_at')} sms_id={x.get('sms_id')}"
            for x in sends
            if mine & {str(r) for r in x.get("recipients") or []}
        ]
        self.log(
            f"{message_id} {s.kind}{' foreign' if s.foreign else ''} ids={list(s.ids)} "
            f"status={record.get('status', 'missing')} "
            f"accepted={max(counts[r] for r in s.recipients)}x ({'; '.join(accepted[:4])}) "
            f"in_doubt={record.get('in_doubt')} attempts={record.get('attempts')} "
            f"events={json.dumps(events, default=str)[:2000]}"
        )


def run(
    *,
    quick: bool = False,
    messages: int | None = None,
    kills: int | None = None,
    seed: int | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    """One chaos run; the summary dict (sent, foreign, batches, lost, duplicated, in_doubt,
    in_doubt_twice, held_for_decision, failed_sent, kills, redis_kills, wall, ...)."""
    began = time.monotonic()
    plan = plan_for(quick, messages, kills)
    seed = seed if seed is not None else random.randrange(1 << 30)
    workdir = keep or Path(tempfile.mkdtemp(prefix="hudhud-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(plan, workdir, seed)
    chaos.log(f"seed={seed} workdir={workdir} plan={plan}")
    try:
        chaos.start()
        chaos_thread = threading.Thread(target=chaos.chaos, name="chaos", daemon=True)
        chaos_thread.start()
        chaos.produce()
        chaos_thread.join(plan.chaos_seconds + 120)
        records = chaos.drain()
        summary = chaos.check(records)
    finally:
        chaos.stop()
    summary["wall"] = round(time.monotonic() - began, 1)
    summary["seed"] = seed
    summary["workdir"] = str(workdir)
    if keep is None and not failures(summary):
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def failures(summary: dict[str, Any]) -> int:
    return int(summary["lost"] + summary["duplicated"] + summary["failed_sent"])


def summary_line(summary: dict[str, Any]) -> str:
    return (
        f"sent={summary['sent']} foreign={summary['foreign']} batches={summary['batches']} "
        f"waited_for_top_up={summary['waited_for_top_up']} "
        f"lost={summary['lost']} duplicated={summary['duplicated']} "
        f"in_doubt={summary['in_doubt']} in_doubt_twice={summary['in_doubt_twice']} "
        f"in_doubt_unsent={summary['in_doubt_unsent']} "
        f"held_for_decision={summary['held_for_decision']} failed_sent={summary['failed_sent']} "
        f"kills={summary['kills']} redis_kills={summary['redis_kills']} wall={summary['wall']}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data in this folder")
    args = parser.parse_args(argv)
    summary = run(quick=args.quick, messages=args.messages, kills=args.kills, seed=args.seed, keep=args.keep)
    with contextlib.suppress(Exception):
        print(json.dumps(summary, default=str), file=sys.stderr)
    print(summary_line(summary), flush=True)
    return 1 if failures(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
