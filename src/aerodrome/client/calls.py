"""A request described as data (`Call`), how a reply becomes a result or an error, and when to try again.

Both clients send the same `Call`s and follow the same `RetryPolicy`; only the sending differs (httpx's sync or
async client), so each request is written once, in `endpoints.py`.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from aerodrome.client.errors import STATUS_BY_GRAPHQL_CODE, ApiError, ConnectionFailedError, error_for, message_of

T = TypeVar("T")
Params = Mapping[str, str | int | bool | list[str]]

NONCE_HEADER = "fly-machine-lease-nonce"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _keep(body: Any) -> Any:
    return body


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request: what to send, and how to read the reply's JSON into a `T`."""

    method: str
    path: str
    parse: Callable[[Any], T] = _keep
    params: Params | None = None
    body: Any = None
    nonce: str | None = None
    idempotent: bool | None = None  # None: by the method
    graphql: bool = False  # sent to the GraphQL endpoint; errors come in the body
    platform: bool = False  # sent to the platform API (Fly's logs), beside GraphQL
    timeout: float | None = None  # None: the client's

    @property
    def safe_to_repeat(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in IDEMPOTENT_METHODS

    def headers(self) -> dict[str, str]:
        return {NONCE_HEADER: self.nonce} if self.nonce else {}

    def query(self) -> dict[str, str | list[str]] | None:
        if not self.params:
            return None
        query: dict[str, str | list[str]] = {}
        for key, value in self.params.items():
            if isinstance(value, bool):
                query[key] = "true" if value else "false"
            elif isinstance(value, list):
                query[key] = value
            else:
                query[key] = str(value)
        return query


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """429 is retried for any request (the API refused it before acting), after `Retry-After`; 502 and 503, and
    a broken connection, only for a request that is safe to repeat; a connection never made, for any request.
    Each wait is bounded, and so is the number of attempts."""

    attempts: int = 5
    backoff: float = 0.25  # the first wait after a 502/503; doubled each time, with jitter
    max_backoff: float = 8.0
    max_retry_after: float = 30.0  # a longer Retry-After is not waited for: the 429 is raised

    def after_response(self, call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to take this reply."""
        if attempt + 1 >= self.attempts:
            return None
        if response.status_code == 429:
            wait = retry_after(response)
            return wait if wait <= self.max_retry_after else None
        if response.status_code in (502, 503) and call.safe_to_repeat:
            return self._backoff(attempt)
        return None

    def after_failure(self, call: Call[Any], error: httpx.TransportError, attempt: int) -> float | None:
        if attempt + 1 >= self.attempts:
            return None
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        return self._backoff(attempt) if never_sent or call.safe_to_repeat else None

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0))


NO_RETRIES = RetryPolicy(attempts=1)


def retry_after(response: httpx.Response) -> float:
    """`Retry-After` in seconds (a number or an HTTP date); 1 when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when.timestamp() - time.time())


def decode(call: Call[T], response: httpx.Response) -> T:
    """The call's result from a reply, or the error it stands for."""
    try:
        body = response.json() if response.content.strip() else None
    except (ValueError, UnicodeDecodeError):
        body = None
    where = {"method": call.method, "path": call.path}
    if response.status_code >= 400:
        message = message_of(body, response.text)
        raise error_for(response.status_code, message, retry_after=retry_after(response), **where)
    if call.graphql:
        body = graphql_data(body, **where)
    return call.parse(body)


def graphql_data(body: Any, *, method: str, path: str) -> Any:
    if not isinstance(body, dict):
        raise ApiError("the GraphQL endpoint answered no JSON object", method=method, path=path)
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        code = (first.get("extensions") or {}).get("code", "")
        message = str(first.get("message") or json.dumps(errors)[:500])
        raise error_for(STATUS_BY_GRAPHQL_CODE.get(str(code), 400), message, method=method, path=path)
    return body.get("data") or {}


def transport_error(call: Call[Any], base_url: str, error: httpx.TransportError) -> ApiError:
    reason = str(error) or type(error).__name__
    return ConnectionFailedError(f"cannot reach the API at {base_url}: {reason}", method=call.method, path=call.path)
