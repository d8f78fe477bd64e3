"""Custom hostnames: the certificates an app's own domains are served with, and where those domains route.

A hostname belongs to one app. Its certificate is either uploaded (`custom`) or issued by aerodrome's local CA
(`aerodrome`), which stands in for ACME: a self-hosted edge has no public ACME to answer. Either way the row
holds the chain and the key (encrypted like app secrets), so the edge serves the same certificate after a
restart. A custom certificate takes precedence; removing it falls back to a fresh CA one when one was asked for.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
import hashlib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from aerodrome.core import (
    App,
    Certificate,
    Clock,
    EdgeTLS,
    NotFoundError,
    Store,
    UnavailableError,
    UnprocessableError,
    rfc3339,
)

log = logging.getLogger("aerodrome.certificates")

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_RENEW_WITHIN = datetime.timedelta(days=30)  # CA certificates closer than this to expiry are reissued at start
_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The leaf of a chain, as the API describes it."""

    issuer: str
    expires_at: str
    key_type: str  # rsa | ecdsa
    fingerprint: str  # SHA-256 of the DER leaf, hex


@dataclass(frozen=True, slots=True)
class CheckReport:
    certificate: Certificate
    routed: bool  # the edge routes the hostname to the app
    served: CertificateInfo | None  # what the edge presented for the hostname's SNI, if it answered
    errors: tuple[tuple[str, str], ...]  # (code, message)

    @property
    def configured(self) -> bool:
        return not self.errors


def check_hostname(value: object, app_domain: str) -> str:
    """A DNS name of two labels or more, lower-cased; app subdomains (`<app>.<domain>`) are the edge's own."""
    if not isinstance(value, str) or not value.strip():
        raise UnprocessableError("hostname is required")
    hostname = value.strip().lower().rstrip(".")
    labels = hostname.split(".")
    if len(hostname) > 253:  # not echoed: an error stays short whatever was sent
        raise UnprocessableError(f"invalid hostname: {len(hostname)} characters, a DNS name has at most 253")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise UnprocessableError(f"invalid hostname {hostname!r}: use a DNS name such as www.example.com")
    if labels[-1].isdigit():
        raise UnprocessableError(f"invalid hostname {hostname!r}: IP addresses take no certificate here")
    domain = app_domain.strip(".").lower()
    if hostname == domain or hostname.endswith("." + domain):
        raise UnprocessableError(f"hostname {hostname!r} is under {domain}, where every app has its name already")
    return hostname


def describe(pem: str | bytes) -> CertificateInfo:
    """Issuer, expiry, key type and fingerprint of the first certificate of a PEM chain."""
    data = pem.encode() if isinstance(pem, str) else pem
    return _info(x509.load_pem_x509_certificates(data)[0])


def _info(leaf: x509.Certificate) -> CertificateInfo:
    names = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = str(names[0].value) if names else leaf.issuer.rfc4514_string()
    key_type = "rsa" if isinstance(leaf.public_key(), rsa.RSAPublicKey) else "ecdsa"
    fingerprint = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    return CertificateInfo(issuer, rfc3339(leaf.not_valid_after_utc.timestamp()), key_type, fingerprint)


