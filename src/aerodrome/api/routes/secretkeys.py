"""`/v1/apps/{app}/secretkeys`: an app's keys, used through the server (`fly secrets keys`, fly-go's flaps).

Bytes travel as Go's `encoding/json` writes `[]byte`: base64 strings (a list of byte values is read too).
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aerodrome.api.context import Call
from aerodrome.api.responses import JSONResponse
from aerodrome.core import InvalidArgumentError, SecretKey

JSON = dict[str, object]
MAX_BYTES = 1024 * 1024


def _bytes(value: object, field: str, *, required: bool = True) -> bytes:
    if value is None or value == "":
        if required:
            raise InvalidArgumentError(f"{field} is required")
        return b""
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        decoded = bytes(value)
    elif isinstance(value, str):
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError(f"invalid {field}: not base64") from None
    else:
        raise InvalidArgumentError(f"invalid {field}: must be base64 bytes")
    if len(decoded) > MAX_BYTES:
        raise InvalidArgumentError(f"invalid {field}: at most {MAX_BYTES} bytes")
    return decoded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _view(call: Call, key: SecretKey, material: bytes) -> JSON:
    body: JSON = {"name": key.name, "type": key.type, "version": key.version, "created_at": key.created_at}
    public = call.plane.secretkeys.public_key_of(key.type, material)
    if public is not None:
        body["public_key"] = _b64(public)
    return body


def _version(call: Call) -> int | None:
    raw = call.request.query_params.get("version")
    return None if not raw else call.query_int("version", 0)


async def list_keys(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    keys = await call.plane.secretkeys.list(app)
    return JSONResponse({"secret_keys": [_view(call, k, m) for k, m in keys]})


async def get_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    key, material = await call.plane.secretkeys.get(app, request.path_params["name"], _version(call))
    return JSONResponse(_view(call, key, material))


async def set_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    generate = request.url.path.endswith("/generate")
    value = None if generate else _bytes(body.get("value"), "value")
    key, material = await call.plane.secretkeys.set(app, request.path_params["name"], body.get("type"), value)
    return JSONResponse(_view(call, key, material), status_code=201)


async def delete_key(request: Request) -> Response:
    call = await Call.of(request)
    app = await call.app()
    await call.plane.secretkeys.delete(app, request.path_params["name"])
    return JSONResponse({})


async def use_key(request: Request) -> Response:
    """encrypt, decrypt, sign and verify, by the path's last part."""
    call = await Call.of(request)
    app = await call.app()
    body = await call.body()
    keys, name, version = call.plane.secretkeys, request.path_params["name"], _version(call)
    action = request.url.path.rsplit("/", 1)[1]
    associated = _bytes(body.get("associated_data"), "associated_data", required=False)
    if action == "encrypt":
        sealed = await keys.encrypt(app, name, _bytes(body.get("plaintext"), "plaintext"), associated, version)
        return JSONResponse({"ciphertext": _b64(sealed)})
    if action == "decrypt":
        opened = await keys.decrypt(app, name, _bytes(body.get("ciphertext"), "ciphertext"), associated, version)
        return JSONResponse({"plaintext": _b64(opened)})
    if action == "sign":
        signature = await keys.sign(app, name, _bytes(body.get("plaintext"), "plaintext"), version)
        return JSONResponse({"signature": _b64(signature)})
    signed, signature = _bytes(body.get("plaintext"), "plaintext"), _bytes(body.get("signature"), "signature")
    await keys.verify(app, name, signed, signature, version)
    return JSONResponse({})


_K = "/v1/apps/{app_name}/secretkeys"
routes = [
    Route(_K, list_keys, methods=["GET"]),
    Route(f"{_K}/{{name}}", get_key, methods=["GET"]),
    Route(f"{_K}/{{name}}", set_key, methods=["POST"]),
    Route(f"{_K}/{{name}}", delete_key, methods=["DELETE"]),
    Route(f"{_K}/{{name}}/generate", set_key, methods=["POST"]),
    *(
        Route(f"{_K}/{{name}}/{action}", use_key, methods=["POST"])
        for action in ("encrypt", "decrypt", "sign", "verify")
    ),
]
