"""What every command that talks to the API shares: `--api`, `--token` and `--json`, the client, the output, and
one line per error with a documented exit status.

Exit statuses (`EXIT_*`), for scripts:

    0  done
    1  the API refused or failed (its message, and the HTTP status)
    2  usage: a bad flag or value, no token, an unusable config file
    3  not found (HTTP 404): the app, machine, volume, … does not exist, or is not this token's
    4  the API could not be reached
    5  a wait ran out of time (the machine may still get there)
    6  conflict (HTTP 409, 412): another client holds the machine's lease, or its state or version forbids it
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from aerodrome.cli.credentials import Credentials, CredentialsError, resolve
from aerodrome.client import (
    ApiError,
    Client,
    ClientSettings,
    ConnectionFailedError,
    LeaseConflictError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    UnauthorizedError,
    WaitTimeoutError,
)

EXIT_API, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_TIMEOUT, EXIT_CONFLICT = 1, 2, 3, 4, 5, 6

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(Exception):
    """A value the command cannot use: one line, exit status 2."""


class Session:
    """One command's connection to the API and its output (JSON on stdout with `--json`, else Rich)."""

    def __init__(self, credentials: Credentials, json_output: bool) -> None:
        self.credentials = credentials
        self.json = json_output
        self.console = Console()
        self.status_console = Console(stderr=True)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if not self.credentials.token:
            raise UsageError("no token: pass --token, set AERODROME_TOKEN or FLY_API_TOKEN, or `aerodrome login`")
        return self.any_client

    @property
    def any_client(self) -> Client:
        """The client, with a token or without one (for what needs none: `/health`)."""
        if self._client is None:
            settings = ClientSettings.from_env(self.credentials.api, self.credentials.token, env={}, timeout=120.0)
            self._client = Client(settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def emit(self, value: Any, human: Callable[[], None] | str | None = None) -> None:
        """`value` as JSON with `--json`; otherwise `human` (a line, or a function that prints)."""
        if self.json:
            typer.echo(json.dumps(to_json(value), indent=2))
        elif callable(human):
            human()
        elif human is not None:
            typer.echo(human)
        else:
            typer.echo(json.dumps(to_json(value), indent=2))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[object]], empty: str = "") -> None:
        if not rows and empty:
            self.status_console.print(empty)
            return
        table = Table(*columns, box=None, header_style="bold")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)


def to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


HINTS: tuple[tuple[type[ApiError], str], ...] = (
    (ConnectionFailedError, "is `aerodrome serve` running there? Pass --api or set AERODROME_API"),
    (UnauthorizedError, "log in with `aerodrome login`, or pass --token / set AERODROME_TOKEN"),
    (NotFoundError, "check the name or id: `aerodrome apps list`, `aerodrome machine list --app APP`"),
    (LeaseConflictError, "another client holds the machine's lease: see `aerodrome machine leases ID`"),
    (PreconditionFailedError, "the machine's state forbids it: see `aerodrome machine status ID`"),
    (WaitTimeoutError, "it may still get there: `aerodrome machine wait ID`"),
    (RateLimitedError, "the API is rate-limiting these calls: try again shortly"),
)


def exit_status(error: ApiError) -> int:
    if isinstance(error, ConnectionFailedError):
        return EXIT_UNREACHABLE
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(error, LeaseConflictError | PreconditionFailedError):
        return EXIT_CONFLICT
    return EXIT_API


def describe(error: ApiError) -> str:
    """One line: the API's message, its status, and what to try."""
    hint = next((text for kind, text in HINTS if isinstance(error, kind)), "")
    status = f" (HTTP {error.status})" if error.status else ""
    return f"aerodrome: {error.message}{status}" + (f"; hint: {hint}" if hint else "")


def fail(message: str, status: int) -> typer.Exit:
    typer.echo(f"aerodrome: {message}", err=True)
    return typer.Exit(status)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """API and usage errors as one line on stderr and their exit status, never a traceback."""
    try:
        yield
    except ApiError as exc:
        typer.echo(describe(exc), err=True)
        raise typer.Exit(exit_status(exc)) from None
    except (UsageError, CredentialsError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None


ApiOption = Annotated[str | None, typer.Option("--api", help="The API's URL (else AERODROME_API, FLY_API_HOSTNAME).")]
TokenOption = Annotated[str | None, typer.Option("--token", help="A token (else AERODROME_TOKEN, FLY_API_TOKEN).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]

_SHARED = [
    inspect.Parameter("api_url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ApiOption),
    inspect.Parameter("api_token", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TokenOption),
    inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption),
]


def api_command(group: typer.Typer, name: str, **settings: Any) -> Callable[[F], F]:
    """Register `func(session, …)` as a command of `group` that also takes `--api`, `--token` and `--json`."""

    def register(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "session"]

        @functools.wraps(func)
        def command(*args: Any, api_url: str | None, api_token: str | None, json_output: bool, **kwargs: Any) -> None:
            with reported_errors():
                session = Session(resolve(api_url, api_token), json_output)
                try:
                    func(session, *args, **kwargs)
                finally:
                    session.close()

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + _SHARED
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # typer must read the signature above, not the function's own
        group.command(name, **settings)(command)
        return func

    return register


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
