"""`aerodrome login` and `logout`: keep an API address and token in the config file, checked before it is kept."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aerodrome.cli.credentials import Credentials, config_path, remove_config, resolve, write_config
from aerodrome.cli.session import JsonOption, Session, UsageError, reported_errors


def login(
    api_url: Annotated[str | None, typer.Option("--api", help="The API's URL (else as for every command).")] = None,
    api_token: Annotated[str | None, typer.Option("--token", help="The token (else asked for).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Check a token against the API and keep both in the config file (0600), for every later command."""
    with reported_errors():
        found = resolve(api_url, api_token)
        token = found.token or _ask_token()
        session = Session(Credentials(found.api, token, found.api_from, found.token_from), json_output)
        try:
            current = session.client.current_token()
        finally:
            session.close()
        path = config_path()
        write_config(path, found.api, token)
        report = {"api": found.api, "org_slug": current.org_slug, "token_id": current.token_id, "config": str(path)}
        session.emit(report, f"logged in to {found.api} as organisation {current.org_slug} (saved in {path})")


def _ask_token() -> str:
    interactive = sys.stdin.isatty()
    token = str(typer.prompt("token", hide_input=True)) if interactive else sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageError("no token given: pass --token, or type it when asked")
    return token


def logout(json_output: JsonOption = False) -> None:
    """Forget the API address and token `login` kept (environment variables still apply)."""
    path = config_path()
    removed = remove_config(path)
    message = f"removed {path}" if removed else f"not logged in ({path} does not exist)"
    Session(resolve(None, None, env={}, path=path), json_output).emit(
        {"config": str(path), "removed": removed}, message
    )
