"""The error kinds of aerodrome, independent of any transport.

    AerodromeError
     ├── InvalidArgumentError        bad input (HTTP 400)
     ├── UnauthenticatedError        no or unknown token (401)
     ├── PermissionDeniedError       exists, but another organisation's (403)
     ├── NotFoundError               absent, or not visible to the caller (404)
     ├── WaitTimeoutError            a wait ran out of time (408)
     ├── LeaseConflictError          another holder owns the lease, or the nonce is wrong (409)
     ├── FailedPreconditionError     the resource's state forbids the action (412)
     ├── UnprocessableError          well-formed but refused, e.g. a taken name (422)
     │    └── AlreadyExistsError
     ├── RateLimitedError            too many requests (429)
     ├── UnavailableError            a dependency is down or a start failed (503)
     │    ├── CapacityError          a range or pool of the host is full (503, `insufficient_capacity`)
     │    └── HostUnreachableError   the request never reached the host agent: nothing was done there (503)
     ├── InsufficientStorageError    the data filesystem is full (507)
     └── RuntimeFailureError         the host runtime failed to act (500)

Only the API layer turns these into HTTP statuses and Fly's `{"error": ...}` bodies.
"""

from __future__ import annotations

import errno

# What a full filesystem says through the layers that do not keep its errno: SQLite, and tools' stderr.
_NO_SPACE_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class AerodromeError(Exception):
    """Base of every error aerodrome raises on purpose."""

    #: Fly's machine-readable `status` field for the error body, when it has one.
    status: str | None = None

    def __init__(self, message: str, *, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(AerodromeError):
    pass


class UnauthenticatedError(AerodromeError):
    pass


class PermissionDeniedError(AerodromeError):
    pass


class NotFoundError(AerodromeError):
    pass


class WaitTimeoutError(AerodromeError):
    pass


class LeaseConflictError(AerodromeError):
    pass


class FailedPreconditionError(AerodromeError):
    pass


class UnprocessableError(AerodromeError):
    pass


class AlreadyExistsError(UnprocessableError):
    status = "name_taken"


class RateLimitedError(AerodromeError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(AerodromeError):
    pass


class HostUnreachableError(UnavailableError):
    """The host agent could not be connected to, so the request was not delivered: the caller may undo what it
    wrote before sending it (a transient state) without waiting for the host."""


class CapacityError(UnavailableError):
    """Every address, subnet or slot of a bounded range is taken: the message names the range and its size."""

    status = "insufficient_capacity"


class RuntimeFailureError(AerodromeError):
    pass


class InsufficientStorageError(AerodromeError):
    """The data filesystem is full: what failed wrote nothing of itself, and works again once there is room."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no space left on the data filesystem: {what} failed; free space on it and retry")


def is_out_of_space(error: BaseException) -> bool:
    """Whether `error`, or an error it came from, is a filesystem out of space."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(current).lower() for words in _NO_SPACE_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False
