"""Who may do what in the embedded registry. Pure policy: the control plane looks the owners up, the runtime and
the token endpoint apply it.

A repository belongs to the owner of its first path component, as `registry.fly.io/<app>` belongs to the app's
organisation: an organisation's slug (`personal/tools`) or one of its apps (`my-app`, `my-app/worker`). A slug
wins over an app of the same name, so an app named after another organisation claims nothing of it. The shared
namespaces (`flyio/…`, `library/…`) are pulled by every organisation and written only by the host's operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SHARED_NAMESPACES = frozenset({"flyio", "library"})
PULL, PUSH, DELETE = "pull", "push", "delete"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE})
NO_ACTIONS: frozenset[str] = frozenset()


def namespace_of(repository: str) -> str:
    """The first path component of a repository name: whose it is."""
    return repository.split("/", 1)[0]


def granted_actions(namespace: str, requester: str | None, owner: str | None) -> frozenset[str]:
    """What `requester` (an organisation's slug, or None for the host's operator) may do in a namespace whose
    owning organisation is `owner` (None: shared, or claimed by nobody)."""
    if requester is None:
        return ALL_ACTIONS
    if namespace in SHARED_NAMESPACES:
        return frozenset({PULL})
    return ALL_ACTIONS if owner is not None and owner == requester else NO_ACTIONS


@dataclass(frozen=True, slots=True)
class PullGrant:
    """The embedded registry's repositories one organisation's machines may be created from: those whose first
    path component is in `namespaces` (its slug, its apps, the shared namespaces)."""

    org_slug: str
    namespaces: frozenset[str]

    def allows(self, repository: str) -> bool:
        return namespace_of(repository) in self.namespaces


class RegistrySigner(Protocol):
    """Signs the embedded registry's bearer tokens (Docker's token spec), and knows the operator's credential."""

    @property
    def service(self) -> str:
        """The registry's `service` name, the tokens' audience."""
        ...

    def sign(self, subject: str, access: Sequence[dict[str, Any]], lifetime: float) -> str:
        """A JWT granting `access` (`[{"type", "name", "actions"}]`) to `subject` for `lifetime` seconds."""
        ...

    def is_operator(self, secret: str) -> bool:
        """True for the host operator's registry credential (compared in constant time)."""
        ...
