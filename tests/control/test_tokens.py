"""Token lifetimes on the control plane's clock: a deploy token is accepted until its expiry, then refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aerodrome.control.auth import Tokens, require_app, require_org_wide, token_lifetime
from aerodrome.core import InvalidArgumentError, PermissionDeniedError, UnauthenticatedError
from aerodrome.store import SqlStore
from tests.support.clock import ManualClock


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore.open_sqlite(tmp_path / "aerodrome.db")
    await opened.ensure_org("personal", "Personal")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_token_is_refused_from_its_expiry_on(store: SqlStore) -> None:
    clock = ManualClock()
    tokens = Tokens(store, clock)
    secret = await tokens.create("personal", "ci", app_name="web", lifetime=token_lifetime("1h"))
    token = await tokens.authenticate(f"FlyV1 {secret}")
    assert token.app_name == "web" and token.expires_at == int(clock.now()) + 3600
    clock.advance(3599)
    assert (await tokens.authenticate(f"Bearer {secret}")).id == token.id  # the remembered token is checked too
    clock.advance(1)
    with pytest.raises(UnauthenticatedError, match="token expired at"):
        await tokens.authenticate(f"Bearer {secret}")
    fresh = Tokens(store, clock)  # as after a restart: the expiry is the stored one
    with pytest.raises(UnauthenticatedError, match="token expired at"):
        await fresh.authenticate(f"Bearer {secret}")


async def test_an_organisation_token_never_expires_unless_asked(store: SqlStore) -> None:
    clock = ManualClock()
    tokens = Tokens(store, clock)
    secret = await tokens.create("personal", "org")
    clock.advance(100 * 365 * 24 * 3600)
    token = await tokens.authenticate(f"Bearer {secret}")
    assert token.expires_at is None and token.app_name is None
    require_org_wide(token, "anything")
    require_app(token, "any-app")


async def test_scopes_and_lifetimes_are_checked(store: SqlStore) -> None:
    tokens = Tokens(store, ManualClock())
    token = await tokens.authenticate(f"Bearer {await tokens.create('personal', 'd', app_name='web')}")
    require_app(token, "web")
    with pytest.raises(PermissionDeniedError, match="may act on app 'web' only"):
        require_app(token, "db")
    with pytest.raises(PermissionDeniedError, match="not the organization's tokens"):
        require_org_wide(token, "the organization's tokens")
    assert token_lifetime(None) == token_lifetime("") == 20 * 365 * 24 * 3600
    assert token_lifetime("175200h0m0s") == 20 * 365 * 24 * 3600
    for bad in ("0s", "1y", "175200h1s", True):
        with pytest.raises(InvalidArgumentError, match="expiry"):
            token_lifetime(bad)
