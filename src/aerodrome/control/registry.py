"""The embedded registry's authority: who owns a repository, what a caller may do there, and the tokens that say so
(Docker's token spec, served at the API's `/v2/token`).

A caller is an organisation, by one of its tokens (as a Basic password with any user name, or as a Bearer token),
or the host's operator, by the credential in the data directory. The policy itself is `granted_actions`; the
machine create path applies the same one through `pull_grant`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aerodrome.control.auth import MAX_AUTHORIZATION_BYTES, Tokens
from aerodrome.core import (
    SHARED_NAMESPACES,
    Clock,
    InvalidArgumentError,
    PullGrant,
    RegistrySigner,
    Store,
    UnauthenticatedError,
    UnavailableError,
    granted_actions,
    namespace_of,
    rfc3339,
)

TOKEN_LIFETIME = 300  # seconds, as Docker Hub's: clients ask again when a token expires
MAX_SCOPES = 16
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_KNOWN_ACTIONS = {"pull", "push", "delete", "*"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked: an organisation's slug, or None for the host's operator; `app_name` for a deploy token, which
    reaches its app's repositories (and the shared ones) only."""

    org_slug: str | None
    app_name: str | None = None

    @property
    def subject(self) -> str:
        return "operator" if self.org_slug is None else f"org:{self.org_slug}"


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]


class RegistryAccess:
    def __init__(self, store: Store, tokens: Tokens, clock: Clock, signer: RegistrySigner | None = None) -> None:
        self._store = store
        self._tokens = tokens
        self._clock = clock
        self._signer = signer

    async def owner_of(self, namespace: str) -> str | None:
        """The organisation a namespace belongs to: an organisation of that slug, else the app's; None when shared
        or claimed by nobody (only the operator writes there)."""
        if namespace in SHARED_NAMESPACES:
            return None
        if await self._store.get_org(namespace) is not None:
            return namespace
        app = await self._store.get_app(namespace)
        return app.org_slug if app is not None else None

    async def actions(self, caller: Caller, repository: str) -> frozenset[str]:
        namespace = namespace_of(repository)
        if caller.app_name is not None and namespace not in (caller.app_name, *SHARED_NAMESPACES):
            return frozenset()
        owner = None if caller.org_slug is None else await self.owner_of(namespace)
        return granted_actions(namespace, caller.org_slug, owner)

    async def pull_grant(self, org_slug: str) -> PullGrant:
        """The namespaces `org_slug`'s machines may be created from: its slug, its apps (but those named after
        another organisation, whose slug wins), the shared ones."""
        slugs = {org.slug for org in await self._store.list_orgs()}
        apps = {app.name for app in await self._store.list_apps(org_slug) if app.name not in slugs}
        return PullGrant(org_slug, frozenset({org_slug, *apps, *SHARED_NAMESPACES} - (slugs - {org_slug})))

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller from a token request's Authorization header: Basic (any user, the token as password) or
        Bearer; no credentials at all is refused (there are no anonymous pulls)."""
        if not authorization:
            raise UnauthenticatedError("registry token requests need credentials: an organisation token as password")
        if len(authorization) > MAX_AUTHORIZATION_BYTES:
            raise UnauthenticatedError(f"authorization header too long (at most {MAX_AUTHORIZATION_BYTES} bytes)")
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            token = await self._tokens.authenticate(authorization)
            return Caller(token.org_slug, token.app_name)
        password = _basic_password(value.strip())
        if self._signer is not None and self._signer.is_operator(password):
            return Caller(None)
        token = await self._tokens.authenticate(f"Bearer {password}")
        return Caller(token.org_slug, token.app_name)

    async def issue(self, authorization: str | None, service: str | None, scopes: Sequence[str]) -> dict[str, Any]:
        """Docker's token response for `scopes`: each granted as far as the policy allows (a scope the caller has
        no right to is left out, as the spec says, and the registry then refuses the request)."""
        signer = self._signer
        if signer is None:
            raise UnavailableError("the embedded registry's token service is not configured")
        caller = await self.authenticate(authorization)
        if service and service != signer.service:
            raise InvalidArgumentError(f"unknown service {service[:64]!r}: this host's registry is {signer.service!r}")
        access = []
        for scope in _parse_scopes(scopes):
            allowed = await self._allowed(caller, scope)
            if allowed:
                access.append({"type": scope.type, "name": scope.name, "actions": sorted(allowed)})
        token = signer.sign(caller.subject, access, TOKEN_LIFETIME)
        issued = rfc3339(self._clock.now())
        return {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME, "issued_at": issued}

    async def _allowed(self, caller: Caller, scope: Scope) -> frozenset[str]:
        if scope.type == "registry":  # the catalog lists every repository: the operator's alone
            return scope.actions & {"*"} if caller.org_slug is None and scope.name == "catalog" else frozenset()
        if scope.type != "repository":
            return frozenset()
        granted = await self.actions(caller, scope.name)
        return granted if "*" in scope.actions else scope.actions & granted


def _basic_password(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise UnauthenticatedError("malformed basic credentials") from None
    _, sep, password = decoded.partition(":")
    if not sep or not password:
        raise UnauthenticatedError("malformed basic credentials: use any user name and a token as password")
    return password


def _parse_scopes(scopes: Sequence[str]) -> list[Scope]:
    """`repository:NAME:pull,push` (Docker's scope grammar), several per parameter separated by spaces."""
    items = [item for value in scopes for item in value.split()]
    if len(items) > MAX_SCOPES:
        raise InvalidArgumentError(f"too many scopes: at most {MAX_SCOPES}")
    parsed = []
    for item in items:
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        kind = kind.split("(", 1)[0]  # `repository(plugin)` is a repository
        if kind not in ("repository", "registry") or not name or not actions:
            raise InvalidArgumentError(f"invalid scope {item[:100]!r}: use repository:NAME:ACTIONS")
        if kind == "repository" and (len(name) > 255 or not _REPOSITORY.fullmatch(name)):
            raise InvalidArgumentError(f"invalid scope {item[:100]!r}: bad repository name")
        parsed.append(Scope(kind, name, frozenset(actions.split(",")) & _KNOWN_ACTIONS))
    return parsed
