"""Organisation tokens: issued once in plain text, stored hashed, accepted in every header form Fly's clients send."""

from __future__ import annotations

import hashlib
import re
import secrets

from aerodrome.core import Clock, NotFoundError, Store, Token, UnauthenticatedError, rfc3339, ulid

TOKEN_PREFIX = "fm2_"
_SCHEMES = re.compile(r"^\s*(?:bearer|flyv1)\s+", re.IGNORECASE)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MAX_TOKENS = 8  # comma-joined tokens in one header: a FlyV1 macaroon and its discharges
MAX_AUTHORIZATION_BYTES = 16 * 1024


def candidate_tokens(authorization: str, limit: int = MAX_TOKENS) -> list[str]:
    """The tokens in an Authorization header: `Bearer T`, `FlyV1 T`, `Bearer FlyV1 T`, comma-joined lists of at
    most `limit` (each is a lookup: more is refused before any)."""
    value = authorization
    for _ in range(2):  # schemes may be stacked ("Bearer FlyV1 …"), twice at most
        value = _SCHEMES.sub("", value, count=1)
    parts = value.split(",", limit)
    if len(parts) > limit:
        raise UnauthenticatedError(f"too many tokens in the authorization header (at most {limit})")
    return [part.strip() for part in parts if part.strip()]


class Tokens:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # Tokens are never changed once issued, so a found one is remembered: every request authenticates.
        self._known: dict[str, Token] = {}

    async def create(self, org_slug: str, name: str = "") -> str:
        """Issue a token for `org_slug`; the plain text is returned once and never stored."""
        if await self._store.get_org(org_slug) is None:
            raise NotFoundError(f"organization {org_slug!r} not found")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(id=ulid(), org_slug=org_slug, name=name, created_at=rfc3339(self._clock.now()))
        await self._store.add_token(token, hash_token(secret))
        return secret

    async def authenticate(
        self,
        authorization: str | None,
        *,
        max_tokens: int = MAX_TOKENS,
        max_bytes: int = MAX_AUTHORIZATION_BYTES,
    ) -> Token:
        if not authorization:
            raise UnauthenticatedError("missing authorization header")
        if len(authorization) > max_bytes:
            raise UnauthenticatedError(f"authorization header too long (at most {max_bytes} bytes)")
        for candidate in candidate_tokens(authorization, max_tokens):
            digest = hash_token(candidate)
            token = self._known.get(digest) or await self._store.find_token(digest)
            if token is not None:
                if len(self._known) < 10_000:
                    self._known[digest] = token
                return token
        raise UnauthenticatedError("invalid token")
