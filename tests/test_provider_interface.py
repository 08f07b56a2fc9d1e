"""One provider interface: a provider defined only in the tests carries SMS through the real
pipeline, core modules never compare a provider's name, and the built-in providers state
their quirks as properties and verbs of the interface."""

from __future__ import annotations

import io
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError, InvalidInput
from hudhud.worker.producer import messages
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Follow, Provider
from hudhud.worker.providers.taifa import TaifaClient
from hudhud.worker.providers.taqnyat import TaqnyatClient
from tests.fake_provider import NAME, PigeonClient, PigeonServer
from tests.stack import running_stack, wait_until

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "pg-secret-token-1"
EXTRA = {"HUDHUD_PROVIDERS_EXTRA": "tests.fake_provider", "HUDHUD_SMS_PROVIDER": NAME}
# The modules that must know no provider: everything of `worker/` but the providers'
# own package, their stand-in (the sandbox) and the dev stack that starts it, and `tasks/`.
CORE = sorted(
    {
        *ROOT.glob("worker/*.py"),
        *ROOT.glob("worker/*/*.py"),
        *ROOT.glob("tasks/*.py"),
    }
    - {*ROOT.glob("worker/providers/*.py"), *ROOT.glob("worker/sandbox/*.py")}
    - {ROOT / "worker/ops/devstack.py"}
)


@pytest.fixture()
def pigeon() -> Iterator[type[Provider]]:
    registry.register(PigeonClient)
    try:
        yield PigeonClient
    finally:
        registry.unregister(NAME)


def test_a_provider_defined_in_the_tests_carries_sms_end_to_end(
    tmp_path: Path, pigeon: type[Provider]
) -> None:
    with (
        PigeonServer(TOKEN) as server,
        running_stack(
            tmp_path, extra_env={**EXTRA, "PIGEON_URL": server.url, "PIGEON_TOKEN": TOKEN}
        ) as stack,
    ):
        receipt = stack.hudhud.send_sms("966500000123", "carried by pigeon", sender="HUDHUD")
        stack.wait_status([receipt.id], {"sent"}, timeout=60)
        record = stack.hudhud.status(receipt.id)
        assert record["provider"] == NAME and record["channel"] == "sms"
        assert record["provider_message_id"] == "pg-1"
        kinds = [e["type"] for e in record["events"]]
        assert kinds.index("queued") < kinds.index("sending") < kinds.index("sent"), kinds
        wait_until(lambda: server.sends, timeout=5)
        assert server.sends == [
            {"to": ["966500000123"], "text": "carried by pigeon", "from": "HUDHUD", "ref": receipt.id}
        ]
        assert not stack.sandbox.sends(), "nothing went to the built-in providers"


def _literals(path: Path) -> set[str]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {token.string.strip("\"'") for token in tokens if token.type == tokenize.STRING}


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_modules_never_name_a_provider(path: Path) -> None:
    named = _literals(path) & set(registry.names())
    assert not named, (
        f"{path.relative_to(ROOT)} compares or names provider {sorted(named)}: use the interface"
    )


def test_the_check_of_core_modules_would_see_a_name() -> None:
    assert CORE and len(CORE) > 15
    assert ROOT / "worker/ledger/indexes.py" in CORE, "the ledger knows no provider either"
    sample = ROOT / "worker/providers/taifa/failures.py"
    assert "taifa" in _literals(sample), "the scan reads string literals"


