"""Where the daemon may fetch an image from, and how it speaks to the embedded registry.

An image reference can name any host and port, and the daemon connects as root: only the registries allowed
(the embedded one, the mirrors' targets, and `serve --allow-registry`) are ever contacted. In the embedded
registry an organisation's machines are made only from repositories its `PullGrant` covers, checked here before
anything is resolved or taken from the local cache; the daemon's own requests carry a short-lived bearer token
for the one repository. What a registry answered never reaches an error message: skopeo's output is classified
into a fixed message naming the registry and the kind of failure (and logged, cut short, for the operator).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aerodrome.core import (
    SHARED_NAMESPACES,
    AerodromeError,
    InvalidArgumentError,
    NotFoundError,
    PullGrant,
    UnavailableError,
)
from aerodrome.runtime.process import ToolError
from aerodrome.runtime.references import ImageReference, is_loopback_host, parse_reference
from aerodrome.runtime.registry_tokens import RegistryTokens

log = logging.getLogger("aerodrome.images")

_NOT_FOUND = ("manifest unknown", "name unknown", "not found", "no such file")
_DENIED = ("unauthorized", "denied", "authentication required")
_UNREACHABLE = {
    "connection refused": "connection refused",
    "no such host": "unknown host",
    "timeout": "timed out",
    "tls": "TLS handshake failed",
    "x509": "TLS certificate not trusted",
    "connection reset": "connection reset",
    "eof": "connection closed early",
}
TOKEN_MARGIN = 30.0  # seconds a daemon token outlives the call it is made for


def allowed_registries(registries: Iterable[str], mirrors: Mapping[str, str], extra: Iterable[str] = ()) -> set[str]:
    """The default allow-list: the registries short names are looked up in, the mirrors' target hosts, `extra`."""
    allowed = set(registries) | set(extra)
    for target in mirrors.values():
        registry = parse_reference(target.rstrip("/") + "/x").registry
        if registry:
            allowed.add(registry)
    return allowed


@dataclass(frozen=True, slots=True)
class EmbeddedAccess:
    """The embedded registry, as the image store reaches it."""

    host: str  # host:port, as in image references
    tokens: RegistryTokens | None = None  # None: a registry without auth (a test's standalone one)
    problem: Callable[[], str | None] = lambda: None  # why it is down, or None

    def flags(self, prefix: str, repository: str, actions: Sequence[str], lifetime: float) -> tuple[str, ...]:
        if self.tokens is None:
            return ()
        token = self.tokens.repository_token(repository, actions, lifetime + TOKEN_MARGIN)
        return (f"--{prefix}registry-token={token}",)


class RegistryGate:
    """Admits the sources of a pull, and gives each skopeo call its registry's credentials."""

    def __init__(self, allowed: Iterable[str] | None, embedded: EmbeddedAccess | None = None) -> None:
        self.allowed = None if allowed is None else frozenset(allowed)
        self.embedded = embedded

    def is_embedded(self, source: ImageReference) -> bool:
        """The embedded registry, by its name or by another loopback name of its port (`localhost:5000` is
        `127.0.0.1:5000`): an alias must not escape its rules."""
        if self.embedded is None:
            return False
        host = self.embedded.host
        if source.registry == host:
            return True
        return is_loopback_host(host) and is_loopback_host(source.registry) and _port(source.registry) == _port(host)

    def admit(
        self, reference: str, candidates: Sequence[ImageReference], grant: PullGrant | None
    ) -> list[ImageReference]:
        """The candidates the daemon may pull `reference` from for `grant`'s organisation (None: the daemon's own
        pull, for a machine admitted before); a 400 when only disallowed registries remain, a 404 when the only
        repositories left belong to another organisation."""
        if not candidates:
            raise NotFoundError(f"image {reference} not found: no registry is configured for short names")
        allowed = [c for c in candidates if self.allowed is None or c.registry in self.allowed or self.is_embedded(c)]
        if not allowed:
            host = candidates[0].registry
            raise InvalidArgumentError(
                f"image {reference}: registry {host} is not allowed on this host "
                f"(the operator can allow it with `aerodrome serve --allow-registry {host}`)"
            )
        admitted = [c for c in allowed if grant is None or not self.is_embedded(c) or grant.allows(c.repository)]
        if not admitted:
            assert grant is not None
            shared = ", ".join(f"{name}/" for name in sorted(SHARED_NAMESPACES))
            raise NotFoundError(
                f"image {reference} not found: repository {allowed[0].repository} is not organization "
                f"{grant.org_slug}'s (its repositories are named after its apps or its slug; {shared} are shared)"
            )
        return admitted

    def check_up(self, source: ImageReference) -> None:
        if self.embedded is not None and self.is_embedded(source) and (problem := self.embedded.problem()):
            raise UnavailableError(f"the embedded registry {source.registry} is down: {problem}")

    def credentials(
        self, source: ImageReference, prefix: str, actions: Sequence[str], lifetime: float
    ) -> tuple[str, ...]:
        """skopeo flags for `source`: a bearer token on the embedded registry (`prefix` is `src-`, `dest-` or '')."""
        if self.embedded is None or not self.is_embedded(source):
            return ()
        return self.embedded.flags(prefix, source.repository, actions, lifetime)


def _port(host: str) -> str:
    _, sep, port = host.rpartition(":")
    return port if sep and port.isdigit() else ""


def classify(exc: ToolError, what: str, registry: str) -> AerodromeError:
    """A fixed message for a failed skopeo call on `registry`: never the registry's own words."""
    detail = exc.stderr[-2000:]
    log.warning("skopeo on %s for %s failed: %r", registry or "a local source", what, detail[-500:])
    lowered = detail.lower()
    where = f"registry {registry}" if registry else "the image source"
    if any(marker in lowered for marker in _NOT_FOUND):
        return NotFoundError(f"image {what} not found in {where}")
    if any(marker in lowered for marker in _DENIED):
        return UnavailableError(f"image {what}: {where} refused access")
    for marker, kind in _UNREACHABLE.items():
        if marker in lowered:
            return UnavailableError(f"image {what}: {where} is unreachable ({kind})")
    return UnavailableError(f"image {what}: {where} sent an answer that is not a usable image (invalid response)")
