"""`/v1/tokens/oidc|kms|authenticate|authorize` against a real `aerodrome serve`: an OIDC token asked for on a
machine's own /.fly/api socket (as `curl --unix-socket /.fly/api -X POST http://localhost/v1/tokens/oidc` does),
verified with the JWKS the daemon publishes (`check_machine_tokens`, run by tests/inside on a daemon with
`--dns`); KMS refused as for an organisation without it; token headers verified and authorised."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from aerodrome.runtime.runc.layout import Layout
from tests.support.server import Server


def _socket(server: Server, machine_id: str) -> httpx.Client:
    path = Layout(server.data_dir / "runtime").machine(machine_id).fly / "api"
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://localhost", timeout=30)


def check_machine_tokens(server: Server, machine: dict[str, Any], app_name: str) -> None:
    """On a started machine's /.fly/api (a daemon with `--dns`, see tests/inside): an OIDC token the published
    JWKS verifies, with the machine's claims; KMS refused; nothing else of /v1/tokens."""
    with _socket(server, str(machine["id"])) as fly:
        plain = fly.post("/v1/tokens/oidc")
        custom = fly.post("/v1/tokens/oidc", json={"aud": "sts.amazonaws.com"})
        assert fly.post("/v1/tokens/kms").status_code == 403
        assert fly.post("/v1/tokens/authenticate", json={"header": "x"}).status_code == 403  # not a machine's
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain"), plain.text
    discovery = httpx.get(f"{server.api_url}/oidc/personal/.well-known/openid-configuration").json()
    assert discovery["issuer"].endswith("/oidc/personal") and discovery["jwks_uri"].endswith("/.well-known/jwks")
    [jwk] = httpx.get(f"{server.api_url}/oidc/personal/.well-known/jwks").json()["keys"]
    key = jwt.PyJWK(jwk)
    assert jwt.get_unverified_header(plain.text)["kid"] == jwk["kid"]
    claims = jwt.decode(plain.text, key, algorithms=["ES256"], audience="https://fly.io/personal")
    assert claims["iss"] == discovery["issuer"]
    assert claims["sub"] == f"personal:{app_name}:{machine['name']}"
    assert claims["machine_id"] == machine["id"] and claims["app_name"] == app_name
    assert claims["machine_version"] == machine["instance_id"] and claims["region"] == "iad"
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.decode(custom.text, key, algorithms=["ES256"], audience="sts.amazonaws.com")["sub"] == claims["sub"]
    head, body, signature = plain.text.split(".")
    forged = ".".join([head, body.replace(body[:8], body[:8][::-1]), signature]) if body[:8] != body[:8][::-1] else ""
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(forged, key, algorithms=["ES256"], audience="https://fly.io/personal")
    assert httpx.get(f"{server.api_url}/oidc/nobody/.well-known/jwks").status_code == 404


def test_the_jwks_and_discovery_are_public_and_per_organisation(server: Server) -> None:
    discovery = httpx.get(f"{server.api_url}/oidc/personal/.well-known/openid-configuration")
    assert discovery.status_code == 200 and discovery.json()["id_token_signing_alg_values_supported"] == ["ES256"]
    [jwk] = httpx.get(f"{server.api_url}/oidc/personal/.well-known/jwks").json()["keys"]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    missing = httpx.get(f"{server.api_url}/oidc/nobody/.well-known/openid-configuration")
    assert missing.status_code == 404 and missing.json() == {"error": "organization 'nobody' not found"}


def test_oidc_from_outside_a_machine_and_kms_are_clear_refusals(api: httpx.Client) -> None:
    outside = api.post("/v1/tokens/oidc")
    assert outside.status_code == 400 and "on the machine's /.fly/api" in outside.json()["error"]
    kms = api.post("/v1/tokens/kms")
    assert kms.status_code == 403 and "KMS is not enabled for organization 'personal'" in kms.json()["error"]


def test_authenticate_and_authorize_a_token_header(server: Server, api: httpx.Client, app_name: str) -> None:
    header = api.post(f"/v1/apps/{app_name}/deploy_token", json={"expiry": "1h"}).json()["token"]
    [verified] = api.post("/v1/tokens/authenticate", json={"header": header}).json()
    assert verified["header"] == header and verified["organization"] == "personal"
    kinds = [c["type"] for c in verified["caveats"]["caveats"]]
    assert kinds == ["Apps", "ValidityWindow"] and verified["permission_token"]
    bad = api.post("/v1/tokens/authenticate", json={"header": "FlyV1 fm2_nope"})
    assert bad.status_code == 400 and bad.json() == {"error": "token not verified: invalid token"}

    access = {"header": header, "access": {"action": 31, "app_name": app_name, "org_slug": "personal"}}
    granted = api.post("/v1/tokens/authorize", json=access).json()
    assert granted["access"]["action"] == 31 and isinstance(granted["access"]["appid"], int)
    assert granted["verified_token"]["header"] == header
    elsewhere = api.post("/v1/tokens/authorize", json={**access, "access": {"app_name": "not-this-one"}})
    assert elsewhere.status_code == 403 and "does not grant access to app 'not-this-one'" in elsewhere.json()["error"]
    other_org = api.post("/v1/tokens/authorize", json={**access, "access": {"org_slug": "other"}})
    assert other_org.status_code == 403
