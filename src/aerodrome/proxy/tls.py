"""TLS termination: aerodrome's own certificate authority, leaf certificates per hostname, custom certificates.

The CA (ECDSA P-256) is created on first start under the data directory and kept; users trust its PEM once.
Leaves are issued on demand, one per SNI hostname (many clients refuse a wildcard under a one-label domain
such as `*.localhost`), cached in memory and on disk. `sni_callback` switches the connection to the
hostname's context before the handshake goes on.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_DAYS = 3650
_LEAF_DAYS = 397  # the longest validity browsers accept for a leaf
_SNI_ATTRIBUTE = "_aerodrome_sni"
_MAX_CONTEXTS = 10_000  # anyone can send any SNI: bound what they can make the edge remember


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _safe_name(hostname: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in hostname.lower())


class CertificateAuthority:
    """aerodrome's local CA: loaded from `directory` or created there on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_path = directory / "ca.pem"
        self._key_path = directory / "ca-key.pem"
        directory.mkdir(parents=True, exist_ok=True)
        if self.cert_path.exists() and self._key_path.exists():
            self.certificate = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = serialization.load_pem_private_key(self._key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self._key_path} is not an EC private key")
            self._key = key
        else:
            self._key, self.certificate = self._create()
            _write_private(self._key_path, _key_pem(self._key))
            self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def pem(self) -> bytes:
        """The CA certificate, PEM-encoded: what clients must trust."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _create(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aerodrome local CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def issue(self, hostname: str) -> tuple[bytes, bytes]:
        """A leaf certificate and key (PEM) for a DNS name or an IP address."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
        except ValueError:
            san = x509.DNSName(hostname)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


class CertificateStore:
    """Server-side SSL contexts per hostname: custom certificates first, else a leaf from the CA."""

    def __init__(self, data_dir: Path) -> None:
        self.ca = CertificateAuthority(data_dir / "ca")
        self._leaf_dir = data_dir / "certs"
        self._leaf_dir.mkdir(parents=True, exist_ok=True)
        self._custom_dir = data_dir / "custom-certs"
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._custom: dict[str, ssl.SSLContext] = {}
        self._servers: dict[str, ssl.SSLContext] = {}

    @property
    def ca_path(self) -> Path:
        """Where the CA certificate (PEM) is; point clients' trust stores here."""
        return self.ca.cert_path

    def ca_pem(self) -> bytes:
        return self.ca.pem()

    def add_certificate(self, hostname: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve `hostname` with a certificate of the user's own instead of one from the CA."""
        self._custom_dir.mkdir(parents=True, exist_ok=True)
        chain, key = self._custom_dir / f"{_safe_name(hostname)}.pem", self._custom_dir / f"{_safe_name(hostname)}.key"
        chain.write_bytes(cert_pem)
        _write_private(key, key_pem)
        self._custom[hostname.lower()] = self._context(chain, key)

    def remove_certificate(self, hostname: str) -> None:
        self._custom.pop(hostname.lower(), None)

    def server_context(self, default_host: str = "localhost") -> ssl.SSLContext:
        """A context that serves `default_host` without SNI and switches per SNI hostname."""
        base = self._servers.get(default_host)
        if base is None:
            base = self._context(*self._leaf_files(default_host))
            base.sni_callback = self._on_sni
            self._servers[default_host] = base
        return base

    def context_for(self, hostname: str) -> ssl.SSLContext:
        """The context for one hostname (issuing its certificate the first time)."""
        hostname = hostname.lower().rstrip(".")
        custom = self._custom.get(hostname)
        if custom is not None:
            return custom
        context = self._contexts.get(hostname)
        if context is None:
            context = self._context(*self._leaf_files(hostname))
            self._contexts[hostname] = context
            if len(self._contexts) > _MAX_CONTEXTS:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(hostname)
        return context

    def _leaf_files(self, hostname: str) -> tuple[Path, Path]:
        chain, key = self._leaf_dir / f"{_safe_name(hostname)}.pem", self._leaf_dir / f"{_safe_name(hostname)}.key"
        if not (chain.exists() and key.exists()):
            cert_pem, key_pem = self.ca.issue(hostname)
            _write_private(key, key_pem)
            chain.write_bytes(cert_pem + self.ca.pem())
        return chain, key

    def _context(self, chain: Path, key: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _on_sni(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name:
            setattr(ssl_object, _SNI_ATTRIBUTE, server_name.lower())  # server-side objects do not keep it
            ssl_object.context = self.context_for(server_name)


def sni_hostname(ssl_object: object) -> str | None:
    """The SNI hostname a client sent on a connection served by a `CertificateStore` context."""
    value = getattr(ssl_object, _SNI_ATTRIBUTE, None)
    return value if isinstance(value, str) else None
