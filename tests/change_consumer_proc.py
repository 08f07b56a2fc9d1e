"""A change consumer in a process of its own, to be killed: `python -m tests.change_consumer_proc
URL GROUP CONSUMER SEEN HANG_AT`. It reads one batch; its handler pushes each change's entry
id to the list SEEN and, at the HANG_AT-th change, hangs (until it is killed)."""

from __future__ import annotations

import sys
import time

import redis

from hudhud.worker.ledger.changes import Change, ChangeConsumer


def main(url: str, group: str, consumer: str, seen: str, hang_at: int) -> None:
    client = redis.Redis.from_url(url)

    def handle(change: Change) -> None:
        count = client.rpush(seen, change.entry)
        if count >= hang_at:
            time.sleep(3600)

    ChangeConsumer(client, group, consumer, handle, start="0", batch=100, block=0).run_once()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
