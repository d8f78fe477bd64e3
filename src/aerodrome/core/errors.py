"""The error kinds of aerodrome, independent of any transport.

    AerodromeError
     ├── InvalidArgumentError        bad input (HTTP 400)
     ├── UnauthenticatedError        no or unknown token (401)
     ├── NotFoundError               absent, or not visible to the caller (404)
     ├── WaitTimeoutError            a wait ran out of time (408)
     ├── LeaseConflictError          another holder owns the lease, or the nonce is wrong (409)
     ├── FailedPreconditionError     the resource's state forbids the action (412)
     ├── UnprocessableError          well-formed but refused, e.g. a taken name (422)
     │    └── AlreadyExistsError
     ├── RateLimitedError            too many requests (429)
     ├── UnavailableError            a dependency is down or a start failed (503)
     │    └── CapacityError          a range or pool of the host is full (503, `insufficient_capacity`)
     └── RuntimeFailureError         the host runtime failed to act (500)

Only the API layer turns these into HTTP statuses and Fly's `{"error": ...}` bodies.
"""

from __future__ import annotations


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


class CapacityError(UnavailableError):
    """Every address, subnet or slot of a bounded range is taken: the message names the range and its size."""

    status = "insufficient_capacity"


class RuntimeFailureError(AerodromeError):
    pass
