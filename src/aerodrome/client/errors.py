"""What the client raises: one tree, each error with the API's own message and HTTP status.

    ApiError                      any refusal or failure; `.status` (0: no reply), `.message`
     ├── ConnectionFailedError    the API could not be reached, or the connection broke (status 0)
     ├── BadRequestError          400: bad input
     ├── UnauthorizedError        401: no token, or one the API does not know
     ├── NotFoundError            404: absent, or not visible to this token
     ├── WaitTimeoutError         408: a wait ran out of time
     ├── LeaseConflictError       409: another holder owns the machine's lease, or the nonce is wrong
     ├── PreconditionFailedError  412: the resource's state forbids the action
     ├── UnprocessableError       422: well-formed but refused (a taken name, a bad certificate)
     ├── RateLimitedError         429: still refused after the retries; `.retry_after`
     └── ServerError              5xx: the API failed, or a dependency of it is down

GraphQL answers 200 with an `errors` list; its `extensions.code` picks the same classes.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the API refused or could not answer."""

    def __init__(self, message: str, *, status: int = 0, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message


class ConnectionFailedError(ApiError):
    pass


class BadRequestError(ApiError):
    pass


class UnauthorizedError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class WaitTimeoutError(ApiError):
    pass


class LeaseConflictError(ApiError):
    pass


class PreconditionFailedError(ApiError):
    pass


class UnprocessableError(ApiError):
    pass


class RateLimitedError(ApiError):
    def __init__(self, message: str, *, retry_after: float = 0.0, **where: Any) -> None:
        super().__init__(message, status=429, **where)
        self.retry_after = retry_after


class ServerError(ApiError):
    pass


ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    408: WaitTimeoutError,
    409: LeaseConflictError,
    412: PreconditionFailedError,
    422: UnprocessableError,
}

#: GraphQL `extensions.code` (Fly's and aerodrome's) → the status it stands for.
STATUS_BY_GRAPHQL_CODE: dict[str, int] = {
    "BAD_REQUEST": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "TIMEOUT": 408,
    "CONFLICT": 409,
    "PRECONDITION_FAILED": 412,
    "UNPROCESSABLE": 422,
    "RATE_LIMITED": 429,
    "SERVICE_UNAVAILABLE": 503,
}


def error_for(status: int, message: str, *, retry_after: float = 0.0, method: str = "", path: str = "") -> ApiError:
    """The most specific error for an HTTP status."""
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, method=method, path=path)
    kind = ERROR_BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(message, status=status, method=method, path=path)


def message_of(body: Any, fallback: str) -> str:
    """The API's own message: Fly's `{"error": …}` (or `message`), else the reply's text."""
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return fallback.strip()[:500] or "no message"
