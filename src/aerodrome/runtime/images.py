"""Images on this host: pulled by skopeo into one shared OCI layout, unpacked by umoci once per manifest digest.

Layout under `root`:

    layout/                 the OCI layout; one tag per image, `sha256-<hex>` (no colons: overlayfs's
                            lowerdir option separates paths with them)
    rootfs/sha256-<hex>/    its `rootfs/` is the read-only root shared by the image's machines (unpacks before
                            `umoci raw unpack` also left umoci's config.json, umoci.json and mtree beside it:
                            nothing reads them, and they go with the image)
    images/sha256-<hex>.json  what `get` returns; written last, so its presence means the rootfs is complete
    refs/<reference>.json   the digest a reference last resolved to: used when no registry can answer
    seen/<hash>             one empty file per (repository, digest) resolved or pulled: a digest is taken from
                            this host's copy only for a repository known to hold it (naming your own repository
                            with another organisation's digest gets nothing)
    tmp/                    unpacks in progress, renamed into rootfs/ when complete
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aerodrome.core import ImageInfo, InvalidArgumentError, NotFoundError, PullGrant, UnavailableError, fault_point
from aerodrome.runtime import safefs
from aerodrome.runtime.process import ToolError, map_runtime_errors, run, with_tool_umask
from aerodrome.runtime.references import ImageReference, candidate_sources, is_loopback_host, parse_reference
from aerodrome.runtime.sources import RegistryGate, allowed_registries, classify

Progress = Callable[[str], None]

RESOLVE_TIMEOUT = 30.0
#: How long a tag's resolution is reused: a burst of creates from one tag asks the registry once, while a push
#: of a new image under the same tag is seen within seconds.
RESOLVE_TTL = 2.0
TRANSFER_TIMEOUT = 900.0
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ImageStore:
    """Pulls, unpacks and remembers images; every method is safe to call after a daemon restart."""

    def __init__(
        self,
        root: Path,
        *,
        registries: Sequence[str] = ("127.0.0.1:5000",),
        mirrors: Mapping[str, str] | None = None,
        insecure: Sequence[str] = (),
        resolve_timeout: float = RESOLVE_TIMEOUT,
        transfer_timeout: float = TRANSFER_TIMEOUT,
        resolve_ttl: float = RESOLVE_TTL,
        gate: RegistryGate | None = None,
        missing_hints: Mapping[str, str] | None = None,
    ) -> None:
        """`missing_hints`: for a reference as a user writes it, what to do when no registry has it (the
        command that builds it), said in the 404."""
        self.root = Path(root)
        self.missing_hints = dict(missing_hints or {})
        self.registries = tuple(registries)
        self.mirrors = dict(mirrors or {})
        # by default, only the registries named here and the mirrors' targets are ever contacted
        self.gate = gate or RegistryGate(allowed_registries(self.registries, self.mirrors))
        self.insecure = frozenset(insecure)
        self.resolve_timeout = resolve_timeout
        self.transfer_timeout = transfer_timeout
        self.resolve_ttl = resolve_ttl
        self._layout = self.root / "layout"
        self._ref_locks: dict[str, asyncio.Lock] = {}
        self._digest_locks: dict[str, asyncio.Lock] = {}
        # skopeo and umoci both rewrite the layout's index.json without locking it: one writer or reader at a time.
        self._layout_lock = asyncio.Lock()
        # reference -> (image, when resolved): a burst of creates from one tag asks the registry once
        self._fresh: dict[str, tuple[ImageInfo, float]] = {}
        # digest -> image, as its metadata file says: this process is the one that writes and removes them
        self._unpacked: dict[str, ImageInfo] = {}

    async def pull(
        self, reference: str, progress: Progress | None = None, *, grant: PullGrant | None = None
    ) -> ImageInfo:
        """Resolve `reference`, fetch and unpack its image unless present; NotFoundError/UnavailableError name it.

        `grant` is the organisation the machine is for: the embedded registry's repositories it does not cover
        are refused before anything is resolved, by tag and by digest alike (None: the daemon's own pull).
        """
        report = progress or _ignore
        ref = parse_reference(reference)
        candidates = self.gate.admit(reference, candidate_sources(ref, self.registries, self.mirrors), grant)
        lock = self._ref_locks.setdefault(str(ref), asyncio.Lock())
        async with lock:
            if ref.digest and (cached := self._cached(ref.digest, [ref, *candidates])) is not None:
                report(f"using {ref.digest} already on this host")
                return self._remember(reference, ref, cached)
            fresh_key = "|".join([reference, *map(str, candidates)])
            fresh = self._fresh.get(fresh_key)
            if fresh is not None and time.monotonic() - fresh[1] < self.resolve_ttl and self.get(fresh[0].digest):
                report(f"using {fresh[0].digest}, resolved {time.monotonic() - fresh[1]:.1f}s ago")
                return fresh[0]
            report(f"resolving {reference}")
            try:
                source = await self._resolve(reference, candidates)
            except (NotFoundError, UnavailableError) as exc:
                fallback = self._known_digest(ref)
                if fallback is None or (cached := self._cached(fallback, [ref, *candidates])) is None:
                    raise
                report(f"{exc.message}; using {fallback} already on this host")
                return self._remember(reference, ref, cached)
            flags = (*self._tls_flags(source, "src"), *self._credentials(source, "src-", self.transfer_timeout))
            info = await self._ensure(source.digest, f"docker://{source.locator}", flags, report, source.registry)
            remembered = self._remember(reference, source, info)
            self._fresh[fresh_key] = (remembered, time.monotonic())
            return remembered

    async def import_archive(self, source: str, reference: str, progress: Progress | None = None) -> ImageInfo:
        """Import an `oci-archive:/path` or `docker-archive:/path` image and record it under `reference`."""
        report = progress or _ignore
        if not source.startswith(("oci-archive:", "docker-archive:")):
            raise InvalidArgumentError(f"unsupported image source {source!r}: use oci-archive: or docker-archive:")
        ref = parse_reference(reference)
        staging = f"import-{os.urandom(8).hex()}"
        report(f"importing {source}")
        async with self._layout_lock:
            self._prepare_dirs()
            await self._skopeo_copy(source, staging, (), reference, "")
            digest = self._layout_digest(staging)
            await run(["umoci", "tag", "--image", f"{self._layout}:{staging}", _tag(digest)])
            await run(["umoci", "rm", "--image", f"{self._layout}:{staging}"])
        info = await self._ensure(digest, None, (), report, "")
        return self._remember(reference, ref.pinned(digest), info)

    async def push(self, digest: str, destination: str) -> str:
        """Copy an image of this host to `destination` (`registry/repository:tag`); return the pushed reference.

        The local copy is in OCI format, so a registry may report a digest other than `digest` for it.
        """
        if self.get(digest) is None:
            raise NotFoundError(f"image {digest} is not on this host")
        target = parse_reference(destination)
        if not target.registry:
            target = dataclasses.replace(target, registry=self.registries[0] if self.registries else "")
        self.gate.check_up(target)
        credentials = self.gate.credentials(target, "dest-", ("pull", "push"), self.transfer_timeout)
        argv = ["skopeo", "copy", "--quiet", *self._tls_flags(target, "dest"), *credentials]
        async with self._layout_lock:
            await self._skopeo(
                [*argv, f"oci:{self._layout}:{_tag(digest)}", f"docker://{target.locator}"],
                str(target),
                self.transfer_timeout,
                target.registry,
            )
        return str(target)

    def get(self, digest: str) -> ImageInfo | None:
        """The image with this manifest digest, if unpacked on this host (no network)."""
        known = self._unpacked.get(digest)
        if known is not None:
            return known
        if not _DIGEST.fullmatch(digest):
            return None
        try:
            data = json.loads(self._metadata_path(digest).read_text())
        except (FileNotFoundError, ValueError):
            return None
        info = self._unpacked[digest] = _info_from_json(data)
        return info

    def read_file(self, digest: str, guest_path: str, limit: int) -> bytes | None:
        """A regular file of the image's unpacked rootfs (the edge's statics), read as safefs reads: no symlink
        followed, no FIFO opened, at most `limit` bytes. None when the image is not on this host or the path holds
        no such file. It blocks: call it off the event loop."""
        info = self.get(digest)
        if info is None:
            return None
        try:
            return safefs.read_file(Path(info.rootfs), guest_path, limit, where="in the image")
        except (OSError, InvalidArgumentError):
            return None

    def list(self) -> list[ImageInfo]:
        """Every image unpacked on this host."""
        found = (self.get(_digest_of(path.stem)) for path in sorted((self.root / "images").glob("*.json")))
        return [info for info in found if info is not None]

    async def remove_unused(self, in_use: set[str], *, grace: float = 0.0) -> builtins.list[str]:
        """Remove the rootfs and layout tag of every image whose digest is not in `in_use`; return those digests.

        An image pulled in the last `grace` seconds stays: a machine being created may not be recorded yet.
        """
        removed: builtins.list[str] = []
        for info in self.list():
            if info.digest in in_use or self._pulled_within(info.digest, grace):
                continue
            async with self._digest_locks.setdefault(info.digest, asyncio.Lock()):
                # The metadata goes first: an image without it is incomplete and never handed out.
                self._unpacked.pop(info.digest, None)
                self._metadata_path(info.digest).unlink(missing_ok=True)
                await asyncio.to_thread(shutil.rmtree, self._bundle(info.digest), True)
                async with self._layout_lock:
                    await run(["umoci", "rm", "--image", f"{self._layout}:{_tag(info.digest)}"], check=False)
            removed.append(info.digest)
        if removed:
            async with self._layout_lock:
                await run(["umoci", "gc", "--layout", str(self._layout)], timeout=self.transfer_timeout)
        return removed

    async def _resolve(self, reference: str, candidates: Sequence[ImageReference]) -> ImageReference:
        """The first candidate source that knows the reference, pinned to its manifest digest."""
        not_found: list[str] = []
        unreachable: list[str] = []
        for candidate in candidates:
            try:  # a digest is checked too, so a registry without it passes the turn to the next one
                digest = await self._inspect_digest(candidate)
                return candidate if candidate.digest else candidate.pinned(digest)
            except NotFoundError:
                not_found.append(str(candidate))
            except UnavailableError as exc:
                unreachable.append(exc.message)
        # A registry that answered is authoritative about its content; the unreachable ones are named too.
        if not_found:
            extra = f" (unreachable: {'; '.join(unreachable)})" if unreachable else ""
            if reference in self.missing_hints:
                extra += f": {self.missing_hints[reference]}"
            raise NotFoundError(f"image {reference} not found (tried {', '.join(not_found)}){extra}")
        raise UnavailableError(f"image {reference}: no registry could serve it: {'; '.join(unreachable)}")

    async def _inspect_digest(self, source: ImageReference) -> str:
        self.gate.check_up(source)
        flags = (*self._tls_flags(source, ""), *self._credentials(source, "", self.resolve_timeout))
        argv = ["skopeo", "inspect", "--raw", *flags, f"docker://{source.locator}"]
        manifest = await self._skopeo(argv, str(source), self.resolve_timeout, source.registry)
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    async def _ensure(
        self, digest: str, transport: str | None, tls: Sequence[str], report: Progress, registry: str
    ) -> ImageInfo:
        """Fetch (from `transport`, unless the layout has it) and unpack one digest, once."""
        async with self._digest_locks.setdefault(digest, asyncio.Lock()):
            if (cached := self.get(digest)) is not None:
                report(f"using {digest} already on this host")
                return cached
            async with self._layout_lock:
                self._prepare_dirs()
                if transport is not None:
                    report(f"pulling {digest}")
                    shown = transport.removeprefix("docker://")
                    await self._skopeo_copy(transport, _tag(digest), tls, shown, registry)
                    fault_point("image.pull.fetched")
                report(f"unpacking {digest}")
                started = time.monotonic()
                info = await self._unpack(digest)
            report(f"done: {digest} unpacked in {(time.monotonic() - started) * 1000:.0f} ms")
            return info

    async def _unpack(self, digest: str) -> ImageInfo:
        bundle, staging = self._bundle(digest), self.root / "tmp" / _tag(digest)
        with map_runtime_errors(f"unpacking {digest}"):
            await asyncio.to_thread(shutil.rmtree, staging, True)
            await asyncio.to_thread(shutil.rmtree, bundle, True)  # a leftover without metadata is incomplete
            staging.mkdir()
            # `raw unpack` lays the layers down and reads nothing back: `umoci unpack` would also look the image's
            # user up in its /etc/passwd to write a config.json no one reads, following (or blocking on) whatever
            # the image put there.
            await run(
                with_tool_umask(
                    ["umoci", "raw", "unpack", "--image", f"{self._layout}:{_tag(digest)}", str(staging / "rootfs")]
                ),
                timeout=self.transfer_timeout,
            )
            staging.rename(bundle)
            fault_point("image.pull.unpacked")
            info = self._read_image_config(digest)
            _write_atomically(self._metadata_path(digest), json.dumps(dataclasses.asdict(info)).encode())
            fault_point("image.pull.recorded")
        return info

    def _read_image_config(self, digest: str) -> ImageInfo:
        manifest = self._layout_blob(self._layout_digest(_tag(digest)))
        config = self._layout_blob(manifest["config"]["digest"]).get("config") or {}
        labels = dict(config.get("Labels") or {})
        return ImageInfo(
            reference="",
            digest=digest,
            image_ref={"registry": "", "repository": "", "tag": "", "digest": digest, "labels": labels},
            rootfs=str(self._bundle(digest) / "rootfs"),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=dict(item.split("=", 1) if "=" in item else (item, "") for item in config.get("Env") or ()),
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
            labels=labels,
            compressed_size=sum(int(layer.get("size") or 0) for layer in manifest.get("layers") or ()),
        )

    def _remember(self, reference: str, source: ImageReference, info: ImageInfo) -> ImageInfo:
        """Stamp the image with the reference it was asked for, and record where that reference points."""
        image_ref = {
            "registry": source.registry,
            "repository": source.repository,
            "tag": source.tag,
            "digest": info.digest,
            "labels": dict(info.labels),
        }
        stamped = dataclasses.replace(info, reference=reference, image_ref=image_ref)
        metadata = self._metadata_path(info.digest)
        with map_runtime_errors(f"recording image {reference}"):
            self._mark_seen(source.name, info.digest)
            if metadata.exists():  # never resurrect an image that remove_unused has just taken away
                _write_atomically(metadata, json.dumps(dataclasses.asdict(stamped)).encode())
                self._unpacked[info.digest] = stamped
            if not parse_reference(reference).digest:
                ref_file = self.root / "refs" / (urllib.parse.quote(str(parse_reference(reference)), safe="") + ".json")
                _write_atomically(ref_file, json.dumps({"digest": info.digest}).encode())
        return stamped

    def _pulled_within(self, digest: str, seconds: float) -> bool:
        """Every pull rewrites the image's metadata, so its age is the time since the image was last pulled."""
        try:
            return time.time() - self._metadata_path(digest).stat().st_mtime < seconds
        except FileNotFoundError:
            return False

    def _cached(self, digest: str, sources: Sequence[ImageReference]) -> ImageInfo | None:
        """This host's copy of `digest`, if one of `sources` is a repository known to hold it."""
        if not any(self._seen_path(source.name, digest).exists() for source in sources):
            return None
        return self.get(digest)

    def _seen_path(self, name: str, digest: str) -> Path:
        return self.root / "seen" / hashlib.sha256(f"{name}@{digest}".encode()).hexdigest()

    def _mark_seen(self, name: str, digest: str) -> None:
        path = self._seen_path(name, digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    def _known_digest(self, ref: ImageReference) -> str | None:
        ref_file = self.root / "refs" / (urllib.parse.quote(str(ref), safe="") + ".json")
        try:
            digest = json.loads(ref_file.read_text())["digest"]
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return digest if isinstance(digest, str) else None

    async def _skopeo_copy(self, source: str, tag: str, flags: Sequence[str], what: str, registry: str) -> None:
        argv = ["skopeo", "copy", "--quiet", *flags, source, f"oci:{self._layout}:{tag}"]
        await self._skopeo(argv, what, self.transfer_timeout, registry)

    async def _skopeo(self, argv: Sequence[str], what: str, timeout: float, registry: str) -> bytes:
        try:
            return (await run(argv, timeout=timeout)).stdout
        except TimeoutError:
            where = f"registry {registry}" if registry else "the image source"
            raise UnavailableError(f"image {what}: {where} did not answer within {timeout:g}s") from None
        except ToolError as exc:
            raise classify(exc, what, registry) from None

    def _credentials(self, source: ImageReference, prefix: str, lifetime: float) -> tuple[str, ...]:
        return self.gate.credentials(source, prefix, ("pull",), lifetime)

    def _tls_flags(self, source: ImageReference, prefix: str) -> tuple[str, ...]:
        flag = f"--{prefix}-tls-verify=false" if prefix else "--tls-verify=false"
        return (flag,) if source.registry in self.insecure or is_loopback_host(source.registry) else ()

    def _layout_digest(self, tag: str) -> str:
        index = json.loads((self._layout / "index.json").read_text())
        for entry in index.get("manifests", []):
            if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
                return str(entry["digest"])
        raise NotFoundError(f"image {tag} is not in the local layout")

    def _layout_blob(self, digest: str) -> dict[str, Any]:
        algorithm, hexdigest = digest.split(":", 1)
        data: dict[str, Any] = json.loads((self._layout / "blobs" / algorithm / hexdigest).read_bytes())
        return data

    def _prepare_dirs(self) -> None:
        # skopeo refuses a destination whose parent directory does not exist.
        for sub in ("images", "rootfs", "refs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _bundle(self, digest: str) -> Path:
        return self.root / "rootfs" / _tag(digest)

    def _metadata_path(self, digest: str) -> Path:
        return self.root / "images" / f"{_tag(digest)}.json"


def _tag(digest: str) -> str:
    """The digest as a layout tag and file name: `sha256-<hex>`."""
    return digest.replace(":", "-", 1)


def _digest_of(tag: str) -> str:
    return tag.replace("-", ":", 1)


def _info_from_json(data: dict[str, Any]) -> ImageInfo:
    for key in ("entrypoint", "cmd", "exposed_ports"):
        data[key] = tuple(data.get(key) or ())
    return ImageInfo(**data)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _ignore(_message: str) -> None:
    pass
