"""The operator page against a real `hudhud api`, worker and beat, the sandbox and
redis-server: a few SMS sent, an email rejected, a campaign, Taqnyat paused by an outage its
status page reports (in words holding a number and an address) and an SMS held by it. The
page and its JSON say so, a headless Chromium renders it, and no number, address or body
is in either."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from hudhud.worker.ledger.keys import balance_key
from tests.stack import Stack, running_stack, wait_until
from tests.test_api import Api

pytestmark = pytest.mark.e2e

OPS_KEY = "k-ops-page-4c8e1a7f2b"
SENT_TO = ["966500000701", "966500000702", "966500000703"]
CAMPAIGN_TO = ["966500000711", "966500000712", "966500000713"]
HELD_TO = "966500000777"
HELD_SHOWN = "9665••••0777"
REJECTED_TO = "reject-ops@example.com"
BODY = "ops page code 4412"
SUBJECT = "ops page subject"
OUTAGE_NUMBER = "966512345678"
OUTAGE_ADDRESS = "ops.desk@example.com"
OUTAGE_WORDS = f"Maintenance until 14:00, call {OUTAGE_NUMBER} or write to {OUTAGE_ADDRESS}"
HELD_KEY = "ops-held-1"
HELD_REFERENCE = "ops-ref-1"
PLAIN = [*SENT_TO, *CAMPAIGN_TO, HELD_TO, REJECTED_TO, OUTAGE_NUMBER, OUTAGE_ADDRESS, BODY, SUBJECT]


@dataclass(frozen=True)
class Scene:
    stack: Stack
    url: str
    api: Api
    sent: list[str]
    rejected: str
    campaign: str
    held: str


def _posted(api: Api, path: str, body: dict[str, Any]) -> str:
    answer = api.post(path, json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _final(api: Api, message_id: str) -> bool:
    return bool(api.get(f"/v1/messages/{message_id}", timeout=10).json().get("final"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with running_stack(tmp_path_factory.mktemp("ops-page"), knobs={"progress_seconds": 0.2}) as stack:
        url = stack.start_api(extra_env={"HUDHUD_API_KEYS": f"ops:{OPS_KEY}"})
        with Api(url, OPS_KEY) as api:
            sent = [_posted(api, "/v1/messages/sms", {"to": [n], "body": BODY}) for n in SENT_TO]
            rejected = _posted(
                api, "/v1/messages/email", {"to": [REJECTED_TO], "subject": SUBJECT, "text": BODY}
            )
            campaign = _posted(api, "/v1/campaigns", {"channel": "sms", "to": CAMPAIGN_TO, "body": BODY})
            stack.wait_status(sent, {"sent"})
            stack.wait_status([rejected], {"rejected"})
            wait_until(lambda: _final(api, campaign), timeout=60)
            stack.sandbox.knobs(outage=True, outage_description=OUTAGE_WORDS)
            wait_until(lambda: stack.ledger.pause_reason("taqnyat"), timeout=30)
            held = _posted(
                api,
                "/v1/messages/sms",
                {"to": [HELD_TO], "body": BODY, "key": HELD_KEY, "reference": HELD_REFERENCE},
            )
            wait_until(lambda: stack.ledger.held_count("taqnyat") == 1, timeout=30)
            wait_until(lambda: stack.redis.exists(balance_key("taqnyat")), timeout=30)
            yield Scene(stack, url, api, sent, rejected, campaign, held)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _data(scene: Scene, **query: str) -> dict[str, Any]:
    answer = scene.api.get("/ops/data", params=query, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# --- (a) who may read it -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ops", "/ops/data"])
def test_without_a_key_the_page_asks_for_basic_auth(scene: Scene, path: str) -> None:
    refused = [
        requests.get(scene.url + path, timeout=10),
        requests.get(scene.url + path, headers={"Authorization": "Bearer not-a-key"}, timeout=10),
        requests.get(scene.url + path, headers=_basic("ops", "not-a-key"), timeout=10),
        requests.get(scene.url + path, headers=_basic(OPS_KEY, ""), timeout=10),
        requests.get(scene.url + path, headers={"Authorization": "Basic %%%"}, timeout=10),
    ]
    for answer in refused:
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Basic ")
        assert OPS_KEY not in answer.text
    for headers in ({"Authorization": f"Bearer {OPS_KEY}"}, _basic("ops", OPS_KEY), _basic("amina", OPS_KEY)):
        answer = requests.get(scene.url + path, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Cache-Control"] == "no-store"


# --- (b) the figures ----------------------------------------------------------------------


def test_the_data_has_the_providers_queues_and_last_hour(scene: Scene) -> None:
    data = _data(scene)
    providers = {p["name"]: p for p in data["providers"]}
    taqnyat, taifa = providers["taqnyat"], providers["taifa"]
    assert taqnyat["paused"] and taqnyat["held"] == 1 and taqnyat["since"]
    assert "9665••••5678" in taqnyat["why"] and "o•••@example.com" in taqnyat["why"]
    assert taqnyat["balance"]["amount"] and taqnyat["balance"]["currency"] == "SAR"
    assert not taifa["paused"] and taifa["held"] == 0 and taifa["why"] is None
    queues = {q["name"]: q for q in data["queues"]}
    assert {"sms", "email", "voice", "sms.bulk"} <= set(queues)
    assert queues["sms"]["lane"] == "transactional" and queues["sms.bulk"]["lane"] == "bulk"
    hour = data["last_hour"]
    assert len(hour["minutes"]) == 60
    assert hour["sent"] == len(SENT_TO) + 1, "three SMS and the campaign's one batch"
    assert hour["failed"] == 1
    assert sum(m["sent"] for m in hour["minutes"]) == hour["sent"]
    assert sum(m["failed"] for m in hour["minutes"]) == hour["failed"]
    failures = {f["id"]: f for f in data["failures"]}
    assert failures[scene.rejected]["status"] == "rejected"
    assert failures[scene.rejected]["channel"] == "email" and failures[scene.rejected]["provider"] == "taifa"
    assert data["in_doubt"] == [] and data["lookup"] is None


def test_a_message_is_found_by_key_reference_and_id(scene: Scene) -> None:
    by_key = _data(scene, by="key", q=HELD_KEY)["lookup"]
    assert [row["id"] for row in by_key["ids"]] == [scene.held]
    held = by_key["record"]
    assert held["id"] == scene.held and held["status"] == "queued" and held["to"] == [HELD_SHOWN]
    assert held["key"] == HELD_KEY and held["reference"] == HELD_REFERENCE
    assert [e["type"] for e in held["events"]] == ["queued"]
    by_reference = _data(scene, by="reference", q=HELD_REFERENCE)["lookup"]
    assert [row["id"] for row in by_reference["ids"]] == [scene.held]
    rejected = _data(scene, by="id", q=scene.rejected)["lookup"]["record"]
    assert rejected["status"] == "rejected" and rejected["channel"] == "email"
    assert rejected["to"] is None, "the payload was erased when it ended"
    nothing = _data(scene, by="key", q="no-such-key")["lookup"]
    assert nothing["ids"] == [] and nothing["record"] is None


def test_a_campaign_looked_up_shows_its_progress(scene: Scene) -> None:
    shown = _data(scene, by="id", q=scene.campaign)["lookup"]["record"]
    assert shown["kind"] == "campaign" and shown["final"]
    assert shown["recipients"] == len(CAMPAIGN_TO)
    assert shown["handed_over"] == len(CAMPAIGN_TO) and shown["failed"] == 0
    assert shown["recipient_counts"]["sent"] == len(CAMPAIGN_TO)


def test_what_comes_from_outside_is_escaped(scene: Scene) -> None:
    hostile = '<script>alert("x")</script>'
    answer = scene.api.get("/ops", params={"by": "reference", "q": hostile}, timeout=30)
    assert answer.status_code == 200
    assert hostile not in answer.text and "&lt;script&gt;alert(&quot;x&quot;)" in answer.text
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")


# --- (c) a browser renders it ---------------------------------------------------------------


def chromium(target: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={workdir / 'profile'}",
            "--window-size=1280,1600",
            *args,
            target,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
    )


def page_url(scene: Scene, query: str = "") -> str:
    return scene.url.replace("http://", f"http://ops:{OPS_KEY}@") + "/ops" + query


def test_chromium_renders_the_page_with_basic_auth(scene: Scene, tmp_path: Path) -> None:
    target = page_url(scene, f"?by=key&q={HELD_KEY}")
    # 12 s of the page's own time: its refresh (every 10 s) has run once by the dump.
    dumped = chromium(target, tmp_path, "--virtual-time-budget=12000", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    for words in ("taqnyat", "taifa", "paused", "sms.bulk", "email", "The last hour", HELD_SHOWN, scene.held):
        assert words in dom, words
    assert 'data-refreshes="' in dom, "the page read itself again"
    assert "<svg" in dom and 'class="failed"' in dom
    shot = tmp_path / "ops.png"
    pictured = chromium(target, tmp_path, f"--screenshot={shot}")
    assert pictured.returncode == 0, pictured.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


# --- (d) nothing personal -------------------------------------------------------------------


def test_no_number_address_or_body_is_shown(scene: Scene, tmp_path: Path) -> None:
    lookups = [
        {},
        {"by": "key", "q": HELD_KEY},
        {"by": "reference", "q": HELD_REFERENCE},
        *({"by": "id", "q": i} for i in (*scene.sent, scene.rejected, scene.campaign, scene.held)),
    ]
    texts = []
    for query in lookups:
        texts.append(scene.api.get("/ops", params=query, timeout=30).text)
        texts.append(json.dumps(_data(scene, **query), ensure_ascii=False))
    dumped = chromium(page_url(scene, f"?by=key&q={HELD_KEY}"), tmp_path, "--dump-dom")
    texts.append(dumped.stdout)
    assert HELD_SHOWN in texts[2] and HELD_SHOWN in dumped.stdout
    for text in texts:
        for plain in PLAIN:
            assert plain not in text, plain


# --- the masking itself ---------------------------------------------------------------------


def test_numbers_addresses_and_words_are_masked() -> None:
    from hudhud.worker.web.ops_page import masking

    assert masking.number("966500000777") == HELD_SHOWN
    assert masking.number("123456") == "1••••6" and masking.number("12") == "••••"
    assert masking.address("someone@example.com") == "s•••@example.com"
    assert masking.recipients(["966500000777", "a.b@example.com"]) == [HELD_SHOWN, "a•••@example.com"]
    words = masking.words(f"call {OUTAGE_NUMBER}, ticket 4455667, code 12345, or {OUTAGE_ADDRESS}")
    assert words == "call 9665••••5678, ticket 4••••7, code 12345, or o•••@example.com"
