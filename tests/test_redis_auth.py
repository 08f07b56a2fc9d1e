"""Redis with a password, with an ACL user, and over TLS (`rediss://`): the producer API records
and enqueues, a real worker delivers to the sandbox, beat releases a parked message, and
`hudhud status` reads the record. The password never shows in logs or command output.

TLS checks the server's certificate, for the Celery broker and the ledger's client alike: a
private CA is named in the URL (`rediss://…/0?ssl_ca_certs=/path/ca.pem`), otherwise the
system's CAs are used; a certificate that the CA did not sign is refused, never accepted
without verification.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from kombu.exceptions import OperationalError

from hudhud.config import Settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.producer.api import Hudhud
from tests.helpers import RedisServer, Sandbox, TlsFiles, make_tls_files
from tests.stack import Stack

pytestmark = pytest.mark.e2e

PASSWORD = "Rd#pw@77:x/y-Secret"  # characters that must be quoted in a URL
WRONG_PASSWORD = "Wr0ng-pw-Qx51"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture()
def stacks() -> Iterator[list[tuple[Stack, RedisServer]]]:
    started: list[tuple[Stack, RedisServer]] = []
    yield started
    for stack, server in started:
        stack.stop()
        server.stop()


def stack_on(
    server: RedisServer, workdir: Path, sandbox: Sandbox, started: list[tuple[Stack, RedisServer]]
) -> Stack:
    server.start()
    stack = Stack(workdir, redis_server=server, sandbox=sandbox)
    started.append((stack, server))
    return stack


def secret_forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret)]


def assert_delivers_end_to_end(stack: Stack) -> None:
    stack.start_worker("w1")
    stack.start_beat()
    now = stack.hudhud.send_sms(["966500000701"], "over an authenticated Redis")
    due = datetime.now(UTC) + timedelta(seconds=6)
    later = stack.hudhud.send_sms(["966500000702"], "released by beat", at=due.isoformat())
    assert later.status == "scheduled"
    assert stack.redis.zscore("hudhud:scheduled", later.id) is not None, "parked until beat releases it"
    sent = stack.cli("send", "sms", "--to", "966500000703", "--body", "from the CLI", "--json")
    assert sent.returncode == 0, sent.stderr
    cli_id = json.loads(sent.stdout)["id"]
    stack.wait_status([now.id, cli_id, later.id], {"sent"}, timeout=60)
    sms_ids = {send.get("sms_id") for send in stack.sandbox.sends()}
    assert {now.id, cli_id, later.id} <= sms_ids
    status = stack.cli("status", later.id, "--json")
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["status"] == "sent" and record["attempts"] == 1
    time.sleep(1)
    beat = stack.log("beat").read_text(errors="replace")
    assert "hudhud.beat.release_due" in beat
    outputs = {"send": sent.stdout + sent.stderr, "status": status.stdout + status.stderr}
    outputs |= {name: stack.log(name).read_text(errors="replace") for name in ("w1", "beat")}
    password = stack.redis_server.password or ""
    found = [name for name, text in outputs.items() for form in secret_forms(password) if form in text]
    assert found == [], "the Redis password shows"


def test_a_password_in_the_url_works_end_to_end_and_stays_out_of_logs(
    tmp_path: Path, sandbox: Sandbox, stacks: list[tuple[Stack, RedisServer]]
) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    assert server.url.startswith("redis://:") and PASSWORD not in server.url
    stack = stack_on(server, tmp_path, sandbox, stacks)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.url_with(password="")).ping()
    assert_delivers_end_to_end(stack)


def test_an_acl_user_with_a_password_works_end_to_end(
    tmp_path: Path, sandbox: Sandbox, stacks: list[tuple[Stack, RedisServer]]
) -> None:
    server = RedisServer(tmp_path / "redis", user="hudhud-app", password=PASSWORD)
    assert server.url.startswith("redis://hudhud-app:")
    stack = stack_on(server, tmp_path, sandbox, stacks)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.url_with(user="default")).ping()
    assert_delivers_end_to_end(stack)


def test_tls_with_the_ca_named_in_the_url_works_end_to_end(
    tmp_path: Path, sandbox: Sandbox, stacks: list[tuple[Stack, RedisServer]], tls: TlsFiles
) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD, tls=tls)
    assert server.url.startswith("rediss://") and f"ssl_ca_certs={tls.ca}" in server.url
    stack = stack_on(server, tmp_path, sandbox, stacks)
    assert_delivers_end_to_end(stack)


def test_tls_refuses_a_certificate_that_the_ca_did_not_sign(
    tmp_path: Path,
    sandbox: Sandbox,
    stacks: list[tuple[Stack, RedisServer]],
    tls: TlsFiles,
    other_ca: TlsFiles,
) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD, tls=tls)
    stack_on(server, tmp_path, sandbox, stacks)
    wrong_ca = server.url_with(ca=other_ca.ca)
    system_cas = server.url.split("?")[0]  # no CA named: the system's CAs, which do not know ours
    plain = server.url.replace("rediss://", "redis://").split("?")[0]
    for url in (wrong_ca, system_cas):
        settings = Settings(redis_url=url, taqnyat_sender="HUDHUD")
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            Hudhud(settings, app=create_app(settings)).send_sms(["966500000711"], "must not be recorded")
        connection = create_app(settings).connection_for_write()
        with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        connection.release()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(plain, socket_timeout=5, socket_connect_timeout=5).ping()
    assert redis.Redis.from_url(server.url).dbsize() == 0, "nothing was recorded"

    refused = Stack(tmp_path / "wrong-ca", redis_server=server, sandbox=sandbox)
    refused.workdir.mkdir()
    stacks.append((refused, server))
    refused.env["HUDHUD_REDIS_URL"] = wrong_ca
    sent = refused.cli("send", "sms", "--to", "966500000712", "--body", "x")
    assert sent.returncode == 1 and "cannot reach Redis" in sent.stderr, sent.stderr
    refused.start_beat()
    refused.wait_log("beat", "CERTIFICATE_VERIFY_FAILED", timeout=60)
    refused._spawn("w1", ["worker", "-P", "solo", "-n", "w1@%h"])
    refused.wait_log("w1", "CERTIFICATE_VERIFY_FAILED", timeout=60)
    assert " ready." not in refused.log("w1").read_text(errors="replace")
    for name in ("w1", "beat"):
        text = refused.log(name).read_text(errors="replace")
        assert not [form for form in secret_forms(PASSWORD) if form in text], f"password in {name} log"


def test_a_wrong_password_is_refused_with_a_clear_line_and_never_shown(
    tmp_path: Path, sandbox: Sandbox, stacks: list[tuple[Stack, RedisServer]]
) -> None:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    stack = stack_on(server, tmp_path, sandbox, stacks)
    stack.env["HUDHUD_REDIS_URL"] = server.url_with(password=WRONG_PASSWORD)
    stack.start_beat()
    stack._spawn("w1", ["worker", "-P", "solo", "-n", "w1@%h"])
    stack.wait_log("beat", "invalid username-password pair", timeout=60)
    stack.wait_log("w1", "invalid username-password pair", timeout=60)
    for name in ("w1", "beat"):
        text = stack.log(name).read_text(errors="replace")
        for secret in (PASSWORD, WRONG_PASSWORD):
            assert not [form for form in secret_forms(secret) if form in text], f"password in {name} log"
    message_id = "6f1c0d4e-0000-4000-8000-000000000001"
    for args in (
        ["send", "sms", "--to", "966500000721", "--body", "x"],
        ["status", message_id],
        ["status", message_id, "--json"],
        ["cancel", message_id],
    ):
        result = stack.cli(*args)
        output = result.stdout + result.stderr
        assert result.returncode == 1, (args, result.returncode, output[-2000:])
        assert "Traceback" not in output, f"{args}: {output[-2000:]}"
        assert len([line for line in output.splitlines() if line.strip()]) == 1, f"{args}: {output}"
        assert "Redis" in output, f"{args}: {output}"
        assert not [form for form in secret_forms(WRONG_PASSWORD) if form in output], args
