"""The cluster's certificate authority, and the TLS between control planes and agents (mutual TLS).

One CA (an EC P-256 key and a self-signed certificate) is made once per cluster. Every agent holds a server
certificate it signs, naming the host (a DNS name) and the addresses it answers on (IP names); every control
plane holds a client certificate it signs. Each side verifies the other against the CA alone: a control plane
also checks that the agent's certificate names the host it means to reach, and an agent takes only client
certificates (the extended key usage keeps an agent's own certificate from passing as a control plane's).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aerodrome.core import InvalidArgumentError

CA_YEARS = 10
LEAF_DAYS = 365
CONTROL_PLANE_NAME = "aerodrome control plane"
PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgumentError("the key is not an EC key")
    return key


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _names(name: str, addresses: tuple[str, ...]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = [x509.DNSName(name)]
    for address in addresses:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            general.append(x509.DNSName(address))
    return x509.SubjectAlternativeName(general)


@dataclass(frozen=True)
class ClusterCA:
    """The CA's certificate and key; `pem()` is both, the file an operator copies between hosts."""

    certificate: x509.Certificate
    key: PrivateKey

    @classmethod
    def generate(cls, label: str = "aerodrome cluster CA") -> ClusterCA:
        key, now = new_key(), _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_subject(label))
            .issuer_name(_subject(label))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def from_pem(cls, pem: bytes, source: str = "the cluster CA") -> ClusterCA:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
            key = load_key(pem[pem.index(b"-----BEGIN PRIVATE KEY-----") :])
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"{source} holds no CA certificate and key: {exc}") from None
        return cls(certificate, key)

    def pem(self) -> bytes:
        return self.certificate_pem() + key_pem(self.key)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _leaf(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, usage: x509.ObjectIdentifier
    ) -> x509.CertificateBuilder:
        now = _now()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )

    def issue_server(self, public_key: ec.EllipticCurvePublicKey, name: str, addresses: tuple[str, ...]) -> bytes:
        """An agent's certificate: its host's name and the addresses it answers on."""
        builder = self._leaf(_subject(name), public_key, ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(_names(name, addresses), critical=False)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def issue_client(self, public_key: ec.EllipticCurvePublicKey, name: str = CONTROL_PLANE_NAME) -> bytes:
        builder = self._leaf(_subject(name), public_key, ExtendedKeyUsageOID.CLIENT_AUTH)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def sign_request(self, csr_pem: bytes) -> bytes:
        """An agent's certificate for its signing request (name and addresses as it asks; the CA is the trust)."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise InvalidArgumentError("the certificate request's signature is wrong")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidArgumentError("the certificate request's key is not an EC key")
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        addresses = tuple(str(ip) for ip in names.get_values_for_type(x509.IPAddress))
        common = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return self.issue_server(public_key, str(common), addresses)


def signing_request(key: PrivateKey, name: str, addresses: tuple[str, ...]) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(name))
        .add_extension(_names(name, addresses), False)
    )
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def certificate_matches(certificate_pem: bytes, key: PrivateKey) -> bool:
    """Whether the certificate is of this key (a signed request's answer, not an older key's)."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        return False
    return certificate.public_key() == key.public_key()


@dataclass(frozen=True)
class Identity:
    """One side's certificate and key, and the CA certificate it trusts the other side by."""

    ca_pem: bytes
    certificate_pem: bytes
    key_pem: bytes

    @classmethod
    def agent(cls, ca: ClusterCA, name: str, addresses: tuple[str, ...]) -> Identity:
        key = new_key()
        return cls(ca.certificate_pem(), ca.issue_server(key.public_key(), name, addresses), key_pem(key))

    @classmethod
    def control_plane(cls, ca: ClusterCA) -> Identity:
        key = new_key()
        return cls(ca.certificate_pem(), ca.issue_client(key.public_key()), key_pem(key))

    def _context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        context = ssl.create_default_context(purpose, cadata=self.ca_pem.decode())
        # TLS 1.2: the agent checks the client's certificate inside the handshake, so a refused one fails the
        # connect (nothing was sent). Under 1.3 the client sends its request first and sees the refusal as a
        # connection broken mid-call, whose outcome is unknown.
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        _load_chain(context, self.certificate_pem, self.key_pem)
        return context

    def server_context(self) -> ssl.SSLContext:
        """The agent's: clients must present a certificate of the cluster CA."""
        return self._context(ssl.Purpose.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        """The control plane's: the agent's certificate must be the CA's and name the host asked for."""
        context = self._context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = True
        return context


def _load_chain(context: ssl.SSLContext, certificate_pem: bytes, key_pem_: bytes) -> None:
    """`load_cert_chain` reads files only: a private temporary one, gone once read."""
    with tempfile.TemporaryDirectory(prefix="aerodrome-tls-") as scratch:
        path = Path(scratch) / "chain.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(certificate_pem + key_pem_)
        context.load_cert_chain(path)


def read_ca_file(path: Path, *, create: bool) -> ClusterCA:
    """The cluster CA of `path` (certificate and key, 0600); made there when `create` and it is missing."""
    if create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            ca = ClusterCA.generate()
            with os.fdopen(fd, "wb") as out:
                out.write(ca.pem())
            return ca
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the cluster CA {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as source:
        if os.fstat(source.fileno()).st_mode & 0o077:
            raise InvalidArgumentError(f"{path} holds the cluster CA's key: it must be its owner's alone (chmod 600)")
        return ClusterCA.from_pem(source.read(1 << 16), str(path))
