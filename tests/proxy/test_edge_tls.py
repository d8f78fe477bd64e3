"""The control plane drives the edge's TLS through core's `EdgeTLS` port, received at construction: the edge's
real certificate store issues a custom hostname's chain and serves it until the hostname is removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet

from aerodrome.control import ControlPlane, Settings
from aerodrome.core import App, UnavailableError, rfc3339, ulid
from aerodrome.proxy import CertificateStore
from aerodrome.store import SqlStore
from tests.support.fake_agent import FakeAgent

HOSTNAME = "www.example.com"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
    await store.ensure_org("personal", "Personal")
    try:
        yield store
    finally:
        await store.close()


async def shop(store: SqlStore) -> App:
    app = App(ulid(), "shop", "personal", "default", 4, rfc3339(0), "deployed")
    await store.add_app(app)
    return app


async def test_a_hostname_is_issued_and_served_by_the_edge_given_at_construction(
    store: SqlStore, tmp_path: Path
) -> None:
    tls = CertificateStore(tmp_path / "tls")  # the edge's own store: it implements EdgeTLS
    plane = ControlPlane(store, FakeAgent(), Fernet.generate_key(), Settings(edge_https=("127.0.0.1", 1)), edge=tls)
    app = await shop(store)
    default = tls.select(HOSTNAME, None, "localhost")

    cert = await plane.certificates.request_acme(app, HOSTNAME)

    leaf = x509.load_pem_x509_certificates(cert.fullchain.encode())[0]
    assert leaf.issuer == x509.load_pem_x509_certificate(tls.hostname_ca_pem()).subject
    assert plane.certificates.app_for(HOSTNAME) == "shop"
    assert tls.select(HOSTNAME, None, "localhost") is not default  # the hostname's own chain
    await plane.certificates.remove(app, HOSTNAME)
    assert plane.certificates.app_for(HOSTNAME) is None
    assert tls.select(HOSTNAME, None, "localhost") is default


async def test_without_an_edge_no_certificate_is_issued(store: SqlStore) -> None:
    plane = ControlPlane(store, FakeAgent(), Fernet.generate_key())
    with pytest.raises(UnavailableError, match="the edge is not running"):
        await plane.certificates.request_acme(await shop(store), HOSTNAME)
    assert await store.list_certificates() == []
