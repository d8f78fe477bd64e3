"""The certificates API against a real server: certificates from aerodrome's CA and uploaded ones, their
validation, paging, and hostnames that belong to one app at a time."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api.helpers import delete_app
from tests.support.server import Server


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_chain(*names: str, days: int = 30, ca_name: str = "throwaway test CA") -> tuple[str, str, str]:
    """(fullchain, private key, CA certificate), all PEM: a leaf for `names` from a CA made for the occasion."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(leaf) + _pem(ca), _key_pem(key), _pem(ca)


def hostname() -> str:
    return f"www-{uuid.uuid4().hex[:8]}.example.com"


@pytest.fixture
def other_app(api: httpx.Client) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    yield name
    api.delete(f"/v1/apps/{name}")


def test_aerodrome_certificate_round_trip(api: httpx.Client, app_name: str) -> None:
    host = hostname()
    created = api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": host.upper()})
    assert created.status_code == 201, created.text
    detail = created.json()
    assert detail["hostname"] == host and detail["acme_requested"] and detail["configured"]
    [entry] = detail["certificates"]
    assert entry["source"] == "fly" and entry["status"] == "active"
    assert entry["issuer"] == "aerodrome custom hostnames CA" and entry["issued"][0]["type"] == "ecdsa"
    assert detail["dns_requirements"]["cname"] == f"{app_name}.localhost"

    again = api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": host})
    assert again.status_code == 201 and again.json()["certificates"] == detail["certificates"]  # not reissued

    shown = api.get(f"/v1/apps/{app_name}/certificates/{host}").json()
    assert shown["certificates"] == detail["certificates"]
    listed = api.get(f"/v1/apps/{app_name}/certificates").json()
    assert listed["total_count"] == 1 and "next_cursor" not in listed
    [summary] = listed["certificates"]
    assert summary["hostname"] == host and summary["has_fly_certificate"] and not summary["has_custom_certificate"]

    check = api.post(f"/v1/apps/{app_name}/certificates/{host}/check")
    assert check.status_code == 200, check.text
    assert check.json()["configured"] and check.json()["validation_errors"] == []
    assert check.json()["dns_requirements"]["cname"] == f"{app_name}.localhost"  # fly-go's DNSRequirements

    removed = api.delete(f"/v1/apps/{app_name}/certificates/{host}/acme")
    assert removed.status_code == 200 and removed.json()["certificates"] == []
    assert api.get(f"/v1/apps/{app_name}/certificates/{host}").status_code == 404
    assert api.delete(f"/v1/apps/{app_name}/certificates/{host}").status_code == 404


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not_a_host", "invalid hostname"),
        ("localhost", "invalid hostname"),
        ("10.0.0.1", "IP addresses"),
        ("someapp.localhost", "every app has its name"),
        ("", "hostname is required"),
        (42, "hostname is required"),
    ],
)
def test_hostnames_are_checked(api: httpx.Client, app_name: str, value: object, message: str) -> None:
    response = api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": value})
    assert response.status_code == 422 and message in response.json()["error"]


def test_custom_certificates_are_validated(api: httpx.Client, app_name: str) -> None:
    host = hostname()
    chain, key, _ = make_chain(host)
    _, other_key, _ = make_chain(host)
    expired_chain, expired_key, _ = make_chain(host, days=-1)
    elsewhere_chain, elsewhere_key, _ = make_chain("elsewhere.example.org")
    cases = [
        ({"fullchain": "not a certificate", "private_key": key}, "not a PEM certificate chain"),
        ({"fullchain": chain, "private_key": "not a key"}, "not an unencrypted PEM private key"),
        ({"fullchain": chain, "private_key": other_key}, "does not match the certificate"),
        ({"fullchain": expired_chain, "private_key": expired_key}, "expired"),
        ({"fullchain": elsewhere_chain, "private_key": elsewhere_key}, f"does not cover {host}"),
        ({"private_key": key}, "fullchain is required"),
    ]
    for body, message in cases:
        response = api.post(f"/v1/apps/{app_name}/certificates/custom", json={"hostname": host, **body})
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]
    assert api.get(f"/v1/apps/{app_name}/certificates").json()["total_count"] == 0


