"""TLS: ``rediss://`` with a client certificate, against a redis-server started with TLS.

The server runs on a free loopback port with ``--port 0`` (no plain-text port at all) and
``--tls-auth-clients yes``; the certificates are made here with the ``openssl`` command.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from convstore import (
    AsyncConversationStore,
    ConversationParticipant,
    ConversationSession,
    ConversationStore,
    ConvstoreError,
    utc_now,
)
from servers import REQUIRE_REDIS, ServerProcess, free_port, require_binary

pytestmark = pytest.mark.real_redis


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(name: str, cn: str, ca: str, cwd: Path, ext: str | None = None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)  # fmt: skip
    extra = ["-extfile", ext] if ext else []
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra, cwd=cwd)  # fmt: skip


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "1", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        if REQUIRE_REDIS:
            pytest.fail("openssl is not installed (required in CI)", pytrace=False)
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls-certs")
    _ca("ca", d)
    _ca("other-ca", d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed("server", "127.0.0.1", "ca", d, "san.ext")
    _signed("client", "convstore-test-client", "ca", d)
    return Certs(
        d / "ca.crt", d / "server.crt", d / "server.key",
        d / "client.crt", d / "client.key", d / "other-ca.crt",
    )  # fmt: skip


class TlsServer(ServerProcess):
    """redis-server with only a TLS port; readiness is probed over TLS."""

    certs: Certs
    tls_port: int = 0

    def wait_ready(self, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                log = self.workdir / f"server-{self.port}.log"
                raise RuntimeError(f"redis-server exited: {log.read_text()[-2000:]}")
            try:
                with redis.Redis.from_url(
                    self.url, socket_connect_timeout=0.5, **_client_tls(self.certs)
                ) as probe:
                    if probe.ping():
                        return
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"


def _client_tls(certs: Certs) -> dict[str, str]:
    """The ssl keyword parameters of ``from_url`` (redis-py's names)."""
    return {
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
        "ssl_ca_certs": str(certs.ca),
        "ssl_cert_reqs": "required",
    }


@pytest.fixture(scope="module")
def tls_server(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    binary = require_binary("redis-server")
    tls_port = free_port()
    args = (
        "--port", "0",  # no plain-text listener (overrides the --port start() passes first)
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs.server_cert),
        "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "yes",
    )  # fmt: skip
    server = TlsServer(binary, tls_port, tmp_path_factory.mktemp("tls-server"), args)
    server.certs, server.tls_port = certs, tls_port
    try:
        server.start()
    except RuntimeError as exc:
        if "TLS" in str(exc) and not REQUIRE_REDIS:
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    yield server
    server.stop()


def _session() -> ConversationSession:
    now = utc_now()
    people = [
        ConversationParticipant("u", "user"),
        ConversationParticipant("mc", "master_controller"),
    ]
    return ConversationSession("tls", people, "user_to_mc", now, now)


def test_sync_store_over_tls_with_a_client_certificate(tls_server: TlsServer, certs: Certs) -> None:
    with ConversationStore.from_url(
        tls_server.url, namespace="tls-sync", **_client_tls(certs)
    ) as store:
        assert "SSL" in store.client.connection_pool.connection_class.__name__
        key = store.sessions.save(_session(), force=True)
        store.messages.append(key, {"role": "user", "content": "over TLS"})
        assert store.messages.history(key, 1)[0]["content"] == "over TLS"
        assert store.sessions.delete(key)


async def test_async_store_over_tls_with_a_client_certificate(
    tls_server: TlsServer, certs: Certs
) -> None:
    store = AsyncConversationStore.from_url(
        tls_server.url, namespace="tls-async", **_client_tls(certs)
    )
    try:
        key = await store.sessions.save(_session(), force=True)
        await store.messages.append(key, {"role": "user", "content": "over TLS"})
        assert (await store.messages.history(key, 1))[0]["content"] == "over TLS"
        assert await store.sessions.delete(key)
    finally:
        await store.aclose()


def test_without_a_client_certificate_or_with_the_wrong_ca_it_fails_typed(
    tls_server: TlsServer, certs: Certs
) -> None:
    no_cert = {"ssl_ca_certs": str(certs.ca), "ssl_cert_reqs": "required"}
    wrong_ca = {**_client_tls(certs), "ssl_ca_certs": str(certs.other_ca)}
    plain = tls_server.url.replace("rediss://", "redis://")
    cases = [
        (tls_server.url, no_cert, None),
        (tls_server.url, wrong_ca, "CERTIFICATE_VERIFY_FAILED"),
        (plain, {}, None),
    ]
    for url, options, detail in cases:
        with ConversationStore.from_url(
            url, namespace="tls-refused", socket_timeout=2, **options
        ) as store:
            with pytest.raises(ConvstoreError, match=detail):  # StoreUnavailable today
                store.ping()
