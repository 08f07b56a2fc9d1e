"""The suppression list end to end: real `hudhud worker` and `hudhud beat` processes,
redis-server and the sandbox, the list managed with `hudhud suppress`. Listed recipients are
dropped at the claim (or the message ends `suppressed`), a hard bounce Taifa reports to beat's
poller lists its address, a campaign drops listed recipients when it is planned, and no log
names a listed value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hudhud.worker.ledger.status import Status
from tests.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

KEPT = "kept.person@example.com"
COPY = "copy.person@example.com"
LISTED = "listed.person@example.com"
LISTED_COPY = "listed.copy@example.com"
ALL_LISTED = ("listed.one@example.com", "listed.two@example.com")
BOUNCING = "bounce-learned@example.com"
LISTED_NUMBER = "966500000555"
CAMPAIGN_LISTED = ("966500000601", "966500000602")
CAMPAIGN_KEPT = ("966500000603", "966500000604", "966500000605", "966500000606")
# every number and address the list holds by the end, and those sent to: no log names one
LISTED_VALUES = (LISTED, LISTED_COPY, *ALL_LISTED, BOUNCING, LISTED_NUMBER, *CAMPAIGN_LISTED)
RECIPIENTS = (*LISTED_VALUES, KEPT, COPY, *CAMPAIGN_KEPT)
EMAIL_ENDS = {Status.SENT.value, Status.DELIVERED.value}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("suppression-e2e"), knobs={"progress_seconds": 0.2}) as made:
        yield made


def suppress(stack: Stack, *values: str) -> dict[str, Any]:
    run = stack.cli("suppress", "add", *values, "--reason", "asked to stop", "--json")
    assert run.returncode == 0, run.stderr
    assert not [v for v in values if v in run.stdout + run.stderr], "the answer names no value"
    return dict(json.loads(run.stdout))


def listed(stack: Stack, value: str) -> dict[str, Any]:
    """`hudhud suppress list VALUE --json`: the row of that one value."""
    run = stack.cli("suppress", "list", value, "--json")
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout)["values"][0])


def events_of(stack: Stack, message_id: str, kind: str) -> list[dict[str, Any]]:
    record = stack.hudhud.status(message_id)
    return [e for e in record["events"] if e["type"] == kind]


def handed_over(stack: Stack) -> list[str]:
    return [str(r) for s in stack.sandbox.sends() for r in s["recipients"]]  # type: ignore[attr-defined]


def test_listed_recipients_are_dropped_and_the_rest_are_sent(stack: Stack) -> None:
    assert suppress(stack, LISTED.upper(), LISTED_COPY)["added"] == 2
    sent = stack.hudhud.send_email(
        to=[KEPT, LISTED], cc=[COPY, LISTED_COPY], subject="your receipt", text="thanks"
    )
    stack.wait_status([sent.id], EMAIL_ENDS)
    record = stack.hudhud.status(sent.id)
    handed = {str(s["provider_message_id"]): s for s in stack.sandbox.sends()}
    assert handed[record["provider_message_id"]]["recipients"] == [KEPT]
    dropped = events_of(stack, sent.id, "recipients_suppressed")
    assert [e["count"] for e in dropped] == [2], "one listed to and one listed cc"


def test_a_message_whose_every_recipient_is_listed_ends_suppressed(stack: Stack) -> None:
    suppress(stack, *ALL_LISTED)
    sent = stack.hudhud.send_email(to=list(ALL_LISTED), cc=[COPY], subject="nobody gets this", text="hello")
    stack.wait_status([sent.id], {Status.SUPPRESSED.value})
    record = stack.hudhud.status(sent.id)
    assert record["final"] and record["provider_message_id"] is None and record["attempts"] == 0
    assert "suppressed" in (record["error"] or "")
    assert all(s["subject"] != "nobody gets this" for s in stack.sandbox.sends())


def test_a_hard_bounce_from_taifa_lists_the_address(stack: Stack) -> None:
    first = stack.hudhud.send_email(to=[BOUNCING], subject="welcome", text="hello")
    stack.wait_status([first.id], {Status.BOUNCED.value}, timeout=60)  # beat's poller saw it
    entry: dict[str, Any] = wait_until(lambda: (row := listed(stack, BOUNCING))["listed"] and row)
    assert (entry["source"], entry["kind"], entry["message"]) == ("bounce", "address", first.id)
    assert events_of(stack, first.id, "suppression_added")

    later = stack.hudhud.send_email(to=[BOUNCING.upper()], subject="come back", text="hello")
    stack.wait_status([later.id], {Status.SUPPRESSED.value})
    assert [s["subject"] for s in stack.sandbox.sends()].count("come back") == 0


def test_a_listed_number_is_suppressed_for_sms(stack: Stack) -> None:
    suppress(stack, "+" + LISTED_NUMBER)
    assert listed(stack, "00" + LISTED_NUMBER)["listed"] is True
    sent = stack.hudhud.send_sms(to=[LISTED_NUMBER], body="your code is 7731")
    stack.wait_status([sent.id], {Status.SUPPRESSED.value})
    assert LISTED_NUMBER not in handed_over(stack)


def test_a_campaign_drops_and_counts_listed_recipients_when_planned(stack: Stack) -> None:
    suppress(stack, *CAMPAIGN_LISTED)
    receipt = stack.hudhud.send_campaign(
        "sms", {"to": [*CAMPAIGN_LISTED, *CAMPAIGN_KEPT], "body": "spring sale"}
    )
    assert (receipt.recipients, receipt.suppressed) == (4, 2)
    summary: dict[str, Any] = wait_until(
        lambda: (shown := stack.hudhud.status(receipt.id))["final"] and shown, timeout=60
    )
    assert (summary["status"], summary["recipients"], summary["suppressed"]) == ("sent", 4, 2)
    assert summary["recipient_counts"]["sent"] == 4
    assert summary["events"][0]["suppressed"] == 2, "counted when it was planned"
    batches = [s["recipients"] for s in stack.sandbox.sends() if s["body"] == "spring sale"]
    assert batches == [list(CAMPAIGN_KEPT)]


def test_no_log_names_a_listed_or_any_other_recipient(stack: Stack) -> None:
    # after the sends above (their suppressions and the bounce) and one more of each kind
    email = stack.hudhud.send_email(to=[LISTED], subject="again", text="hello")
    sms = stack.hudhud.send_sms(to=[LISTED_NUMBER], body="again")
    stack.wait_status([email.id, sms.id], {Status.SUPPRESSED.value})
    for name in ("w1", "beat"):
        text = stack.log(name).read_text(errors="replace").lower()
        assert email.id in text or name == "beat", "the log is the worker's"
        named = [value for value in RECIPIENTS if value.lower() in text]
        assert named == [], f"{name}.log names {len(named)} recipients"
