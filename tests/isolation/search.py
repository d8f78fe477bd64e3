"""Search every byte of every regular file under some roots for some values, as an attacker reading the disk would.

Links are never followed (each is reported with its target, and the target's text is searched too), mount points
are not crossed (a machine's mounted rootfs is its own tree, not the host's files), FIFOs, sockets and devices are
never opened, and files are read in bounded chunks: a file too large to search fails the search, it is not
skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 20
SEARCH_LIMIT = 1 << 30  # bytes per file; nothing aerodrome writes in a test comes near


@dataclass
class Findings:
    found: dict[str, list[str]] = field(default_factory=dict)  # needle's label → where it is
    searched: set[Path] = field(default_factory=set)  # regular files read to the end
    links: dict[Path, str] = field(default_factory=dict)
    unopened: dict[Path, str] = field(default_factory=dict)  # FIFOs, sockets, devices: their kind
    mount_points: list[Path] = field(default_factory=list)
    too_large: list[Path] = field(default_factory=list)

    def where(self, label: str) -> list[str]:
        return self.found.get(label, [])


def search(roots: Iterable[Path], needles: Mapping[str, bytes]) -> Findings:
    """Where each needle (by label) occurs under `roots` (directories or single files)."""
    findings = Findings(found={label: [] for label in needles})
    mounts = _mount_points()
    for root in roots:
        try:
            info = root.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk(root, info.st_dev, mounts, needles, findings)
        else:
            _visit(root, info, needles, findings)
    return findings


def _walk(directory: Path, device: int, mounts: set[str], needles: Mapping[str, bytes], findings: Findings) -> None:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:  # another test's server removed it meanwhile (/run/aerodrome is shared)
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):
            if info.st_dev != device or str(path) in mounts:
                findings.mount_points.append(path)
            else:
                _walk(path, device, mounts, needles, findings)
        else:
            _visit(path, info, needles, findings)


def _visit(path: Path, info: os.stat_result, needles: Mapping[str, bytes], findings: Findings) -> None:
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        findings.links[path] = target
        for label, needle in needles.items():
            if needle in os.fsencode(target):
                findings.found[label].append(f"{path} -> {target}")
    elif not stat.S_ISREG(info.st_mode):
        findings.unopened[path] = _kind(info.st_mode)
    elif info.st_size > SEARCH_LIMIT:
        findings.too_large.append(path)
    else:
        for label in _search_file(path, needles):
            findings.found[label].append(str(path))
        findings.searched.add(path)


def _search_file(path: Path, needles: Mapping[str, bytes]) -> set[str]:
    """The labels of the needles in the file, read in chunks that overlap by the longest needle."""
    overlap = max(len(needle) for needle in needles.values()) - 1
    hits: set[str] = set()
    try:
        # O_NONBLOCK: should a FIFO take the file's place after the lstat, opening it does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return hits
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return hits
        tail, read = b"", 0
        while chunk := f.read(CHUNK):
            read += len(chunk)
            assert read <= SEARCH_LIMIT, f"{path} grew past {SEARCH_LIMIT} bytes while it was searched"
            window = tail + chunk
            hits.update(label for label, needle in needles.items() if needle in window)
            tail = window[-overlap:] if overlap else b""
    return hits


def _mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4].replace("\\040", " ") for line in f}


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device")):
        if test(mode):
            return name
    return "block device" if stat.S_ISBLK(mode) else oct(mode)