def test_the_providers_and_the_ledger_they_use_load_no_broker() -> None:
    """A provider module needs the ledger's statuses, never the broker (nor Celery)."""
    code = (
        "import sys, hudhud.worker.providers.taifa.tracking, hudhud.worker.ledger.campaigns\n"
        "print(sorted(m for m in sys.modules if m.startswith(('celery', 'hudhud.worker.broker'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


# --- the registry and the settings ----------------------------------------------------------


def test_a_provider_module_named_in_the_setting_routes_sms(pigeon: type[Provider]) -> None:
    settings = Settings(**EXTRA)
    request = messages.build("sms", {"to": "966500000123", "body": "hi", "sender": "HUDHUD"}, settings)
    assert request.provider == NAME
    assert registry.get(NAME) is PigeonClient


def test_a_provider_not_registered_is_refused_naming_the_choices() -> None:
    registry.unregister(NAME)  # another test of this process may have loaded it as an extra
    with pytest.raises(ValueError, match=r"one of taqnyat \["):
        Settings(HUDHUD_SMS_PROVIDER="pigeon")
    with pytest.raises(ValueError, match="one of taifa, taqnyat"):
        Settings(HUDHUD_EMAIL_PROVIDER="smtp")


def test_a_provider_that_serves_no_email_is_no_email_provider(pigeon: type[Provider]) -> None:
    with pytest.raises(ValueError, match="one of taifa, taqnyat"):
        Settings(**EXTRA, HUDHUD_EMAIL_PROVIDER=NAME)
    settings = Settings(**EXTRA)
    with pytest.raises(InvalidInput, match="must be taifa or taqnyat"):
        messages.build(
            "email", {"to": "a@example.com", "subject": "s", "text": "t", "provider": NAME}, settings
        )


def test_a_module_that_cannot_be_imported_names_the_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        registry.load_extra("tests.no_such_provider")
    assert caught.value.variable == "HUDHUD_PROVIDERS_EXTRA"


def test_registering_needs_a_name_and_channels() -> None:
    class Nameless(Provider):
        channels = frozenset({"sms"})

    with pytest.raises(ValueError, match="name"):
        registry.register(Nameless)


# --- the built-in providers' quirks, as the interface states them ---------------------------


def test_taqnyat_cannot_tell_what_it_holds_and_reports_nothing_later() -> None:
    client = TaqnyatClient("http://127.0.0.1:1", "token")
    assert not client.reconcilable({"to": ["966500000123"]})
    assert client.reconcile("m1") is None
    assert client.follow("sms", {}) is Follow.NONE and not TaqnyatClient.tracks_delivery
    assert TaqnyatClient.reports_outages and TaqnyatClient.keeps_balance
    assert TaqnyatClient.unsupported_fields("email") >= {"cc", "bcc", "attachments"}
    assert not TaqnyatClient.retries_by_id
    with pytest.raises(NotImplementedError, match="taqnyat does not retry"):
        TaqnyatClient.retry_payload("t1")


def test_taifa_is_asked_by_tag_and_follows_each_email() -> None:
    client = TaifaClient("http://127.0.0.1:1", "tfm_k_x")
    assert client.reconcilable({"to": ["a@example.com"]})
    assert not client.reconcilable({"retry_of_provider_id": "e1"}), "a retry is Taifa's own new email"
    assert client.follow("email", {}) is Follow.MESSAGE
    assert client.follow("email", {"each": True}) is Follow.RECIPIENTS
    assert TaifaClient.tracks_delivery and TaifaClient.one_per_recipient and TaifaClient.retries_by_id
    assert TaifaClient.retry_payload("e1") == {"retry_of_provider_id": "e1"}, "Taifa retries by id"
    assert TaifaClient.serves("email") and not TaifaClient.serves("sms")


def test_each_provider_names_its_batch_limit_variable() -> None:
    settings = Settings(HUDHUD_SMS_BATCH_SIZE="7", HUDHUD_TAIFA_BATCH_SIZE="3")
    assert TaqnyatClient.batch_limit(settings) == (7, "HUDHUD_SMS_BATCH_SIZE")
    assert TaifaClient.batch_limit(settings) == (3, "HUDHUD_TAIFA_BATCH_SIZE")
    assert TaqnyatClient.default_sender("voice", Settings(TAQNYAT_CALLER_ID="966500000001")) == (
        "966500000001",
        "TAQNYAT_CALLER_ID",
    )
