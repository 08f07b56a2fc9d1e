"""Email failover between Taifa Mail and Taqnyat, end to end: real redis-server, the sandbox
over HTTP (its `fault_provider` knob aims the faults at one provider), `hudhud worker` and
`hudhud beat`. What each email was sent by is read from the sandbox's record of sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hudhud.worker.ledger import Status
from hudhud.worker.ledger.calls import failover_stats
from hudhud.worker.ledger.keys import PREFIX, events_key
from hudhud.worker.producer.api import Hudhud
from tests.stack import Stack, idle_stack, running_stack, wait_until

MAX_ATTEMPTS = 2
# As many failed calls as one email's attempts: its retries are spent before the share trips.
SMALL = {"HUDHUD_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "HUDHUD_FAILOVER_MIN_CALLS": str(MAX_ATTEMPTS)}
DONE: set[str] = {Status.SENT, Status.DELIVERED}
TAIFA_DOWN = {"fault_provider": "taifa", "error_rate_5xx": 1}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("failover"), concurrency=4, extra_env=SMALL) as running:
        yield running


@pytest.fixture()
def clean(stack: Stack) -> Stack:
    """The sandbox reset, and no call outcome or pause left by an earlier case."""
    stack.sandbox.reset()
    forget_calls(stack)
    for name in ("taifa", "taqnyat"):
        stack.ledger.resume(name)
    return stack


def forget_calls(stack: Stack) -> None:
    for key in stack.redis.scan_iter(f"{PREFIX}calls:*"):
        stack.redis.delete(key)


def send(stack: Stack, producer: Hudhud | None = None, **fields: Any) -> tuple[str, str]:
    """An email with a subject of its own: (message id, subject)."""
    subject = f"failover {uuid.uuid4().hex[:12]}"
    receipt = (producer or stack.hudhud).send_email("amina@example.com", subject, text="Hi", **fields)
    return receipt.id, subject


def sent_by(stack: Stack, subject: str) -> list[str]:
    """The providers that accepted the email with this subject, one entry per acceptance."""
    return [str(entry["provider"]) for entry in stack.sandbox.sends() if entry["subject"] == subject]


def events(stack: Stack, message_id: str) -> list[dict[str, Any]]:
    raw = stack.redis.lrange(events_key(message_id), 0, -1)
    texts = [e.decode() if isinstance(e, bytes) else e for e in raw]
    return [json.loads(text) for text in texts if text.startswith("{")]


def moves(stack: Stack, message_id: str) -> list[dict[str, Any]]:
    return [e for e in events(stack, message_id) if e["type"] == "failover"]


def done(stack: Stack, message_id: str) -> None:
    stack.wait_status([message_id], DONE, timeout=45)


def tries(stack: Stack, message_id: str) -> int:
    """Tries that sent nothing (a 502 or 503) plus those that may have sent something."""
    fields = (stack.ledger.field(message_id, name) for name in ("free_tries", "attempts"))
    return sum(int(value or 0) for value in fields)


def test_an_outage_sends_new_email_by_the_other_provider(clean: Stack) -> None:
    stack = clean
    by_taqnyat = Hudhud(stack.settings.model_copy(update={"email_provider": "taqnyat"}), app=stack.app)
    stack.sandbox.knobs(outage=True)
    wait_until(lambda: stack.ledger.pause_reason("taqnyat"), timeout=20)
    during, subject = send(stack, by_taqnyat)
    done(stack, during)
    assert sent_by(stack, subject) == ["taifa"]
    [move] = moves(stack, during)
    assert (move["from"], move["to"]) == ("taqnyat", "taifa") and move["reason"] in ("outage", "paused")
    stack.sandbox.knobs(outage=False)
    wait_until(lambda: stack.ledger.pause_reason("taqnyat") is None, timeout=20)
    after, subject = send(stack, by_taqnyat)
    done(stack, after)
    assert sent_by(stack, subject) == ["taqnyat"] and moves(stack, after) == []


def test_spent_retries_move_the_email_which_goes_out_at_once(clean: Stack) -> None:
    stack = clean
    stack.sandbox.knobs(**TAIFA_DOWN)
    mid, subject = send(stack)
    done(stack, mid)
    assert sent_by(stack, subject) == ["taqnyat"]  # once, and never by Taifa
    history = events(stack, mid)
    [move] = moves(stack, mid)
    assert (move["from"], move["to"], move["reason"]) == ("taifa", "taqnyat", "retries spent")
    before = history[: history.index(move)]
    retries = [e for e in before if e["type"] == "retry"]
    assert len(retries) == MAX_ATTEMPTS
    assert retries[-1]["delay"] == 0  # handed over without one more back-off
    assert not [e for e in history[history.index(move) :] if e["type"] == "retry"]
    assert stack.ledger.field(mid, "provider") == "taqnyat"
    assert stack.sandbox.answers().get("taifa 201", 0) == 0


def test_a_failing_provider_sends_new_email_straight_to_the_other(clean: Stack) -> None:
    stack = clean
    stack.sandbox.knobs(**TAIFA_DOWN)
    first, _ = send(stack)
    done(stack, first)  # its failed calls on Taifa trip the share
    assert stack.sandbox.answers().get("taifa 503", 0) + stack.sandbox.answers().get("taifa 502", 0) > 0
    fresh, subject = send(stack)
    done(stack, fresh)
    assert sent_by(stack, subject) == ["taqnyat"]
    history = events(stack, fresh)
    [move] = moves(stack, fresh)
    assert (move["from"], move["to"], move["reason"]) == ("taifa", "taqnyat", "failures")
    assert not [e for e in history if e["type"] in ("retry", Status.IN_DOUBT)]  # first try on Taqnyat
    assert stack.ledger.field(fresh, "attempts") == "1"


def test_a_pinned_email_never_moves(clean: Stack) -> None:
    stack = clean
    stack.sandbox.knobs(**TAIFA_DOWN)
    pinned, subject = send(stack, provider="taifa")
    # past its attempts and with Taifa failing: an unpinned email would have moved by now
    wait_until(lambda: tries(stack, pinned) > MAX_ATTEMPTS + 1, timeout=45)
    assert stack.ledger.field(pinned, "provider") == "taifa" and moves(stack, pinned) == []
    assert sent_by(stack, subject) == []
    stack.sandbox.knobs(error_rate_5xx=0)
    done(stack, pinned)
    assert sent_by(stack, subject) == ["taifa"] and moves(stack, pinned) == []


def test_a_lost_reply_is_never_moved(clean: Stack) -> None:
    stack = clean
    stack.sandbox.knobs(fault_provider="taifa", fault_after_accept=1)
    lost = []
    for _ in range(MAX_ATTEMPTS):  # the second one's reply is lost when Taifa is already failing
        mid, subject = send(stack)
        done(stack, mid)
        lost.append((mid, subject))
    for mid, subject in lost:
        assert sent_by(stack, subject) == ["taifa"]  # found by asking Taifa, never sent by both
        assert moves(stack, mid) == [] and stack.ledger.field(mid, "provider") == "taifa"
        assert any(e["type"] == Status.IN_DOUBT for e in events(stack, mid))
    fresh, subject = send(stack)  # Taifa counts as failing: a new email does move
    done(stack, fresh)
    assert sent_by(stack, subject) == ["taqnyat"] and moves(stack, fresh)[0]["reason"] == "failures"


def test_check_shows_the_moves(clean: Stack) -> None:
    stack = clean
    # Taifa reports no outages of its own: a pause of that kind stays until it is lifted here
    stack.ledger.pause("taifa", {"kind": "outage", "error": "maintenance"})
    try:
        mid, subject = send(stack)
        done(stack, mid)
    finally:
        stack.ledger.resume("taifa")
    assert sent_by(stack, subject) == ["taqnyat"]
    stats = failover_stats(stack.ledger)
    assert stats.get("taifa>taqnyat:outage", 0) >= 1
    report = stack.cli("check", "--json")
    assert json.loads(report.stdout)["failover"] == stats, report.stderr
    text = stack.cli("check").stdout
    for move, count in stats.items():
        assert any(line.split() == [*move.split(), str(count)] for line in text.splitlines()), text


def test_nothing_moves_with_failover_off(tmp_path: Path) -> None:
    env = {**SMALL, "HUDHUD_EMAIL_FAILOVER": "0"}
    with idle_stack(tmp_path, extra_env=env, knobs=TAIFA_DOWN) as stack:
        stack.start_worker("w1", concurrency=2)
        mid, subject = send(stack)
        wait_until(lambda: tries(stack, mid) > MAX_ATTEMPTS + 1, timeout=45)
        assert stack.ledger.field(mid, "provider") == "taifa" and moves(stack, mid) == []
        assert list(stack.redis.scan_iter(f"{PREFIX}calls:*")) == []  # not even counted
        stack.sandbox.knobs(error_rate_5xx=0)
        done(stack, mid)
        assert sent_by(stack, subject) == ["taifa"] and failover_stats(stack.ledger) == {}
