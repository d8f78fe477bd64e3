"""A config's `statics`: URL prefixes the edge answers from the machine's image, and how a URL maps into them.

Fly's `statics [{guest_path, url_prefix, index_document, tigris_bucket}]`. The mapping is lexical and strict:
a URL path is percent-decoded, split on `/`, and any empty, `.` or `..` segment (or a NUL, or a backslash)
means "not a static file" — so the guest path it gives is always under `guest_path`. Symlinks are the reader's
part: it follows none (the runtime's openat2 reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aerodrome.core.errors import InvalidArgumentError
from aerodrome.core.parsing import MAX_NAME, MAX_PATH, parse_text

MAX_STATICS = 16


@dataclass(frozen=True, slots=True)
class StaticSpec:
    guest_path: str  # absolute, without a trailing slash ("/" is kept)
    url_prefix: str  # starts with /, ends with /
    index_document: str = ""  # served for a directory's URL (ending in /); "" for none

    def guest_file(self, url_path: str) -> str | None:
        """The guest path `url_path` names under this static, or None when it is not one of its files."""
        if not (url_path + "/").startswith(self.url_prefix) and url_path != self.url_prefix.rstrip("/"):
            return None
        try:
            rest = unquote(url_path[len(self.url_prefix) :], errors="strict")
        except UnicodeDecodeError:
            return None
        segments = rest.split("/") if rest else []
        directory = not segments or segments[-1] == ""
        if directory:
            segments = segments[:-1] if segments else []
            if not self.index_document:
                return None
            segments.append(self.index_document)
        if any(s in ("", ".", "..") or "\0" in s or "\\" in s for s in segments):
            return None
        base = self.guest_path.rstrip("/")
        return base + "/" + "/".join(segments)


def parse_statics(config: dict[str, Any]) -> tuple[StaticSpec, ...]:
    raw = config.get("statics") or []
    if not isinstance(raw, list) or len(raw) > MAX_STATICS:
        raise InvalidArgumentError(f"invalid config.statics: a list of at most {MAX_STATICS} objects")
    return tuple(_static(entry, f"config.statics[{index}]") for index, entry in enumerate(raw))


def _static(raw: object, field: str) -> StaticSpec:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"invalid {field}: must be an object")
    if raw.get("tigris_bucket"):
        raise InvalidArgumentError(f"invalid {field}.tigris_bucket: aerodrome serves statics from the image only")
    guest_path = parse_text(raw.get("guest_path"), f"{field}.guest_path", MAX_PATH, required=True)
    if not guest_path.startswith("/") or _climbs(guest_path):
        raise InvalidArgumentError(f"invalid {field}.guest_path {guest_path!r}: an absolute path without `..`")
    prefix = parse_text(raw.get("url_prefix"), f"{field}.url_prefix", MAX_PATH, required=True)
    if not prefix.startswith("/") or _climbs(prefix) or any(c in prefix for c in "?# "):
        raise InvalidArgumentError(f"invalid {field}.url_prefix {prefix!r}: a path starting with /")
    index = parse_text(raw.get("index_document") or "", f"{field}.index_document", MAX_NAME)
    if index and ("/" in index or index in (".", "..") or "\0" in index):
        raise InvalidArgumentError(f"invalid {field}.index_document {index!r}: a file name")
    return StaticSpec(guest_path.rstrip("/") or "/", prefix.rstrip("/") + "/", index)


def _climbs(path: str) -> bool:
    return "\0" in path or any(part in (".", "..") for part in path.split("/"))
