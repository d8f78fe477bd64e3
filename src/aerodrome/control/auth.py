"""Organisation tokens: issued once in plain text, stored hashed, accepted in every header form Fly's clients send,
listed without their secrets, and revoked. A deploy token (Fly's `deploy` profile) acts on one app only, and a
token may expire."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

import msgpack

from aerodrome.core import (
    Clock,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Store,
    Token,
    UnauthenticatedError,
    parse_duration,
    rfc3339,
    ulid,
)

TOKEN_PREFIX = "fm2_"
# fly-go keeps an `fm2_` token only if it decodes as a Fly macaroon that has not expired (else flyctl sends an empty
# `Bearer`): the location Fly's permission tokens carry, and no caveats, so no expiry.
MACAROON_LOCATION = "https://api.fly.io/v1"
_SCHEMES = re.compile(r"^\s*(?:bearer|flyv1)\s+", re.IGNORECASE)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(key_id: str) -> str:
    """A token in Fly's macaroon form (superfly/macaroon: msgpack `[nonce [kid rnd proof], location, caveats,
    tail]`, base64 after `fm2_`). Its 16 random nonce bytes and 32 random tail bytes are the secret: aerodrome
    finds a token by its hash, never by verifying a signature, so the tail signs nothing."""
    nonce = [key_id.encode(), secrets.token_bytes(16), False]
    encoded = msgpack.packb([nonce, MACAROON_LOCATION, [], secrets.token_bytes(32)], use_bin_type=True)
    return TOKEN_PREFIX + base64.b64encode(encoded).decode()


MAX_TOKENS = 8  # comma-joined tokens in one header: a FlyV1 macaroon and its discharges
MAX_AUTHORIZATION_BYTES = 16 * 1024
LAST_USED_EVERY = 60.0  # seconds: a token's last use is written at most this often, never once per request


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


TOKEN_LIFETIME = 20 * 365 * 24 * 3600.0  # Fly's default for deploy tokens, and here the longest: 20 years


def token_lifetime(expiry: object) -> float:
    """A token's lifetime in seconds from Fly's `expiry` (a Go duration, `"24h"`); absent or empty: 20 years."""
    if expiry is None or expiry == "":
        return TOKEN_LIFETIME
    seconds = parse_duration(expiry, field="expiry", maximum=TOKEN_LIFETIME)
    if seconds <= 0:
        raise InvalidArgumentError("invalid expiry: a token must live longer than 0s")
    return seconds


def require_org_wide(token: Token, what: str) -> None:
    """Refuse `what` (an organisation-wide action) to a token scoped to one app, as Fly refuses a deploy token."""
    if token.app_name is not None:
        raise PermissionDeniedError(f"this token may act on app {token.app_name!r} only, not {what}")


def require_app(token: Token, app_name: str) -> None:
    if token.app_name is not None and token.app_name != app_name:
        raise PermissionDeniedError(f"this token may act on app {token.app_name!r} only, not on {app_name!r}")


class Tokens:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # Every request authenticates, so a found token is remembered; revoke() forgets it before it answers.
        self._known: dict[str, Token] = {}
        self._last_written: dict[str, float] = {}  # token id -> monotonic time its last use was written

    async def create(
        self, org_slug: str, name: str = "", *, app_name: str | None = None, lifetime: float | None = None
    ) -> str:
        """Issue a token for `org_slug` (for its app `app_name` only, if given) that expires after `lifetime`
        seconds (never if None); the plain text is returned once and never stored."""
        if await self._store.get_org(org_slug) is None:
            raise NotFoundError(f"organization {org_slug!r} not found")
        token_id = ulid()
        secret = new_secret(token_id)
        now = self._clock.now()
        token = Token(
            id=token_id,
            org_slug=org_slug,
            name=name,
            created_at=rfc3339(now),
            app_name=app_name,
            expires_at=None if lifetime is None else int(now + lifetime),
        )
        await self._store.add_token(token, hash_token(secret))
        return secret

    def ephemeral(self, org_slug: str, name: str) -> str:
        """A token of `org_slug` known to this process only, never stored nor listed: the daemon's own requests
        for a machine (its /.fly/api socket). It ends with the process."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(id=ulid(), org_slug=org_slug, name=name, created_at=rfc3339(self._clock.now()))
        self._known[hash_token(secret)] = token
        self._last_written[token.id] = float("inf")  # nothing to write: the store has no row for it
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
            if token is None:
                continue
            if token.revoked_at is not None:
                raise UnauthenticatedError("token revoked")
            if token.expires_at is not None and self._clock.now() >= token.expires_at:
                raise UnauthenticatedError(f"token expired at {rfc3339(token.expires_at)}")
            if len(self._known) < 10_000:
                self._known[digest] = token
            await self._note_use(token)
            return token
        raise UnauthenticatedError("invalid token")

    async def of_org(self, org_slug: str) -> list[Token]:
        return await self._store.list_tokens(org_slug)

    async def revoke(self, org_slug: str, token_id: str) -> Token:
        """Revoke `org_slug`'s token `token_id`: refused from its next request. Another organisation's is absent."""
        token = await self._store.revoke_token(org_slug, token_id, rfc3339(self._clock.now()))
        if token is None:
            raise NotFoundError(f"token {token_id!r} not found")
        for digest in [digest for digest, known in self._known.items() if known.id == token_id]:
            del self._known[digest]
        return token

    async def _note_use(self, token: Token) -> None:
        now = self._clock.monotonic()
        if now - self._last_written.get(token.id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        if len(self._last_written) >= 10_000:
            self._last_written.clear()
        self._last_written[token.id] = now
        await self._store.touch_tokens({token.id: rfc3339(self._clock.now())})
