"""App secrets: encrypted at rest (Fernet, key in the data directory), injected as env when a machine starts."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from cryptography.fernet import Fernet

from aerodrome.core import Clock, InvalidArgumentError, NotFoundError, Secret, Store, rfc3339

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secrets:
    def __init__(self, store: Store, clock: Clock, key: bytes) -> None:
        self._store = store
        self._clock = clock
        self._fernet = Fernet(key)

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    async def set(self, app_name: str, values: Mapping[str, object]) -> int:
        """Upsert (str) or delete (None) secrets; return the app's new secrets version."""
        now = rfc3339(self._clock.now())
        existing = {s.name: s for s in await self._store.list_secrets(app_name)}
        upserts: list[Secret] = []
        deleted: list[str] = []
        for name, value in values.items():
            if not _NAME.match(name):
                raise InvalidArgumentError(f"invalid secret name {name!r}")
            if value is None:
                deleted.append(name)
                continue
            if not isinstance(value, str):
                raise InvalidArgumentError(f"secret {name!r}: value must be a string or null")
            created = existing[name].created_at if name in existing else now
            upserts.append(
                Secret(app_name, name, self._fernet.encrypt(value.encode()), _digest(value), 0, created, now)
            )
        return await self._store.put_secrets(app_name, upserts, deleted)

    async def list(self, app_name: str) -> list[Secret]:
        return await self._store.list_secrets(app_name)

    async def get(self, app_name: str, name: str) -> Secret:
        for secret in await self._store.list_secrets(app_name):
            if secret.name == name:
                return secret
        raise NotFoundError(f"secret {name!r} not found")

    def reveal(self, secret: Secret) -> str:
        return self._fernet.decrypt(secret.ciphertext).decode()

    async def env(self, app_name: str) -> dict[str, str]:
        return {s.name: self.reveal(s) for s in await self._store.list_secrets(app_name)}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]
