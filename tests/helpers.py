"""Real servers for tests: a private redis-server and the provider sandbox, each on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

SANDBOX_TAQNYAT_TOKEN = "test-taqnyat-token-7d1f"
SANDBOX_TAIFA_KEY = "tfm_k_test_51c2e9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass(frozen=True)
class TlsFiles:
    """A certificate authority and a server certificate it signed (for 127.0.0.1 and localhost)."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA and a server certificate signed by it, made with the `openssl` command."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=hudhud test CA {folder.name}", "-keyout", ca_key, "-out", ca,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key, "-out", csr)
    extensions = folder / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-out", cert, "-extfile", extensions,
    )  # fmt: skip
    return TlsFiles(ca=ca, cert=cert, key=key)


class RedisServer:
    """A redis-server on a private port with its own data folder (AOF optional).

    `password` alone sets `requirepass`; with `user` it makes that ACL user (all commands and
    keys) and turns the default user off. `tls` serves TLS only, on `port`. `extra_args` are
    further redis-server options (e.g. `["--maxmemory-policy", "allkeys-lru"]`), given last.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aof: bool = False,
        port: int | None = None,
        password: str | None = None,
        user: str | None = None,
        tls: TlsFiles | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on the PATH (apt-get install redis-server)")
        if user is not None and password is None:
            raise ValueError("an ACL user needs a password")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        self.aof = aof
        self.password = password
        self.user = user
        self.tls = tls
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.url_with()

    def url_with(
        self, *, user: str | None = None, password: str | None = None, ca: Path | None = None
    ) -> str:
        """The URL of this server, with other credentials or another CA file when given."""
        user = user if user is not None else self.user
        password = password if password is not None else self.password
        credentials = ""
        if password is not None:
            credentials = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
        if self.tls is None:
            return f"redis://{credentials}127.0.0.1:{self.port}/0"
        ca_file = quote(str(ca or self.tls.ca), safe="/")
        return f"rediss://{credentials}127.0.0.1:{self.port}/0?ssl_ca_certs={ca_file}"

    def start(self) -> RedisServer:
        if self.tls is None:
            listen = ["--port", str(self.port)]
        else:
            listen = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no",
            ]  # fmt: skip
        if self.user is not None:
            listen += ["--user", "default", "off", "--user", self.user, "on", f">{self.password}"]
            listen += ["~*", "&*", "+@all"]
        elif self.password is not None:
            listen += ["--requirepass", self.password]
        args = [
            self.binary,
            *listen,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Sandbox:
    """`python -m hudhud.worker.sandbox` on a private port, with the test tokens."""

    def __init__(
        self, port: int | None = None, extra_args: list[str] | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def taifa_url(self) -> str:
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        return {
            "TAQNYAT_BASE_URL": self.url,
            "TAIFA_BASE_URL": self.taifa_url,
            "TAQNYAT_TOKEN": SANDBOX_TAQNYAT_TOKEN,
            "TAIFA_API_KEY": SANDBOX_TAIFA_KEY,
        }

    def start(self) -> Sandbox:
        env = {**os.environ, **self.env()}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hudhud.worker.sandbox", "--port", str(self.port), *self.extra_args],
            env=env,
            stdout=out,
            stderr=out,
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    # admin helpers
    def knobs(self, **values: object) -> dict[str, object]:
        reply = requests.post(f"{self.url}/_sandbox/knobs", json=values, timeout=10)
        reply.raise_for_status()
        return dict(reply.json())

    def reset(self) -> None:
        requests.post(f"{self.url}/_sandbox/reset", timeout=10).raise_for_status()

    def answers(self) -> dict[str, int]:
        """Answers the sandbox gave to provider calls, by "<provider> <status>"."""
        reply = requests.get(f"{self.url}/_sandbox/stats", timeout=10)
        reply.raise_for_status()
        return {str(k): int(v) for k, v in reply.json()["answers"].items()}

    def sends(self) -> list[dict[str, object]]:
        reply = requests.get(f"{self.url}/_sandbox/sends", timeout=30)
        reply.raise_for_status()
        return list(reply.json()["sends"])


@contextlib.contextmanager
def running(server: RedisServer | Sandbox) -> Iterator[RedisServer | Sandbox]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# The fields of Taqnyat's 201 answer to an SMS send.
SMS_201_FIELDS = frozenset(
    {"statusCode", "messageId", "cost", "currency", "totalCount", "msgLength", "accepted", "rejected"}
)


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`hudhud ARGS` as a real process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hudhud.worker.ops.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
