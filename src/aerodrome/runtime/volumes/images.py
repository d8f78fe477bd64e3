"""Sparse image files: copy, grow, publish atomically, and digest by content."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from aerodrome.runtime.process import run

_CHUNK = 1 << 20
_ZERO_CHUNK = bytes(_CHUNK)
_DIGEST_DOMAIN = b"aerodrome-sparse-sha256-v1\0"
_GIB = 1 << 30


def file_size(path: Path) -> int:
    """Apparent size of a file, holes included (a metadata read: no I/O worth a thread)."""
    return path.stat().st_size


def create_empty(path: Path, size_bytes: int) -> None:
    """A new file of `size_bytes`, all hole."""
    with path.open("xb") as handle:
        handle.truncate(size_bytes)


async def sparse_copy(source: Path, destination: Path) -> None:
    """Copy an image keeping holes (and turning zero blocks into holes); a reflink where the host fs has them."""
    size = file_size(source)
    argv = ["cp", "--sparse=always", "--reflink=auto", "--", str(source), str(destination)]
    await run(argv, timeout=60.0 + 60.0 * size / _GIB)


def grow_file(path: Path, size_bytes: int) -> bool:
    """Extend a file with a hole up to `size_bytes`; True when it was smaller. Never shrinks."""
    if path.stat().st_size >= size_bytes:
        return False
    os.truncate(path, size_bytes)
    return True


def preallocate(path: Path) -> None:
    """Reserve disk blocks for every hole of the file (read as zeros, no data written; fast on ext4 and xfs)."""
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(descriptor, 0, os.fstat(descriptor).st_size)
    finally:
        os.close(descriptor)


def publish(temporary: Path, final: Path) -> None:
    """Make a finished file durable, then give it its final name: readers never see a half-written image."""
    sync_file(temporary)
    temporary.replace(final)
    sync_directory(final.parent)


def sync_file(path: Path) -> None:
    """fsync a file (its data and its size)."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def sync_directory(directory: Path) -> None:
    """fsync a directory so that a rename or unlink in it survives a power cut."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def stored_bytes(path: Path) -> int:
    """Bytes the file really occupies on the host disk (holes excluded)."""
    return path.stat().st_blocks * 512


def _data_extents(descriptor: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each region holding data, aligned out to whole chunks, holes skipped."""
    extents: list[tuple[int, int]] = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(descriptor, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole up to the end
            break
        end = os.lseek(descriptor, start, os.SEEK_HOLE)
        offset = end
        # Whole chunks only, so that each chunk is hashed once, by its index, wherever the holes fall in it.
        start, end = start - start % _CHUNK, min(-(-end // _CHUNK) * _CHUNK, size)
        if extents and start <= extents[-1][1]:
            start = extents.pop()[0]
        extents.append((start, end))
    return extents


def _hash_region(descriptor: int, start: int, end: int, digest: hashlib._Hash) -> None:
    # `start` is chunk-aligned; a hole inside a chunk reads as zeros, exactly like zeros stored as data.
    for position in range(start, end, _CHUNK):
        chunk = os.pread(descriptor, min(_CHUNK, end - position), position)
        if chunk != _ZERO_CHUNK[: len(chunk)]:
            digest.update((position // _CHUNK).to_bytes(8, "little"))
            digest.update(chunk)


def content_digest_sync(path: Path) -> str:
    """The content digest of an image (blocking; see `content_digest`)."""
    digest = hashlib.sha256(_DIGEST_DOMAIN)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(descriptor).st_size
        digest.update(size.to_bytes(8, "little"))
        for start, end in _data_extents(descriptor, size):
            _hash_region(descriptor, start, end, digest)
    finally:
        os.close(descriptor)
    return "sha256:" + digest.hexdigest()


async def content_digest(path: Path) -> str:
    """A digest of the logical content, independent of which zero ranges are stored as holes.

    SHA-256 over the size, then the index and bytes of every 1 MiB chunk that is not all zeros. Two images
    with the same bytes have the same digest however sparse each is; holes cost nothing to hash, so a large,
    mostly empty volume digests in the time it takes to read its data.
    """
    return await asyncio.to_thread(content_digest_sync, path)
