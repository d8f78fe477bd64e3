"""App secrets: encrypted at rest (Fernet, key in the data directory), injected as env when a machine starts, and
as files (`files[].secret_name`). Every change bumps the app's secrets version; a machine made or updated with a
`min_secrets_version` the app has not reached is refused."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet

from aerodrome.core import (
    Clock,
    FailedPreconditionError,
    GuestFile,
    InvalidArgumentError,
    NotFoundError,
    Secret,
    Store,
    parse_int,
    rfc3339,
)

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

    async def version(self, app_name: str) -> int:
        return await self._store.secrets_version(app_name)

    async def require_version(self, app_name: str, minimum: object) -> None:
        """Refuse a machine made for secrets the app does not have yet (fly-go's `min_secrets_version`, sent
        with the version a secrets change answered)."""
        if minimum is None:
            return
        wanted = parse_int(minimum, "min_secrets_version", 0, 2**63 - 1)
        current = await self._store.secrets_version(app_name)
        if wanted > current:
            raise FailedPreconditionError(
                f"min_secrets_version {wanted} is newer than app {app_name}'s secrets version {current}"
            )

    async def guest_files(self, app_name: str, files: Sequence[GuestFile]) -> tuple[GuestFile, ...]:
        """`files` with each `secret_name` replaced by that secret's value, base64-decoded as Fly's are."""
        if not any(f.secret_name for f in files):
            return tuple(files)
        known = {s.name: s for s in await self._store.list_secrets(app_name)}
        resolved = []
        for guest_file in files:
            if guest_file.secret_name:
                secret = known.get(guest_file.secret_name)
                if secret is None:
                    raise InvalidArgumentError(
                        f"invalid files: {guest_file.guest_path} names secret {guest_file.secret_name!r}, "
                        f"which app {app_name} does not have"
                    )
                guest_file = dataclasses.replace(guest_file, data=_file_content(guest_file, self.reveal(secret)))
            resolved.append(guest_file)
        return tuple(resolved)


def _file_content(guest_file: GuestFile, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(
            f"invalid files: secret {guest_file.secret_name!r} for {guest_file.guest_path} is not base64"
        ) from None


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]
