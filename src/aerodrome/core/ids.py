"""Identifiers in Fly's formats: machine ids, volume ids, version ULIDs, generated names."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ADJECTIVES = (
    "aged ancient autumn billowing bitter black blue bold broad broken calm cold cool crimson curly damp dark dawn "
    "delicate divine dry empty falling fancy flat floral fragrant frosty gentle green hidden holy icy jolly late "
    "lingering little lively long lucky misty morning muddy mute nameless noisy odd old orange patient plain "
    "polished proud purple quiet rapid raspy red restless rough round royal shiny shrill shy silent small snowy "
    "soft solitary sparkling spring square steep still summer super sweet throbbing tight tiny twilight wandering "
    "weathered white wild winter wispy withered yellow young"
).split()
_NOUNS = (
    "art band bar base bird block boat bonus bread breeze brook bush butterfly cake cell cherry cloud credit "
    "darkness dawn dew disk dream dust feather field fire firefly flower fog forest frog frost glade glitter grass "
    "hall hat haze heart hill king lab lake leaf limit math meadow mode moon morning mountain mouse mud night paper "
    "pine poetry pond queen rain recipe resonance rice river salad scene sea shadow shape silence sky smoke snow "
    "snowflake sound star sun sun sunset surf term thunder tooth tree truth union unit violet voice water waterfall "
    "wave wildflower wind wood"
).split()


def machine_id() -> str:
    """14 lowercase hex characters, like `3d8d413b29d089`."""
    return secrets.token_hex(7)


def volume_id() -> str:
    """`vol_` and 16 characters, like Fly's."""
    return "vol_" + "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(16))


def snapshot_id() -> str:
    return "vs_" + "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(16))


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID (Crockford base32): Fly's instance ids and version ids."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def machine_name() -> str:
    """A generated name like `aged-thunder-7371`."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(9000) + 1000}"


def nonce() -> str:
    return secrets.token_hex(6)
