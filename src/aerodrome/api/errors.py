"""The one table from aerodrome's error kinds to HTTP statuses, and Fly's error body `{"error": "..."}`."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aerodrome.api.responses import JSONResponse
from aerodrome.core import (
    AerodromeError,
    FailedPreconditionError,
    InsufficientStorageError,
    InvalidArgumentError,
    LeaseConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RuntimeFailureError,
    UnauthenticatedError,
    UnavailableError,
    UnprocessableError,
    WaitTimeoutError,
    is_out_of_space,
)

log = logging.getLogger("aerodrome.api")

STATUS_BY_KIND: tuple[tuple[type[AerodromeError], int], ...] = (
    (InvalidArgumentError, 400),
    (UnauthenticatedError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (WaitTimeoutError, 408),
    (LeaseConflictError, 409),
    (FailedPreconditionError, 412),
    (UnprocessableError, 422),
    (RateLimitedError, 429),
    (UnavailableError, 503),
    (InsufficientStorageError, 507),
    (RuntimeFailureError, 500),
)


def status_of(error: AerodromeError) -> int:
    for kind, status in STATUS_BY_KIND:
        if isinstance(error, kind):
            return status
    return 500


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, object] = {"error": message}
    if code:
        body["status"] = code
    return JSONResponse(body, status_code=status, headers=headers)


async def aerodrome_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AerodromeError)
    status = status_of(exc)
    if status >= 500 and status != 507 and is_out_of_space(exc):  # a tool's stderr said so
        return await out_of_space(request, exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimitedError) else None
    return error_response(status, exc.message, exc.status, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail).lower() if exc.status_code == 404 else str(exc.detail))


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went (or the listener closed it: a body too slow) while a handler read the body; nobody reads
    this reply."""
    return error_response(400, "the client closed the connection")


async def out_of_space(request: Request, exc: Exception) -> Response:
    """A write that found the data filesystem full: Fly's shape, 507, and a log line that names the cause."""
    log.warning("%s %s: the data filesystem is full: %s", request.method, request.url.path, exc)
    what = f"{request.method} {request.url.path}"
    error = exc if isinstance(exc, InsufficientStorageError) else InsufficientStorageError(what)
    return error_response(507, error.message)


async def os_error(request: Request, exc: Exception) -> Response:
    """An OSError no layer turned into an error kind: 507 when the disk is full, else as any unexpected error."""
    if is_out_of_space(exc):
        return await out_of_space(request, exc)
    return await unexpected_error(request, exc)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    if is_out_of_space(exc):  # SQLite or a library said so through an exception of its own
        return await out_of_space(request, exc)
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}")
