"""OpenID Connect tokens for machines (Fly's `POST /v1/tokens/oidc` on a machine's /.fly/api): a JWT signed with
ES256 whose claims name the machine, its app and organisation, as Fly's do, and the JWKS that verifies it.

The signing key is derived from the daemon's secrets key (HKDF), so it survives restarts without a file of its
own and changes only with that key.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aerodrome.core import App, Clock, InvalidArgumentError, Machine, Organization, parse_text, ulid

TOKEN_LIFETIME = 600  # seconds, as Fly's OIDC tokens: a CI job asks again
_CURVE_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)  # P-256's n


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


class OidcIssuer:
    def __init__(self, clock: Clock, secrets_key: bytes, base_url: str) -> None:
        self._clock = clock
        self._base_url = base_url.rstrip("/")
        seed = HKDF(hashes.SHA256(), 48, salt=None, info=b"aerodrome oidc es256").derive(secrets_key)
        self._key = ec.derive_private_key(int.from_bytes(seed, "big") % (_CURVE_ORDER - 1) + 1, ec.SECP256R1())
        numbers = self._key.public_key().public_numbers()
        self._jwk = {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x), "y": _b64(numbers.y)}
        thumbprint = hashlib.sha256(
            f'{{"crv":"P-256","kty":"EC","x":"{self._jwk["x"]}","y":"{self._jwk["y"]}"}}'.encode()
        ).digest()  # RFC 7638: the key's id is its thumbprint
        self._kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()

    def issuer(self, org_slug: str) -> str:
        return f"{self._base_url}/{org_slug}"

    def token(self, org: Organization, app: App, machine: Machine, audience: object = None) -> str:
        aud = parse_text(audience, "aud", 512) if audience else f"https://fly.io/{org.slug}"
        if not aud.strip():
            raise InvalidArgumentError("invalid aud: must not be blank")
        now = int(self._clock.now())
        image = str(machine.config.get("image") or "")
        claims: dict[str, Any] = {
            "iss": self.issuer(org.slug),
            "aud": aud,
            "sub": f"{org.slug}:{app.name}:{machine.name}",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": ulid(),
            "app_id": str(app.internal_numeric_id),
            "app_name": app.name,
            "org_id": str(org.internal_numeric_id),
            "org_name": org.slug,
            "machine_id": machine.id,
            "machine_name": machine.name,
            "machine_version": machine.instance_id,
            "image": image,
            "image_digest": str(machine.image_ref.get("digest") or ""),
            "region": machine.region,
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self._kid, "use": "sig", "alg": "ES256"}]}

    def discovery(self, org_slug: str) -> dict[str, Any]:
        issuer = self.issuer(org_slug)
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "app_name", "machine_id"],
        }
