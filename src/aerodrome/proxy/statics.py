"""Statics: files the edge answers from a machine's image, without waking the machine.

An app's route carries its statics (the first machine's that declares any) with that machine's image digest;
a GET or HEAD under a `url_prefix` is looked up there by the injected reader, off the event loop. The reader
(the runtime's openat2 one) follows no symlink, opens only regular files without blocking, and reads at most
`MAX_STATIC_BYTES`; whatever it refuses or does not find goes on to the machine, as Fly's proxy does.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass

from aerodrome.core import StaticSpec

MAX_STATIC_BYTES = 16 * 1024 * 1024  # larger files are the machine's to serve
#: (image digest, guest path, byte limit) → the file's bytes, or None when it is not a servable regular file
StaticReader = Callable[[str, str, int], "bytes | None"]


@dataclass(frozen=True, slots=True)
class StaticRoot:
    spec: StaticSpec
    image: str  # the digest of the image whose unpacked rootfs holds the files


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str


def match(statics: tuple[StaticRoot, ...], target: bytes) -> tuple[str, str] | None:
    """(image digest, guest path) for a request target under one of `statics`, the longest prefix first."""
    try:
        path = target.split(b"?", 1)[0].split(b"#", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    for root in sorted(statics, key=lambda r: len(r.spec.url_prefix), reverse=True):
        guest_file = root.spec.guest_file(path)
        if guest_file is not None:
            return root.image, guest_file
    return None


def content_type(guest_path: str) -> str:
    guessed, _ = mimetypes.guess_type(guest_path, strict=False)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def response(found: StaticFile, *, head_only: bool, close: bool) -> bytes:
    head = [
        b"HTTP/1.1 200 OK\r\n",
        b"content-type: %s\r\ncontent-length: %d\r\n" % (found.content_type.encode(), len(found.body)),
        b"x-content-type-options: nosniff\r\n",  # the image's bytes are the tenant's: no sniffing into HTML
    ]
    if close:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + (b"" if head_only else found.body)
