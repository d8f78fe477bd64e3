"""Tokens in the store and the control plane's authentication over it: revocation and last use."""

from __future__ import annotations

import pytest

from aerodrome.control.auth import LAST_USED_EVERY, Tokens
from aerodrome.core import NotFoundError, UnauthenticatedError
from aerodrome.store import SqlStore


class SteppedClock:
    def __init__(self) -> None:
        self.seconds = 1_800_000_000.0

    def now(self) -> float:
        return self.seconds

    def monotonic(self) -> float:
        return self.seconds


async def test_last_use_is_written_at_most_once_a_minute_per_token(store: SqlStore) -> None:
    await store.ensure_org("personal", "Personal")
    clock = SteppedClock()
    tokens = Tokens(store, clock)
    secret = await tokens.create("personal", "deploy")
    writes: list[dict[str, str]] = []
    touch = store.touch_tokens

    async def counted(used: dict[str, str]) -> None:
        writes.append(used)
        await touch(used)

    store.touch_tokens = counted  # type: ignore[method-assign]
    for _ in range(50):
        await tokens.authenticate(f"Bearer {secret}")
        clock.seconds += 0.5
    assert len(writes) == 1
    clock.seconds += LAST_USED_EVERY
    await tokens.authenticate(f"Bearer {secret}")
    assert len(writes) == 2
    (listed,) = await tokens.of_org("personal")
    assert listed.last_used_at == next(iter(writes[1].values()))


async def test_a_revoked_token_is_refused_though_it_was_remembered(store: SqlStore) -> None:
    await store.ensure_org("personal", "Personal")
    await store.ensure_org("other", "Other")
    tokens = Tokens(store, SteppedClock())
    kept, doomed = await tokens.create("personal", "kept"), await tokens.create("personal", "doomed")
    theirs = await tokens.create("other", "theirs")
    doomed_id = (await tokens.authenticate(doomed)).id
    their_id = (await tokens.authenticate(theirs)).id
    with pytest.raises(NotFoundError):
        await tokens.revoke("personal", their_id)
    revoked = await tokens.revoke("personal", doomed_id)
    assert revoked.revoked_at is not None
    assert (await tokens.revoke("personal", doomed_id)).revoked_at == revoked.revoked_at  # the first time stays
    with pytest.raises(UnauthenticatedError):
        await tokens.authenticate(f"Bearer {doomed}")
    with pytest.raises(UnauthenticatedError):  # a fresh process, reading the store, refuses it too
        await Tokens(store, SteppedClock()).authenticate(doomed)
    assert (await tokens.authenticate(kept)).name == "kept"
    assert (await tokens.authenticate(theirs)).id == their_id
    assert [t.name for t in await tokens.of_org("personal")] == ["kept", "doomed"]
