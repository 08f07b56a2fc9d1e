"""Chaos run: a whole hudhud deployment under worker kills, a Redis crash, provider faults and a
balance outage, then a check that no message was lost or sent twice unannounced.

    python bench/chaos.py [--messages N] [--kills K] [--quick] [--seed S] [--keep DIR]

Prints one line `sent=… lost=… duplicated=… in_doubt=… kills=… redis_kills=… wall=…s` and exits
non-zero when a message was lost or duplicated. Everything listens on 127.0.0.1 only.
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

from tests.helpers import RedisServer, Sandbox  # noqa: E402
from tests.stack import Stack  # noqa: E402

FINAL = {"sent", "delivered", "bounced", "failed", "rejected", "cancelled"}
DELIVERED = {"sent", "delivered"}
KINDS = ("sms", "voice", "email-taifa", "email-taqnyat")

CHAOS_ENV = {
    "HUDHUD_LEASE_SECONDS": "10",
    "HUDHUD_REQUEUE_AFTER": "15",
    "HUDHUD_HTTP_READ_TIMEOUT": "2",
    "HUDHUD_HTTP_CONNECT_TIMEOUT": "1",
    "HUDHUD_MAX_ATTEMPTS": "40",
}
FAULTS_ON: dict[str, object] = {
    "error_rate_5xx": 0.05,
    "timeout_rate": 0.02,
    "timeout_seconds": 3,
    "rate_429": 0.02,
    "retry_after": 1,
}
FAULTS_OFF: dict[str, object] = {"error_rate_5xx": 0.0, "timeout_rate": 0.0, "rate_429": 0.0}
TOP_UP = 100000


@dataclass
class Plan:
    messages: int
    kills: int
    send_seconds: float
    chaos_seconds: float
    outage_seconds: float
    drain_timeout: float
    scheduled_share: float = 0.1


@dataclass
class Sent:
    id: str
    kind: str
    recipient: str
    scheduled: bool


@dataclass
class Log:
    events: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.2f}s] {text}"
        self.events.append(line)
        print(line, file=sys.stderr, flush=True)


def plan_for(quick: bool, messages: int | None, kills: int | None) -> Plan:
    if quick:
        return Plan(
            messages or 300,
            3 if kills is None else kills,
            send_seconds=15,
            chaos_seconds=30,
            outage_seconds=8,
            drain_timeout=100,
        )
    return Plan(
        messages or 5000,
        10 if kills is None else kills,
        send_seconds=60,
        chaos_seconds=90,
        outage_seconds=30,
        drain_timeout=300,
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
        self.workers = ["w1", "w2"]
        self.restarts = 0
        self.kills = 0
        self.redis_kills = 0
        self.sent: list[Sent] = []
        self.send_errors = 0
        self.lock = threading.Lock()
        self.redis_down = threading.Event()

    # --- processes ------------------------------------------------------------------
    def start(self) -> Stack:
        self.redis_server.start()
        self.sandbox.start()
        self.stack = Stack(
            self.workdir, redis_server=self.redis_server, sandbox=self.sandbox, extra_env=CHAOS_ENV
        )
        for name in self.workers:
            self.stack.start_worker(name, concurrency=20)
        self.stack.start_beat()
        self.log("stack up: redis, sandbox, 2 workers, beat")
        return self.stack

    def stop(self) -> None:
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
                self.stack.start_worker(new, concurrency=20)
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
        start = time.monotonic()
        for index in range(plan.messages):
            pause = start + index * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            kind = KINDS[index % len(KINDS)]
            scheduled = self.rng.random() < plan.scheduled_share
            at = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(5, 40)) if scheduled else None
            channel, fields, recipient = fields_for(kind, index, at)
            message_id = str(uuid.uuid4())
            self.submit(channel, fields, message_id)
            with self.lock:
                self.sent.append(Sent(message_id, kind, recipient, scheduled))
        self.log(f"produced {plan.messages} messages ({self.send_errors} producer errors retried)")

    def submit(self, channel: str, fields: dict[str, Any], message_id: str) -> None:
        """One send; on a Redis error, again with the same id (the ledger keeps the first)."""
        assert self.stack is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                self.stack.hudhud.send(channel, fields, message_id=message_id)
                return
            except Exception as exc:  # Redis down: connection refused, loading, broken pipe
                self.send_errors += 1
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot submit {message_id}: {exc}") from exc
                time.sleep(0.2)

    # --- chaos ----------------------------------------------------------------------
    def chaos(self) -> None:
        plan = self.plan
        events: list[tuple[float, str]] = [
            (self.rng.uniform(2, plan.chaos_seconds), "kill") for _ in range(plan.kills)
        ]
        events.append((self.rng.uniform(0.3, 0.6) * plan.send_seconds, "redis"))
        outage_at = self.rng.uniform(0.2, 0.5) * plan.chaos_seconds
        events += [
            (outage_at, "balance-0"),
            (outage_at + plan.outage_seconds, "balance-up"),
            (1.0, "faults-on"),
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
        elif what == "balance-0":
            self.balance(0)
            self.log("balance outage: 0")
        elif what == "balance-up":
            self.balance(TOP_UP)
            self.log(f"balance topped up: {TOP_UP}")
        elif what == "faults-on":
            self.sandbox.knobs(**FAULTS_ON)
            self.log(f"faults on: {FAULTS_ON}")
        elif what == "faults-off":
            self.sandbox.knobs(**FAULTS_OFF)
            self.log("faults off")

    # --- the check ------------------------------------------------------------------
    def statuses(self) -> dict[str, dict[str, Any]]:
        assert self.stack is not None
        records: dict[str, dict[str, Any]] = {}
        pipe_ids = [s.id for s in self.sent]
        for begin in range(0, len(pipe_ids), 500):
            chunk = pipe_ids[begin : begin + 500]
            pipe = self.stack.redis.pipeline(transaction=False)
            for message_id in chunk:
                pipe.hgetall(f"hudhud:m:{message_id}")
            for message_id, raw in zip(chunk, pipe.execute(), strict=True):
                records[message_id] = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
        return records

    def drain(self) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + self.plan.drain_timeout
        last_report = 0.0
        while True:
            try:
                records = self.statuses()
            except Exception as exc:
                self.log(f"ledger read failed: {exc!r}")
                time.sleep(1)
                continue
            open_ = Counter(
                r.get("status", "missing") for r in records.values() if r.get("status") not in FINAL
            )
            if not open_:
                self.log("every message is final")
                return records
            if time.monotonic() > deadline:
                self.log(f"drain timed out; still open: {dict(open_)}")
                return records
            if time.monotonic() - last_report > 10:
                self.log(f"waiting: {dict(open_)}")
                last_report = time.monotonic()
            time.sleep(1)

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

    def check(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        by_recipient = {s.recipient: s.id for s in self.sent}
        ids = {s.id for s in self.sent}
        counts: Counter[str] = Counter()
        unmatched = 0
        for send in self.sandbox_sends():
            message_id: str | None = None
            if send.get("channel") == "sms" and send.get("sms_id") in ids:
                message_id = send["sms_id"]
            for tag in send.get("tags") or []:
                if str(tag).startswith("hudhud-") and tag[len("hudhud-") :] in ids:
                    message_id = tag[len("hudhud-") :]
            if message_id is None:
                for recipient in send.get("recipients") or []:
                    message_id = by_recipient.get(str(recipient), message_id)
            if message_id is None:
                unmatched += 1
            else:
                counts[message_id] += 1
        lost: list[str] = []
        duplicated: list[str] = []
        in_doubt: list[str] = []
        status_count: Counter[str] = Counter()
        for s in self.sent:
            record = records.get(s.id) or {}
            status = record.get("status", "missing")
            status_count[status] += 1
            if status not in FINAL or (status in DELIVERED and counts[s.id] == 0):
                lost.append(s.id)
            doubtful = record.get("in_doubt") == "1"
            if doubtful:
                in_doubt.append(s.id)
            if counts[s.id] > 1 and not doubtful:
                duplicated.append(s.id)
        summary = {
            "sent": len(self.sent),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "in_doubt": len(in_doubt),
            "in_doubt_duplicated": sum(1 for i in in_doubt if counts[i] > 1),
            "kills": self.kills,
            "redis_kills": self.redis_kills,
            "statuses": dict(status_count),
            "unmatched_sends": unmatched,
            "lost_ids": lost[:20],
            "duplicated_ids": duplicated[:20],
        }
        for message_id in (lost + duplicated)[:10]:
            record = records.get(message_id) or {}
            kind = next(s.kind for s in self.sent if s.id == message_id)
            self.log(
                f"{message_id} {kind} status={record.get('status', 'missing')} "
                f"sends={counts[message_id]} in_doubt={record.get('in_doubt')} "
                f"attempts={record.get('attempts')} events={record.get('events', '')[:1500]}"
            )
        return summary


def run(
    *,
    quick: bool = False,
    messages: int | None = None,
    kills: int | None = None,
    seed: int | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    """One chaos run; the summary dict (sent, lost, duplicated, in_doubt, kills, redis_kills, wall)."""
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
    if keep is None and summary["lost"] == 0 and summary["duplicated"] == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    return (
        f"sent={summary['sent']} lost={summary['lost']} duplicated={summary['duplicated']} "
        f"in_doubt={summary['in_doubt']} kills={summary['kills']} "
        f"redis_kills={summary['redis_kills']} wall={summary['wall']}s"
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
    return 1 if summary["lost"] or summary["duplicated"] else 0


if __name__ == "__main__":
    sys.exit(main())