def test_custom_certificate_falls_back_to_the_ca_when_removed(api: httpx.Client, app_name: str, server: Server) -> None:
    host = hostname()
    chain, key, _ = make_chain(f"*.{host.split('.', 1)[1]}")  # a wildcard covers the hostname
    created = api.post(
        f"/v1/apps/{app_name}/certificates/custom", json={"hostname": host, "fullchain": chain, "private_key": key}
    )
    assert created.status_code == 201, created.text
    [entry] = created.json()["certificates"]
    assert entry["source"] == "custom" and entry["issuer"] == "throwaway test CA"
    assert not created.json()["acme_requested"]

    # The key is stored encrypted, never in clear.
    [(stored,)] = server.query(f"SELECT key_ciphertext FROM certificates WHERE hostname = '{host}'")
    assert b"PRIVATE KEY" not in stored and key.encode() not in stored

    both = api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": host}).json()
    assert both["acme_requested"] and both["certificates"][0]["source"] == "custom"  # the custom one still wins

    fallback = api.delete(f"/v1/apps/{app_name}/certificates/{host}/custom")
    assert fallback.status_code == 200 and "aerodrome's CA" in fallback.json()["warning"]
    assert fallback.json()["certificates"][0]["source"] == "fly"
    assert api.delete(f"/v1/apps/{app_name}/certificates/{host}/custom").status_code == 404

    assert api.delete(f"/v1/apps/{app_name}/certificates/{host}").status_code == 204
    assert api.get(f"/v1/apps/{app_name}/certificates/{host}").status_code == 404


def test_removing_the_only_custom_certificate_removes_the_hostname(api: httpx.Client, app_name: str) -> None:
    host = hostname()
    chain, key, _ = make_chain(host)
    body = {"hostname": host, "fullchain": chain, "private_key": key}
    assert api.post(f"/v1/apps/{app_name}/certificates/custom", json=body).status_code == 201
    assert api.delete(f"/v1/apps/{app_name}/certificates/{host}/acme").status_code == 404  # none was requested
    removed = api.delete(f"/v1/apps/{app_name}/certificates/{host}/custom").json()
    assert removed["certificates"] == [] and "no longer served" in removed["warning"]
    assert api.get(f"/v1/apps/{app_name}/certificates/{host}").status_code == 404


def test_list_filters_and_pages(api: httpx.Client, app_name: str) -> None:
    tag = uuid.uuid4().hex[:6]
    hosts = sorted(f"{prefix}-{tag}.example.net" for prefix in ("alpha", "beta", "gamma", "delta"))
    for host in hosts:
        assert api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": host}).status_code == 201
    url = f"/v1/apps/{app_name}/certificates"
    first = api.get(url, params={"limit": 3}).json()
    assert [c["hostname"] for c in first["certificates"]] == hosts[:3] and first["total_count"] == 4
    second = api.get(url, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [c["hostname"] for c in second["certificates"]] == hosts[3:] and "next_cursor" not in second
    filtered = api.get(url, params={"filter": "gamma"}).json()
    assert [c["hostname"] for c in filtered["certificates"]] == [f"gamma-{tag}.example.net"]
    assert filtered["total_count"] == 1
    assert api.get(url, params={"limit": "many"}).status_code == 400


def test_a_hostname_belongs_to_one_app(api: httpx.Client, app_name: str, other_app: str) -> None:
    host = hostname()
    assert api.post(f"/v1/apps/{app_name}/certificates/acme", json={"hostname": host}).status_code == 201

    taken = api.post(f"/v1/apps/{other_app}/certificates/acme", json={"hostname": host})
    assert taken.status_code == 422 and "another app" in taken.json()["error"]
    chain, key, _ = make_chain(host)
    body = {"hostname": host, "fullchain": chain, "private_key": key}
    assert api.post(f"/v1/apps/{other_app}/certificates/custom", json=body).status_code == 422
    assert api.get(f"/v1/apps/{other_app}/certificates/{host}").status_code == 404
    assert api.delete(f"/v1/apps/{other_app}/certificates/{host}").status_code == 404
    assert api.get(f"/v1/apps/{other_app}/certificates").json()["total_count"] == 0

    # Deleting the app frees its hostnames.
    delete_app(api, app_name)
    claimed = api.post(f"/v1/apps/{other_app}/certificates/custom", json=body)
    assert claimed.status_code == 201, claimed.text


def test_unknown_app_and_missing_body(api: httpx.Client, app_name: str) -> None:
    assert api.get("/v1/apps/no-such-app-here/certificates").status_code == 404
    assert api.post(f"/v1/apps/{app_name}/certificates/acme").status_code == 400
    assert api.post(f"/v1/apps/{app_name}/certificates/nothing.example.com/check").status_code == 404
