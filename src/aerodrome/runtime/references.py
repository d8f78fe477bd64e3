"""Image references: parsing `[registry/]repository[:tag][@digest]` and choosing where to pull them from.

A reference without a registry host is tried against each configured registry in order (the embedded one
first). A mirror map rewrites names before that: a key matches a whole repository (`flyio/mcp`) or a leading
part of the name (`registry.fly.io`, `docker.io/library`); the key that leaves least of the name unmatched
wins, and the matched part is replaced by the value (`127.0.0.1:5000/flyio/mcp`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aerodrome.core import InvalidArgumentError

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")

DEFAULT_TAG = "latest"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference; `registry` is empty when the client named none."""

    repository: str
    registry: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """`registry/repository`, or the repository alone when no registry was named."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def locator(self) -> str:
        """The form skopeo accepts, which forbids a tag beside a digest: `name@digest`, else `name:tag`."""
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag or DEFAULT_TAG}"

    def pinned(self, digest: str) -> ImageReference:
        """The same repository at one manifest digest (the tag kept for display)."""
        return replace(self, digest=digest)


def parse_reference(text: str) -> ImageReference:
    """Parse a reference as Docker does; a missing tag and digest means `latest`."""
    remainder = text.strip()
    if not remainder:
        raise InvalidArgumentError("invalid image reference: empty")
    digest = ""
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidArgumentError(f"invalid image reference {text!r}: bad digest {digest!r}")
    tag = ""
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidArgumentError(f"invalid image reference {text!r}: bad tag {tag!r}")
    registry, repository = _split_registry(remainder)
    if not repository or not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidArgumentError(f"invalid image reference {text!r}: bad repository name {repository!r}")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageReference(repository=repository, registry=registry, tag=tag, digest=digest)


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    # Docker's rule: the first component is a host when it has a dot or a port, or is localhost.
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not _HOST.fullmatch(first):
            raise InvalidArgumentError(f"invalid image reference {name!r}: bad registry host {first!r}")
        return first, rest
    return "", name


def apply_mirror(ref: ImageReference, mirrors: Mapping[str, str]) -> ImageReference | None:
    """The reference rewritten by the mirror key covering most of its name, or None when no key matches."""
    names = [ref.name]
    if not ref.registry:  # Docker's implied forms of a short name
        names.append(f"docker.io/{ref.name}")
        if "/" not in ref.name:
            names.append(f"docker.io/library/{ref.name}")
    best: tuple[int, str] | None = None
    for name in names:
        for key, value in mirrors.items():
            key = key.rstrip("/")
            uncovered = len(name) - len(key)
            if (name == key or name.startswith(key + "/")) and (best is None or uncovered < best[0]):
                best = (uncovered, value.rstrip("/") + name[len(key) :])
    if best is None:
        return None
    registry, repository = _split_registry(best[1])
    return ImageReference(repository=repository, registry=registry, tag=ref.tag, digest=ref.digest)


def candidate_sources(
    ref: ImageReference, registries: Sequence[str], mirrors: Mapping[str, str]
) -> list[ImageReference]:
    """Fully qualified references to try in order: the mirror's first, then the reference itself."""
    candidates: list[ImageReference] = []
    for option in (apply_mirror(ref, mirrors), ref):
        if option is None:
            continue
        hosts = [option.registry] if option.registry else list(registries)
        for host in hosts:
            qualified = replace(option, registry=host)
            if qualified not in candidates:
                candidates.append(qualified)
    return candidates


def is_loopback_host(host: str) -> bool:
    """True for registries on this host (`127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`): plain http."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hostname = hostname.strip("[]")
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
