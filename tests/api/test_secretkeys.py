"""Secret keys through fly-go's flaps requests: bytes as base64, versions, each kind's operations."""

from __future__ import annotations

import base64

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aerodrome.control.secretkeys import xaes_key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_xaes_256_gcm_matches_c2sp_vectors() -> None:
    key, nonce = bytes([1]) * 32, b"ABCDEFGHIJKLMNOPQRSTUVWX"
    sealed = AESGCM(xaes_key(key, nonce)).encrypt(nonce[12:], b"XAES-256-GCM", None)
    assert sealed.hex() == "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271"
    key = bytes([3]) * 32
    sealed = AESGCM(xaes_key(key, nonce)).encrypt(nonce[12:], b"XAES-256-GCM", b"c2sp.org/XAES-256-GCM")
    assert sealed.hex() == "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d"


def test_encrypt_decrypt_with_versions(api: httpx.Client, app_name: str) -> None:
    keys = f"/v1/apps/{app_name}/secretkeys"
    first = api.post(f"{keys}/box/generate", json={"type": "xaes256gcm"})
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1 and "public_key" not in first.json()
    body = {"plaintext": b64(b"hello"), "associated_data": b64(b"ctx")}
    sealed = api.post(f"{keys}/box/encrypt", json=body).json()["ciphertext"]
    opened = api.post(f"{keys}/box/decrypt", json={"ciphertext": sealed, "associated_data": b64(b"ctx")}).json()
    assert base64.b64decode(opened["plaintext"]) == b"hello"
    wrong_context = api.post(f"{keys}/box/decrypt", json={"ciphertext": sealed, "associated_data": b64(b"other")})
    assert wrong_context.status_code == 400
    # a chosen key is version 2; version 1 still opens what it sealed
    chosen = api.post(f"{keys}/box", json={"type": "xaes256gcm", "value": b64(bytes(range(32)))}).json()
    assert chosen["version"] == 2
    assert api.post(f"{keys}/box/decrypt", json={"ciphertext": sealed}).status_code == 400  # no AAD, newest key
    old = api.post(
        f"{keys}/box/decrypt", params={"version": 1}, json={"ciphertext": sealed, "associated_data": b64(b"ctx")}
    )
    assert base64.b64decode(old.json()["plaintext"]) == b"hello"
    listed = api.get(keys).json()["secret_keys"]
    assert [(k["name"], k["version"]) for k in listed] == [("box", 2)]
    assert api.post(f"{keys}/box/sign", json={"plaintext": b64(b"x")}).status_code == 400  # not a signing key
    assert api.delete(f"{keys}/box").status_code == 200
    assert api.get(f"{keys}/box").status_code == 404


def test_sign_and_verify(api: httpx.Client, app_name: str) -> None:
    keys = f"/v1/apps/{app_name}/secretkeys"
    for kind in ("hs256", "hs512", "es256"):
        created = api.post(f"{keys}/{kind}-key/generate", json={"type": kind}).json()
        message = {"plaintext": b64(b"payload")}
        signature = api.post(f"{keys}/{kind}-key/sign", json=message).json()["signature"]
        assert api.post(f"{keys}/{kind}-key/verify", json={**message, "signature": signature}).status_code == 200
        forged = {"plaintext": b64(b"other"), "signature": signature}
        assert api.post(f"{keys}/{kind}-key/verify", json=forged).status_code == 400
        if kind == "es256":  # the public key verifies outside the server too
            public = serialization.load_der_public_key(base64.b64decode(created["public_key"]))
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(base64.b64decode(signature), b"payload", ec.ECDSA(hashes.SHA256()))


def test_refusals(api: httpx.Client, app_name: str) -> None:
    keys = f"/v1/apps/{app_name}/secretkeys"
    assert api.post(f"{keys}/n/generate", json={"type": "nacl_box"}).status_code == 422
    assert api.post(f"{keys}/n/generate", json={"type": "rot13"}).status_code == 400
    assert api.post(f"{keys}/n", json={"type": "xaes256gcm", "value": b64(b"short")}).status_code == 400
    assert api.post(f"{keys}/n", json={"type": "hs256", "value": "not base64!"}).status_code == 400
    assert api.post(f"{keys}/bad name/generate", json={"type": "hs256"}).status_code == 400
    assert api.post(f"{keys}/absent/encrypt", json={"plaintext": b64(b"x")}).status_code == 404
