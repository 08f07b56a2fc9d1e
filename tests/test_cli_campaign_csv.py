"""`hudhud campaign sms|email|voice --csv FILE` end to end: a real redis-server, the sandbox
over HTTP, a real `hudhud worker`, the command run as a subprocess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hudhud.worker.ledger import keys
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("campaign-csv"), beat=False) as made:
        yield made


def number(seed: int) -> str:
    return f"9665{seed:08d}"


def write_csv(folder: Path, name: str, header: str, rows: list[str]) -> str:
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def recorded(stack: Stack) -> tuple[int, int]:
    """(message records, change stream entries)."""
    records = sum(1 for _ in stack.redis.scan_iter(keys.msg_key("*"), count=1000))
    return records, int(stack.redis.xlen(keys.CHANGES)) if stack.redis.exists(keys.CHANGES) else 0


def test_a_csv_of_fifty_numbers_is_handed_over_and_summed_up(stack: Stack, tmp_path: Path) -> None:
    rows = [f"{number(1000 + i)},Amina {i}" for i in range(50)]
    path = write_csv(tmp_path, "fifty.csv", "to,name", rows)
    done = stack.cli("campaign", "sms", "--csv", path, "--body", "Sale tomorrow")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = dict(re.findall(r"^\s*(\w+)\s+(\S+)", done.stdout, re.MULTILINE))
    assert shown["status"] == "sent" and shown["recipients"] == "50" and shown["sent"] == "50"
    assert "pending" not in shown
    summary = stack.hudhud.status(shown["id"])
    assert summary["final"] and summary["recipient_counts"]["sent"] == 50
    assert "not used: name" in done.stderr  # the other column is named as unused
    assert "recipients: 50/50" in done.stderr  # the hand-over bar ran to the end
    calls = [s["recipients"] for s in stack.sandbox.sends() if number(1000) in s["recipients"]]  # type: ignore[operator]
    assert calls == [[number(1000 + i) for i in range(50)]]  # one provider call, every row


def test_json_prints_one_line_with_the_final_counts(stack: Stack, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "json.csv", "To", [number(2000 + i) for i in range(20)] + [number(2000)])
    done = stack.cli("campaign", "sms", "--csv", path, "--body", "hello", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and done.stderr == ""  # no bars
    answer = json.loads(lines[0])
    assert answer["rows"] == 21 and answer["recipients"] == 20  # the repeated number sent once
    assert answer["final"] is True and answer["status"] == "sent"
    assert answer["recipient_counts"]["sent"] == 20 and answer["recipient_counts"]["pending"] == 0


def test_a_bad_row_is_named_and_nothing_is_recorded(stack: Stack, tmp_path: Path) -> None:
    rows = [number(3000 + i) for i in range(30)]
    rows[15] = "+966500000000"  # the 16th recipient: row 17, the header being row 1
    path = write_csv(tmp_path, "bad.csv", "to", rows)
    before = recorded(stack)
    done = stack.cli("campaign", "sms", "--csv", path, "--body", "hello")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: row 17: to: must be in international format without '+' (e.g. 966500000000)"
    )
    as_json = stack.cli("campaign", "sms", "--csv", path, "--body", "hello", "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) | {"error": ""} == {"error": "", "field": "to", "row": 17}
    assert recorded(stack) == before


def test_a_bad_address_is_named_by_its_row(stack: Stack, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "mail.csv", "name,to", ["a,a@example.com", "b,", "c,c@example.com"])
    before = recorded(stack)
    done = stack.cli("campaign", "email", "--csv", path, "--subject", "Hi", "--text", "hello", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {"error": "row 3: to: is empty", "field": "to", "row": 3}
    typo = write_csv(tmp_path, "typo.csv", "to", ["a@example.com", "not-an-address"])
    done = stack.cli("campaign", "email", "--csv", typo, "--subject", "Hi", "--text", "hello")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "error: row 3: to: is not a valid email address"
    assert "not-an-address" not in done.stderr  # the value is never echoed
    assert recorded(stack) == before


def test_a_file_without_a_to_column_or_recipients_is_refused(stack: Stack, tmp_path: Path) -> None:
    before = recorded(stack)
    no_column = write_csv(tmp_path, "phone.csv", "phone,name", [f"{number(4000)},Amina"])
    done = stack.cli("campaign", "sms", "--csv", no_column, "--body", "hello")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "error: csv: has no `to` column in its header row"
    header_only = write_csv(tmp_path, "empty.csv", "to", [])
    done = stack.cli("campaign", "sms", "--csv", header_only, "--body", "hello", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["field"] == "to"
    missing = stack.cli("campaign", "sms", "--csv", str(tmp_path / "nowhere.csv"), "--body", "x", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["field"] == "csv"
    assert recorded(stack) == before


def test_no_follow_prints_the_id_of_a_large_campaign(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    path.write_text("to\n" + "".join(f"{number(10**6 + i)}\n" for i in range(100_000)))
    done = stack.cli("campaign", "sms", "--csv", str(path), "--body", "hello", "--no-follow", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["recipients"] == 100_000 and answer["batches"] == 100 and "final" not in answer
    assert stack.hudhud.status(answer["id"])["recipients"] == 100_000
    stack.hudhud.cancel(answer["id"])  # the batches not yet handed over


def test_a_scheduled_campaign_is_recorded_and_not_followed(stack: Stack, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "later.csv", "to", [number(5000 + i) for i in range(5)])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    done = stack.cli(
        "campaign", "voice", "--csv", path, "--audio-url", "https://example.com/a.mp3", "--at", later
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [campaign_id] = done.stdout.split()
    summary = stack.hudhud.status(campaign_id)
    assert summary["status"] == "scheduled" and summary["recipients"] == 5 and summary["channel"] == "voice"
    stack.hudhud.cancel(campaign_id)
