"""TLS termination: aerodrome's own certificate authority, leaf certificates per hostname, custom certificates.

The CA (ECDSA P-256) is created on first start under the data directory and kept; users trust its PEM once.
It carries X.509 name constraints: it certifies names under the served domain and loopback and unique-local
addresses only, so trusting it trusts nothing else. Leaves are issued on demand, one per SNI hostname (many
clients refuse a wildcard under a one-label domain such as `*.localhost`), and only for a name that routes to
an app (`<app>.<domain>`): the edge reads the ClientHello, asks the directory, then picks the context before
the handshake (`select`). Issued leaves are kept in memory and on disk, at most `max_certificates` of each.

Custom hostnames can be any name, so the CA that issues their `acme` certificates (`hostname_authority`) has no
constraints: a second CA, made when the first such certificate is asked for, and from then on added to the
trust bundle (`ca/ca.pem`). A data directory whose CA predates the constraints keeps it, unconstrained, for both:
replacing it would break every client that trusts it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("aerodrome.edge")

_CA_DAYS = 3650
_LEAF_DAYS = 397  # the longest validity browsers accept for a leaf
# Addresses the CA may certify: dedicated addresses are loopback (v4) and unique-local (v6) ones.
_PERMITTED_NETWORKS = ("127.0.0.0/8", "::1/128", "fc00::/7")


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
    """aerodrome's local CA: loaded from `directory` or created there on first use; created with `domain`, it may
    certify only names under that domain, and loopback and unique-local addresses."""

    def __init__(self, directory: Path, domain: str | None = None, name: str = "aerodrome local CA") -> None:
        self.directory = directory
        self.cert_path = directory / "ca.pem"  # the CA certificate first: a trust bundle may follow it
        self._key_path = directory / "ca-key.pem"
        self._domain = domain.strip(".").lower() if domain else None
        self._name = name
        directory.mkdir(parents=True, exist_ok=True)
        if self.cert_path.exists() and self._key_path.exists():
            self.certificate = x509.load_pem_x509_certificates(self.cert_path.read_bytes())[0]
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

    @property
    def constrained(self) -> bool:
        """Whether the certificate limits the names it may certify (CAs made before that do not)."""
        try:
            self.certificate.extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            return False
        return True

    def permits(self, hostname: str) -> bool:
        """Whether the CA's name constraints let it certify the DNS name `hostname`."""
        try:
            constraints = self.certificate.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return True
        name = hostname.lower().rstrip(".")
        permitted = [n.value.lower() for n in constraints.permitted_subtrees or () if isinstance(n, x509.DNSName)]
        return not permitted or any(name == base or name.endswith("." + base) for base in permitted)

    def _create(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self._name)])
        now = datetime.datetime.now(datetime.UTC)
        builder = x509.CertificateBuilder()
        if self._domain is not None:
            permitted: list[x509.GeneralName] = [x509.DNSName(self._domain)]  # the domain and every name under it
            permitted += [x509.IPAddress(ipaddress.ip_network(network)) for network in _PERMITTED_NETWORKS]
            builder = builder.add_extension(x509.NameConstraints(permitted, None), critical=True)
        cert = (
            builder.subject_name(name)
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
            # No address as the common name: verifiers would hold it to the CA's DNS name constraints.
            subject = x509.Name([])
        except ValueError:
            san = x509.DNSName(hostname)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([san]), critical=not subject)  # RFC 5280 §4.2.1.6
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


class _HostnameAuthority:
    """The CA for custom hostnames' `acme` certificates: made on first use, then added to the trust bundle."""

    def __init__(self, directory: Path, bundle: CertificateAuthority) -> None:
        self._directory = directory
        self._bundle = bundle
        self._ca: CertificateAuthority | None = None
        if (directory / "ca.pem").exists():
            self._ca = CertificateAuthority(directory, name="aerodrome custom hostnames CA")

    def _authority(self) -> CertificateAuthority:
        if self._ca is None:
            self._ca = CertificateAuthority(self._directory, name="aerodrome custom hostnames CA")
            self._bundle.cert_path.write_bytes(self._bundle.pem() + self._ca.pem())
            log.info(
                "custom hostnames take certificates from a CA that may certify any name (%s); the edge's trust "
                "bundle %s now holds it too",
                self._ca.cert_path,
                self._bundle.cert_path,
            )
        return self._ca

    def issue(self, hostname: str) -> tuple[bytes, bytes]:
        return self._authority().issue(hostname)

    def pem(self) -> bytes:
        return self._authority().pem()


