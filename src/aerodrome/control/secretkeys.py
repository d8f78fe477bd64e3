"""Secret keys (Fly's `secretkeys`, `fly secrets keys`): an app's named, versioned keys that never leave the
server, used through it to encrypt, decrypt, sign and verify.

Kinds, with `cryptography`: `hs256`/`hs384`/`hs512` (HMAC-SHA2: sign, verify), `es256` (ECDSA P-256 with SHA-256,
DER signatures: sign, verify, and its public key shown), `xaes256gcm` (XAES-256-GCM, C2SP's extended-nonce
AES-GCM: a random 24-byte nonce before the ciphertext and its tag). Fly's NaCl kinds need libsodium's XSalsa20
and are refused by name. A key is stored encrypted like app secrets; setting or generating a name adds a version,
and operations use the newest unless `version` names one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aerodrome.core import (
    App,
    Clock,
    InvalidArgumentError,
    NotFoundError,
    SecretKey,
    Store,
    UnprocessableError,
    rfc3339,
)

HMACS = {"hs256": hashlib.sha256, "hs384": hashlib.sha384, "hs512": hashlib.sha512}
SUPPORTED = (*HMACS, "es256", "xaes256gcm")
UNSUPPORTED = ("nacl_auth", "nacl_box", "nacl_secretbox", "nacl_sign")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_INPUT = 1024 * 1024


def xaes_key(key: bytes, nonce: bytes) -> bytes:
    """XAES-256-GCM's derived key: two AES-256-CMAC blocks over the nonce's first 12 bytes (C2SP xaes-256-gcm)."""
    encrypt = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    lead = int.from_bytes(encrypt.update(bytes(16)), "big")
    k1 = ((lead << 1) & ((1 << 128) - 1)) ^ (0x87 if lead >> 127 else 0)
    blocks = [int.from_bytes(b"\x00" + bytes([i]) + b"X\x00" + nonce[:12], "big") ^ k1 for i in (1, 2)]
    return b"".join(encrypt.update(block.to_bytes(16, "big")) for block in blocks)


def _generate(kind: str) -> bytes:
    if kind == "es256":
        private = ec.generate_private_key(ec.SECP256R1())
        return private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return os.urandom(64 if kind == "hs512" else 48 if kind == "hs384" else 32)


def _check_material(kind: str, value: bytes) -> None:
    if kind == "xaes256gcm" and len(value) != 32:
        raise InvalidArgumentError("invalid value: an xaes256gcm key is 32 bytes")
    if kind in HMACS and not 16 <= len(value) <= 1024:
        raise InvalidArgumentError("invalid value: an HMAC key is 16-1024 bytes")
    if kind == "es256":
        try:
            private = serialization.load_der_private_key(value, password=None)
        except ValueError:
            raise InvalidArgumentError("invalid value: an es256 key is a PKCS#8 DER P-256 private key") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
            raise InvalidArgumentError("invalid value: an es256 key is a P-256 private key")


def public_key(kind: str, material: bytes) -> bytes | None:
    if kind != "es256":
        return None
    private = serialization.load_der_private_key(material, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class SecretKeys:
    def __init__(self, store: Store, clock: Clock, key: bytes) -> None:
        self._store = store
        self._clock = clock
        self._fernet = Fernet(key)

    async def set(self, app: App, name: str, kind: object, value: bytes | None) -> tuple[SecretKey, bytes]:
        """A new version of `name`: `value` as given, or generated when None. Returns it and its material."""
        if not _NAME.match(name):
            raise InvalidArgumentError(f"invalid secret key name {name[:40]!r}")
        if kind in UNSUPPORTED:
            raise UnprocessableError(f"secret key type {kind} is not supported here (NaCl needs libsodium)")
        if not isinstance(kind, str) or kind not in SUPPORTED:
            raise InvalidArgumentError(f"invalid type: use one of {', '.join(SUPPORTED)}")
        material = _generate(kind) if value is None else value
        _check_material(kind, material)
        record = SecretKey(app.name, name, 0, kind, self._fernet.encrypt(material), rfc3339(self._clock.now()))
        return await self._store.add_secret_key(record), material

    async def get(self, app: App, name: str, version: int | None = None) -> tuple[SecretKey, bytes]:
        record = await self._store.get_secret_key(app.name, name, version)
        if record is None:
            raise NotFoundError(f"secret key {name!r} not found")
        return record, self._fernet.decrypt(record.key_ciphertext)

    @staticmethod
    def public_key_of(kind: str, material: bytes) -> bytes | None:
        return public_key(kind, material)

    async def list(self, app: App) -> list[tuple[SecretKey, bytes]]:
        return [(k, self._fernet.decrypt(k.key_ciphertext)) for k in await self._store.list_secret_keys(app.name)]

    async def delete(self, app: App, name: str) -> None:
        if not await self._store.delete_secret_key(app.name, name):
            raise NotFoundError(f"secret key {name!r} not found")

    async def encrypt(self, app: App, name: str, plaintext: bytes, associated: bytes, version: int | None) -> bytes:
        _, material = await self._keyed(app, name, version, "xaes256gcm")
        nonce = os.urandom(24)
        return nonce + AESGCM(xaes_key(material, nonce)).encrypt(nonce[12:], plaintext, associated or None)

    async def decrypt(self, app: App, name: str, ciphertext: bytes, associated: bytes, version: int | None) -> bytes:
        _, material = await self._keyed(app, name, version, "xaes256gcm")
        if len(ciphertext) < 24 + 16:
            raise InvalidArgumentError("invalid ciphertext: too short")
        nonce = ciphertext[:24]
        try:
            return AESGCM(xaes_key(material, nonce)).decrypt(nonce[12:], ciphertext[24:], associated or None)
        except InvalidTag:
            raise InvalidArgumentError("ciphertext does not decrypt with this key") from None

    async def sign(self, app: App, name: str, plaintext: bytes, version: int | None) -> bytes:
        record, material = await self._keyed(app, name, version, "hs256", "hs384", "hs512", "es256")
        if record.type in HMACS:
            return hmac.new(material, plaintext, HMACS[record.type]).digest()
        private = serialization.load_der_private_key(material, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return private.sign(plaintext, ec.ECDSA(hashes.SHA256()))

    async def verify(self, app: App, name: str, plaintext: bytes, signature: bytes, version: int | None) -> None:
        record, material = await self._keyed(app, name, version, "hs256", "hs384", "hs512", "es256")
        if record.type in HMACS:
            if not hmac.compare_digest(hmac.new(material, plaintext, HMACS[record.type]).digest(), signature):
                raise InvalidArgumentError("signature does not verify")
            return
        private = serialization.load_der_private_key(material, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        try:
            private.public_key().verify(signature, plaintext, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidArgumentError("signature does not verify") from None

    async def _keyed(self, app: App, name: str, version: int | None, *kinds: str) -> tuple[SecretKey, bytes]:
        record, material = await self.get(app, name, version)
        if record.type not in kinds:
            raise InvalidArgumentError(f"a {record.type} key cannot do this: use a {' or '.join(kinds)} key")
        return record, material
