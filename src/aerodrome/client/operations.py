"""Binding each request of `endpoints.py` to a client as a method, typed from the function that builds it: on
`Client` it returns the result, on `AsyncClient` an awaitable of it. A client is then a list of names."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from aerodrome.client.calls import Call
from aerodrome.client.errors import PreconditionFailedError, WaitTimeoutError
from aerodrome.client.models import Machine

P = ParamSpec("P")
T = TypeVar("T")

#: States a machine does not leave by itself: waiting for another one from there would wait for nothing.
SETTLED_FOR_GOOD = frozenset({"failed", "destroyed"})


class Sends(Protocol):
    def send(self, call: Call[T]) -> T: ...


class SendsAsync(Protocol):
    async def send(self, call: Call[T]) -> T: ...


class sync_operation(Generic[P, T]):
    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    def __get__(self, client: Sends, owner: type | None = None) -> Callable[P, T]:
        @functools.wraps(self.build)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return client.send(self.build(*args, **kwargs))

        return run


class async_operation(Generic[P, T]):
    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    def __get__(self, client: SendsAsync, owner: type | None = None) -> Callable[P, Awaitable[T]]:
        @functools.wraps(self.build)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client.send(self.build(*args, **kwargs))

        return run


class WaitPlan:
    """How a long wait is cut into the API's waits of at most 60 s, and when it is over."""

    def __init__(self, state: str, timeout: float, poll: float) -> None:
        self.state = state
        self.deadline = time.monotonic() + timeout
        self.poll = max(1.0, min(60.0, poll))
        self.timeout = timeout

    def next_chunk(self) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(f"machine did not reach {self.state} within {self.timeout:g} s", status=408)
        return max(1, math.ceil(min(self.poll, remaining)))

    def check(self, machine: Machine) -> bool:
        """True once `machine` is in the state waited for; an error when it never will be."""
        if machine.state == self.state:
            return True
        if machine.state in SETTLED_FOR_GOOD:
            raise PreconditionFailedError(
                f"machine {machine.id} is {machine.state}, it will not become {self.state}", status=412
            )
        return False


def no_report(machine: Machine) -> None:
    return None


Report = Callable[[Machine], Any]
