"""Where the commands that talk to the API find it and their token, and the file `aerodrome login` writes.

Order, first found wins: the `--api`/`--token` flags; `AERODROME_API`/`AERODROME_TOKEN`; `FLY_API_HOSTNAME`/
`FLY_API_TOKEN` (what Fly's Machines guide exports); the config file; `http://127.0.0.1:4280` (no token).
The config file is `$AERODROME_CONFIG`, else `$XDG_CONFIG_HOME/aerodrome/config.toml`, else
`~/.config/aerodrome/config.toml`; it is written 0600 in a 0700 directory, and read only if nobody else can read it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tomli_w

DEFAULT_API = "http://127.0.0.1:4280"


class CredentialsError(Exception):
    """The config file cannot be used: one line for the user (exit status 2)."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("AERODROME_CONFIG"):
        return Path(env["AERODROME_CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "aerodrome" / "config.toml"


@dataclass(frozen=True, slots=True)
class Credentials:
    api: str
    token: str
    api_from: str  # where each came from, for `aerodrome status`-like reports and hints
    token_from: str


def read_config(path: Path) -> dict[str, str]:
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}): chmod 600 it")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path} is not a readable TOML file: {exc}") from None
    return {key: value for key, value in data.items() if key in ("api", "token") and isinstance(value, str)}


def write_config(path: Path, api: str, token: str) -> None:
    """Written to a temporary file of mode 0600, then renamed over the old one: never readable by others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(tomli_w.dumps({"api": api, "token": token}).encode())
    os.replace(temporary, path)


def remove_config(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(
    api_flag: str | None, token_flag: str | None, env: Mapping[str, str] | None = None, path: Path | None = None
) -> Credentials:
    env = os.environ if env is None else env
    stored = read_config(path or config_path(env))
    api = _first(("--api", api_flag), ("AERODROME_API", env.get("AERODROME_API")))
    api = api or _first(("FLY_API_HOSTNAME", env.get("FLY_API_HOSTNAME")), ("config", stored.get("api")))
    token = _first(("--token", token_flag), ("AERODROME_TOKEN", env.get("AERODROME_TOKEN")))
    token = token or _first(("FLY_API_TOKEN", env.get("FLY_API_TOKEN")), ("config", stored.get("token")))
    api_value, api_from = api or (DEFAULT_API, "default")
    token_value, token_from = token or ("", "none")
    return Credentials(api_value.rstrip("/"), token_value, api_from, token_from)


def _first(*candidates: tuple[str, str | None]) -> tuple[str, str] | None:
    for source, value in candidates:
        if value:
            return value, source
    return None