def _covers(leaf: x509.Certificate, hostname: str) -> bool:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        patterns = [name.lower().rstrip(".") for name in names.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:  # only certificates without SANs fall back to the common name
        patterns = [str(a.value).lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    for pattern in patterns:
        if pattern == hostname:
            return True
        # A wildcard stands for exactly one leftmost label.
        if pattern.startswith("*.") and hostname.split(".", 1)[-1] == pattern[2:] and hostname.count(".") >= 2:
            return True
    return False


def validate_custom(hostname: str, fullchain: object, private_key: object, now: float) -> tuple[str, bytes]:
    """The chain and the key (both PEM) of an uploaded certificate that can serve `hostname` now."""
    if not isinstance(fullchain, str) or not fullchain.strip():
        raise UnprocessableError("fullchain is required: the PEM certificate chain, leaf first")
    if not isinstance(private_key, str) or not private_key.strip():
        raise UnprocessableError("private_key is required: the PEM private key of the leaf certificate")
    try:
        chain = x509.load_pem_x509_certificates(fullchain.encode())
    except ValueError:
        raise UnprocessableError("fullchain is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError):
        raise UnprocessableError("private_key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UnprocessableError("private_key must be an RSA or ECDSA key")
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise UnprocessableError("private_key does not match the certificate (the first one of fullchain)")
    if not _covers(leaf, hostname):
        raise UnprocessableError(f"the certificate does not cover {hostname} (its subject alternative names)")
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if leaf.not_valid_after_utc <= moment:
        raise UnprocessableError(f"the certificate expired at {rfc3339(leaf.not_valid_after_utc.timestamp())}")
    if leaf.not_valid_before_utc > moment:
        raise UnprocessableError(
            f"the certificate is not valid before {rfc3339(leaf.not_valid_before_utc.timestamp())}"
        )
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    clear = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode(), clear


class Certificates:
    """Add, list and remove an app's hostnames; tell the edge what to serve for each.

    `edge` issues `aerodrome` certificates and serves every hostname's chain; `edge_https` is where it terminates
    TLS (for `check`). Without them (a control plane with no edge) CA certificates cannot be issued."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        key: bytes,
        *,
        app_domain: str = "localhost",
        edge: EdgeTLS | None = None,
        edge_https: tuple[str, int] | None = None,
        changed: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._changed = changed or (lambda _app: None)  # told the app after each change: the other replicas
        self._clock = clock
        self._fernet = Fernet(key)
        self._app_domain = app_domain
        self._edge = edge
        self._edge_https = edge_https
        self._apps: dict[str, str] = {}  # hostname → app, for the edge's routing
        self._lock = asyncio.Lock()

    def app_for(self, hostname: str) -> str | None:
        """The app a custom hostname routes to (the edge's lookup; no I/O)."""
        return self._apps.get(hostname.lower().rstrip("."))

    async def load(self) -> None:
        """Serve every stored hostname; CA certificates near their expiry are reissued first."""
        horizon = datetime.datetime.fromtimestamp(self._clock.now(), datetime.UTC) + _RENEW_WITHIN
        for cert in await self._store.list_certificates():
            leaf = x509.load_pem_x509_certificates(cert.fullchain.encode())[0]
            if cert.source == "aerodrome" and self._edge is not None and leaf.not_valid_after_utc < horizon:
                cert = self._issued(cert.hostname, cert.app_name, cert.created_at)
                await self._store.put_certificate(cert)
            self._installed(cert, announce=False)

    async def refresh(self, app_name: str | None = None) -> None:
        """Serve what the store holds for the app (None: every app): another replica changed its hostnames."""
        stored = {c.hostname: c for c in await self._store.list_certificates(app_name)}
        served = [h for h, owner in self._apps.items() if app_name is None or owner == app_name]
        for hostname in served:
            if hostname not in stored:
                self._apps.pop(hostname, None)
                if self._edge is not None:
                    self._edge.withdraw_hostname(hostname)
        for cert in stored.values():
            self._installed(cert, announce=False)

    async def list(
        self, app: App, *, filter_: str = "", cursor: str = "", limit: int = 25
    ) -> tuple[builtins.list[Certificate], str]:
        """A page of the app's hostnames in order, with a substring filter; returns (page, next cursor or "")."""
        limit = max(1, min(limit, 500))
        matching = [c for c in await self._store.list_certificates(app.name) if filter_.lower() in c.hostname]
        page = [c for c in matching if c.hostname > cursor][: limit + 1]
        more = len(page) > limit
        return page[:limit], page[limit - 1].hostname if more else ""

    async def count(self, app: App, *, filter_: str = "") -> int:
        return sum(filter_.lower() in c.hostname for c in await self._store.list_certificates(app.name))

    async def get(self, app: App, hostname: str) -> Certificate:
        cert = await self._store.get_certificate(hostname.lower().rstrip("."))
        if cert is None or cert.app_name != app.name:
            raise NotFoundError(f"certificate for {hostname!r} not found")
        return cert

    async def request_acme(self, app: App, hostname: object) -> Certificate:
        """Ask for a CA certificate. A hostname with a custom one keeps serving it, and falls back later."""
        name = check_hostname(hostname, self._app_domain)
        async with self._lock:
            existing = await self._owned(app, name)
            now = rfc3339(self._clock.now())
            if existing is None:
                cert = self._issued(name, app.name, now)
            elif existing.source == "custom":
                cert = dataclasses.replace(existing, acme_requested=True, updated_at=now)
            else:
                return existing
            await self._store.put_certificate(cert)
        self._installed(cert)
        return cert

    async def upload_custom(self, app: App, hostname: object, fullchain: object, private_key: object) -> Certificate:
        name = check_hostname(hostname, self._app_domain)
        pem, key = validate_custom(name, fullchain, private_key, self._clock.now())
        async with self._lock:
            existing = await self._owned(app, name)
            now = rfc3339(self._clock.now())
            cert = Certificate(
                hostname=name,
                app_name=app.name,
                source="custom",
                fullchain=pem,
                key_ciphertext=self._fernet.encrypt(key),
                acme_requested=existing is not None and existing.acme_requested,
                created_at=existing.created_at if existing is not None else now,
                updated_at=now,
            )
            await self._store.put_certificate(cert)
        self._installed(cert)
        return cert

    async def remove(self, app: App, hostname: str) -> Certificate:
        """Remove the hostname and its certificates: the edge stops serving and routing it."""
        async with self._lock:
            cert = await self.get(app, hostname)
            await self._store.delete_certificate(cert.hostname)
        self._removed(cert)
        return cert

    async def remove_acme(self, app: App, hostname: str) -> Certificate | None:
        """Drop the CA certificate; the hostname goes with it unless a custom one remains (returned)."""
        cert = await self.get(app, hostname)
        if not cert.acme_requested:
            raise NotFoundError(f"no ACME certificate was requested for {cert.hostname!r}")
        if cert.source == "aerodrome":
            await self.remove(app, cert.hostname)
            return None
        async with self._lock:
            kept = dataclasses.replace(cert, acme_requested=False, updated_at=rfc3339(self._clock.now()))
            await self._store.put_certificate(kept)
        return kept

    async def remove_custom(self, app: App, hostname: str) -> Certificate | None:
        """Drop the custom certificate; a requested CA one takes over (returned), else the hostname goes."""
        cert = await self.get(app, hostname)
        if cert.source != "custom":
            raise NotFoundError(f"no custom certificate for {cert.hostname!r}")
        if not cert.acme_requested:
            await self.remove(app, cert.hostname)
            return None
        async with self._lock:
            fallback = self._issued(cert.hostname, app.name, cert.created_at)
            await self._store.put_certificate(fallback)
        self._installed(fallback)
        return fallback

    async def remove_all(self, app: App) -> None:
        """Remove every hostname of the app (before it is deleted), so the edge forgets them."""
        for cert in await self._store.list_certificates(app.name):
            await self._store.delete_certificate(cert.hostname)
            self._removed(cert)

    async def check(self, app: App, hostname: str) -> CheckReport:
        """Whether the edge routes the hostname to the app and presents its stored certificate for its SNI."""
        cert = await self.get(app, hostname)
        stored = describe(cert.fullchain)
        errors: builtins.list[tuple[str, str]] = []
        routed = self.app_for(cert.hostname) == app.name
        if not routed:
            errors.append(("not_routed", f"the edge does not route {cert.hostname} to {app.name}"))
        served: CertificateInfo | None = None
        try:
            served = await self._probe(cert.hostname)
        except (OSError, TimeoutError, ssl.SSLError, UnavailableError) as exc:
            errors.append(("tls_unreachable", f"no TLS handshake with the edge for {cert.hostname}: {exc}"))
        if served is not None and served.fingerprint != stored.fingerprint:
            errors.append(
                (
                    "certificate_mismatch",
                    f"the edge presents a certificate issued by {served.issuer} (sha256 {served.fingerprint}), "
                    f"not the stored one (sha256 {stored.fingerprint})",
                )
            )
        return CheckReport(cert, routed, served, tuple(errors))

    async def _probe(self, hostname: str) -> CertificateInfo:
        if self._edge_https is None:
            raise UnavailableError("the edge is not running")
        host, port = self._edge_https
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        # Any certificate is accepted: the point is to see which one is presented, trusted or not.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        async with asyncio.timeout(_PROBE_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=hostname)
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        return _info(x509.load_der_x509_certificate(der))

    async def _owned(self, app: App, hostname: str) -> Certificate | None:
        existing = await self._store.get_certificate(hostname)
        if existing is not None and existing.app_name != app.name:
            raise UnprocessableError(f"hostname {hostname!r} already belongs to another app", status="name_taken")
        return existing

    def _issued(self, hostname: str, app_name: str, created_at: str) -> Certificate:
        if self._edge is None:
            raise UnavailableError("no certificate authority: the edge is not running")
        leaf, key = self._edge.issue_hostname(hostname)
        return Certificate(
            hostname=hostname,
            app_name=app_name,
            source="aerodrome",
            fullchain=(leaf + self._edge.hostname_ca_pem()).decode(),
            key_ciphertext=self._fernet.encrypt(key),
            acme_requested=True,
            created_at=created_at,
            updated_at=rfc3339(self._clock.now()),
        )

    def _installed(self, cert: Certificate, *, announce: bool = True) -> None:
        self._apps[cert.hostname] = cert.app_name
        if self._edge is not None:
            chain, key = cert.fullchain.encode(), self._fernet.decrypt(cert.key_ciphertext)
            _tell_edge(cert, lambda edge: edge.serve_hostname(cert.hostname, chain, key), self._edge)
        if announce:
            self._changed(cert.app_name)

    def _removed(self, cert: Certificate) -> None:
        self._apps.pop(cert.hostname, None)
        if self._edge is not None:
            _tell_edge(cert, lambda edge: edge.withdraw_hostname(cert.hostname), self._edge)
        self._changed(cert.app_name)


def _tell_edge(cert: Certificate, change: Callable[[EdgeTLS], None], edge: EdgeTLS) -> None:
    # The edge's failure (say, a chain its TLS library refuses) must not undo the change itself.
    try:
        change(edge)
    except Exception:
        log.exception("the edge could not take the certificate of %s (%s)", cert.hostname, cert.app_name)