class CertificateStore:
    """Server-side SSL contexts per hostname: custom certificates first, else a leaf from the CA."""

    def __init__(self, data_dir: Path, domain: str = "localhost", max_certificates: int = 1000) -> None:
        self.ca = CertificateAuthority(data_dir / "ca", domain)
        self.domain = domain.strip(".").lower()
        self._max = max_certificates
        if not self.ca.permits(f"app.{self.domain}"):
            log.warning(
                "the edge's CA (%s) was made for another domain and cannot certify names under %s (clients will "
                "refuse its leaves): serve with the --domain it was made for, or remove %s to have one made for this",
                self.ca.cert_path,
                self.domain,
                self.ca.directory,
            )
        if self.ca.constrained:
            self.hostname_authority: CertificateAuthority | _HostnameAuthority = _HostnameAuthority(
                data_dir / "hostnames-ca", self.ca
            )
        else:
            log.warning(
                "the edge's CA (%s) predates name constraints: it can certify any name for whoever trusts it; it "
                "is kept, as a new one would break every client that trusts it (remove %s to have a constrained "
                "one made, and trust that instead)",
                self.ca.cert_path,
                self.ca.directory,
            )
            self.hostname_authority = self.ca
        self._leaf_dir = data_dir / "certs"
        self._leaf_dir.mkdir(parents=True, exist_ok=True)
        self._custom_dir = data_dir / "custom-certs"
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._custom: dict[str, ssl.SSLContext] = {}
        self._defaults: dict[str, ssl.SSLContext] = {}
        self._leaves_on_disk = len(list(self._leaf_dir.glob("*.pem")))

    @property
    def ca_path(self) -> Path:
        """Where the CA certificate (PEM) is; point clients' trust stores here."""
        return self.ca.cert_path

    def ca_pem(self) -> bytes:
        """What clients must trust: the CA, and the custom hostnames' CA once there is one."""
        return self.ca.cert_path.read_bytes()

    def add_certificate(self, hostname: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve `hostname` with a certificate of the user's own instead of one from the CA."""
        self._custom_dir.mkdir(parents=True, exist_ok=True)
        chain, key = self._custom_dir / f"{_safe_name(hostname)}.pem", self._custom_dir / f"{_safe_name(hostname)}.key"
        chain.write_bytes(cert_pem)
        _write_private(key, key_pem)
        self._custom[hostname.lower()] = self._context(chain, key)

    def remove_certificate(self, hostname: str) -> None:
        self._custom.pop(hostname.lower(), None)

    # core's EdgeTLS: what the control plane's custom hostnames are issued and served with
    def issue_hostname(self, hostname: str) -> tuple[bytes, bytes]:
        return self.hostname_authority.issue(hostname)

    def hostname_ca_pem(self) -> bytes:
        return self.hostname_authority.pem()

    def serve_hostname(self, hostname: str, fullchain: bytes, private_key: bytes) -> None:
        self.add_certificate(hostname, fullchain, private_key)

    def withdraw_hostname(self, hostname: str) -> None:
        self.remove_certificate(hostname)

    def select(self, server_name: str | None, app: str | None, default_host: str) -> ssl.SSLContext:
        """The context to serve a handshake with: a custom certificate for `server_name`; a leaf for it when it
        names the app it routes to (`<app>.<domain>`), issued the first time; else `default_host`'s leaf, which
        the client will not take for the name it asked, and nothing is issued."""
        if server_name:
            name = server_name.lower().rstrip(".")
            custom = self._custom.get(name)
            if custom is not None:
                return custom
            if app is not None and name == f"{app}.{self.domain}":
                return self.context_for(name)
        return self.default_context(default_host)

    def default_context(self, host: str) -> ssl.SSLContext:
        """The context served when no name routes: the domain's on the shared listener, a dedicated address's
        on that address; kept apart from the issued ones, so that no flood of names pushes one out."""
        context = self._defaults.get(host)
        if context is None:
            context = self._defaults[host] = self._context(*self._leaf_files(host))
        return context

    def context_for(self, hostname: str) -> ssl.SSLContext:
        """The context of the CA's leaf for one hostname or address (issuing it the first time)."""
        hostname = hostname.lower().rstrip(".")
        context = self._contexts.get(hostname)
        if context is None:
            context = self._context(*self._leaf_files(hostname))
            self._contexts[hostname] = context
            if len(self._contexts) > self._max:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(hostname)
        return context

    def _leaf_files(self, hostname: str) -> tuple[Path, Path]:
        chain, key = self._leaf_dir / f"{_safe_name(hostname)}.pem", self._leaf_dir / f"{_safe_name(hostname)}.key"
        if chain.exists() and key.exists():
            os.utime(chain)  # recently used: the last to go when the directory is trimmed
            return chain, key
        cert_pem, key_pem = self.ca.issue(hostname)
        _write_private(key, key_pem)
        chain.write_bytes(cert_pem + self.ca.pem())
        self._leaves_on_disk += 1
        if self._leaves_on_disk > self._max:
            self._trim_leaves(keep=chain)
        return chain, key

    def _trim_leaves(self, keep: Path) -> None:
        """Remove the least recently used leaves on disk down to the limit."""
        chains = sorted(self._leaf_dir.glob("*.pem"), key=lambda path: path.stat().st_mtime)
        excess = len(chains) - self._max
        for chain in chains:
            if excess <= 0:
                break
            if chain == keep:
                continue
            chain.unlink(missing_ok=True)
            chain.with_suffix(".key").unlink(missing_ok=True)
            excess -= 1
        self._leaves_on_disk = min(len(chains), self._max)

    def _context(self, chain: Path, key: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key)
        context.set_alpn_protocols(["http/1.1"])
        return context


_HANDSHAKE, _CLIENT_HELLO, _SERVER_NAME = 22, 1, 0
_MAX_RECORDS = 4  # a ClientHello fits one record; a few are allowed, not a trickle of tiny ones
MAX_CLIENT_HELLO = 64 * 1024  # bytes read before the handshake; a ClientHello is a few hundred, up to a few KiB


class NotTlsError(ValueError):
    """The bytes a client sent first are not a TLS ClientHello."""


def client_hello_name(data: bytes) -> tuple[int, str | None]:
    """How many bytes `data` must hold before the ClientHello at its start is whole (0: it is), and the SNI host
    name it asks for once whole. Raises `NotTlsError`."""
    message, position = b"", 0
    for _ in range(_MAX_RECORDS):
        if len(data) < position + 5:
            return position + 5, None
        length = int.from_bytes(data[position + 3 : position + 5])
        if data[position] != _HANDSHAKE or data[position + 1] != 3:
            raise NotTlsError("not a TLS handshake record")
        if len(data) < position + 5 + length:
            return position + 5 + length, None
        message += data[position + 5 : position + 5 + length]  # a ClientHello may span records
        position += 5 + length
        if len(message) >= 4:
            if message[0] != _CLIENT_HELLO:
                raise NotTlsError("not a ClientHello")
            size = int.from_bytes(message[1:4])
            if size + 4 > MAX_CLIENT_HELLO:
                raise NotTlsError("ClientHello too large")
            if len(message) >= size + 4:
                try:
                    return 0, _server_name(message[4 : size + 4])
                except (IndexError, UnicodeDecodeError):
                    raise NotTlsError("malformed ClientHello") from None
    raise NotTlsError("ClientHello in too many records")


def _server_name(hello: bytes) -> str | None:
    position = 2 + 32  # version, random
    position += 1 + hello[position]  # session id
    position += 2 + int.from_bytes(hello[position : position + 2])  # cipher suites
    position += 1 + hello[position]  # compression methods
    if position + 2 > len(hello):
        return None  # no extensions
    end = position + 2 + int.from_bytes(hello[position : position + 2])
    position += 2
    while position + 4 <= end:
        kind, length = (
            int.from_bytes(hello[position : position + 2]),
            int.from_bytes(hello[position + 2 : position + 4]),
        )
        position += 4
        if kind == _SERVER_NAME:
            entry, stop = position + 2, position + length  # after the list's length: (type, length, name)…
            while entry + 3 <= stop:
                size = int.from_bytes(hello[entry + 1 : entry + 3])
                if hello[entry] == 0:
                    return hello[entry + 3 : entry + 3 + size].decode("ascii").lower() or None
                entry += 3 + size
            return None
        position += length
    return None
