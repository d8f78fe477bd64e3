"""A machine config's `dns` (Fly's MachineDNS): whether it is in the private network's names, and its resolvers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.parsing import parse_bool

MAX_NAMESERVERS = 3  # what a resolv.conf holds (glibc's MAXNS)
MAX_SEARCHES = 6


@dataclass(frozen=True, slots=True)
class DnsSpec:
    skip_registration: bool = False  # left out of `.internal` answers, and its resolv.conf is the image's
    nameservers: tuple[str, ...] = ()  # its resolv.conf names these instead of the host's resolver
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # "name" or "name:value"

    @property
    def host_resolver(self) -> bool:
        return not self.skip_registration and not self.nameservers

    def resolv_conf(self) -> bytes | None:
        """The resolv.conf the config asks for, when it names resolvers of its own."""
        if not self.nameservers:
            return None
        lines = [f"nameserver {n}" for n in self.nameservers]
        lines += [f"search {' '.join(self.searches)}"] if self.searches else []
        lines += [f"options {' '.join(self.options)}"] if self.options else []
        return ("\n".join(lines) + "\n").encode()


def parse_dns(raw: object) -> DnsSpec:
    if raw is None:
        return DnsSpec()
    if not isinstance(raw, dict):
        raise InvalidArgumentError("invalid config.dns: must be an object")
    nameservers = tuple(_address(n) for n in _strings(raw, "nameservers", MAX_NAMESERVERS))
    searches = tuple(_word(s, "searches") for s in _strings(raw, "searches", MAX_SEARCHES))
    return DnsSpec(
        skip_registration=parse_bool(raw.get("skip_registration"), "config.dns.skip_registration", False),
        nameservers=nameservers,
        searches=searches,
        options=tuple(_option(o) for o in _list(raw, "options", 16)),
    )


def _list(raw: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidArgumentError(f"invalid config.dns.{key}: must be a list of at most {limit}")
    return value


def _strings(raw: dict[str, Any], key: str, limit: int) -> list[str]:
    values = _list(raw, key, limit)
    if not all(isinstance(v, str) for v in values):
        raise InvalidArgumentError(f"invalid config.dns.{key}: must be a list of strings")
    return values


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise InvalidArgumentError(f"invalid config.dns.nameservers: {value[:64]!r} is not an IP address") from None


def _word(value: str, key: str) -> str:
    if not value or len(value) > 253 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
        raise InvalidArgumentError(f"invalid config.dns.{key}: {value[:64]!r} is not a domain name")
    return value


def _option(value: object) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise InvalidArgumentError("invalid config.dns.options: each is {name, value}")
    name, extra = _word(value["name"], "options"), value.get("value")
    if extra in (None, ""):
        return name
    if not isinstance(extra, str):
        raise InvalidArgumentError("invalid config.dns.options: a value is a string")
    return f"{name}:{_word(extra, 'options')}"
