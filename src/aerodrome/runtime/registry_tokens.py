"""The embedded registry's token keys: the ES256 key that signs its bearer tokens, the self-signed certificate the
registry trusts (`rootcertbundle`, and each token's `x5c`), and the host operator's credential.

All three live in the registry's directory of the data dir, 0600, made on the first start and kept: a new key
would void every token already handed out, a new operator credential every `--dest-creds` a script holds.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ISSUER = "aerodrome"
SERVICE = "aerodrome-registry"
OPERATOR_USER = "operator"
_CERT_YEARS = 30


class RegistryTokens:
    """Mints the registry's JWTs (the API's token endpoint, and the daemon's own pulls)."""

    def __init__(self, directory: Path, *, service: str = SERVICE, issuer: str = ISSUER) -> None:
        self.directory = Path(directory)
        self.issuer = issuer
        self._service = service
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._key = _load_or_create_key(self.key_path)
        self._certificate = _load_or_create_certificate(self.cert_path, self._key)
        self._x5c = [base64.b64encode(self._certificate.public_bytes(serialization.Encoding.DER)).decode()]
        self._operator = _load_or_create_secret(self.operator_path)

    @property
    def service(self) -> str:
        return self._service

    @property
    def key_path(self) -> Path:
        return self.directory / "token.key"

    @property
    def cert_path(self) -> Path:
        """The registry's `rootcertbundle`: the certificate of the signing key."""
        return self.directory / "token.crt"

    @property
    def operator_path(self) -> Path:
        """`operator:<secret>`, the credential with every right on every repository (root reads it on the host)."""
        return self.directory / "operator.credential"

    @property
    def operator_credentials(self) -> str:
        """`user:password` as skopeo's `--dest-creds` takes it."""
        return f"{OPERATOR_USER}:{self._operator}"

    def is_operator(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self._operator.encode())

    def sign(self, subject: str, access: Sequence[dict[str, Any]], lifetime: float) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self._service,
            "iat": now,
            "nbf": now - 5,  # a registry's clock a little behind ours still takes it
            "exp": now + max(1, int(lifetime)),
            "jti": secrets.token_hex(12),
            "access": list(access),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})

    def repository_token(self, repository: str, actions: Sequence[str], lifetime: float) -> str:
        """A token for the daemon itself on one repository."""
        access = [{"type": "repository", "name": repository, "actions": list(actions)}]
        return self.sign("aerodrome-daemon", access, lifetime)


def load_operator_credentials(directory: Path) -> str:
    """The operator's `user:password` from a registry directory (for the CLI on the host, as root)."""
    secret = (Path(directory) / "operator.credential").read_text().strip()
    return secret if ":" in secret else f"{OPERATOR_USER}:{secret}"


def _write_new(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet, 0600, whole and flushed before it is visible under its name."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_new(path, pem)
    return key


def _load_or_create_certificate(path: Path, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    if path.exists():
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        if certificate.public_key() == key.public_key():
            return certificate
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aerodrome registry token signer")])
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(True, False, False, False, False, True, False, False, False)  # digitalSignature, certSign
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * _CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_new(path, certificate.public_bytes(serialization.Encoding.PEM))
    return certificate


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        text = path.read_text().strip()
        secret = text.split(":", 1)[1] if ":" in text else text
        if secret:
            return secret
    secret = secrets.token_urlsafe(32)
    _write_new(path, f"{OPERATOR_USER}:{secret}\n".encode())
    return secret
