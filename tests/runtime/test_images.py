"""The image store against a real registry, real skopeo and real umoci."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from aerodrome.core import InvalidArgumentError, NotFoundError, UnavailableError
from aerodrome.runtime.images import ImageStore
from aerodrome.runtime.process import run
from aerodrome.runtime.references import ImageReference, apply_mirror, candidate_sources, parse_reference
from aerodrome.runtime.registry import EmbeddedRegistry
from tests.support.images import build_busybox_archive, build_busybox_image
from tests.support.registry import free_loopback_port, running_registry


def _store(root: Path, registry: EmbeddedRegistry, **options: object) -> ImageStore:
    return ImageStore(root, registries=(registry.url,), **options)  # type: ignore[arg-type]


def _unpacks(messages: list[str]) -> int:
    return sum(message.startswith("unpacking") for message in messages)


async def test_pull_unpacks_the_rootfs_and_reads_the_config(
    tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str
) -> None:
    steps: list[str] = []
    info = await _store(tmp_path, registry).pull(busybox_image, steps.append)
    rootfs = Path(info.rootfs)
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / "bin" / "httpd").is_symlink()
    assert (rootfs / "www" / "index.html").read_bytes().startswith(b"<h1>")
    assert info.cmd == ("httpd", "-f", "-v", "-p", "8080", "-h", "/www")
    assert info.entrypoint == ()
    assert info.env["PATH"].endswith("/bin")
    assert info.exposed_ports == ("8080/tcp",)
    assert info.digest.startswith("sha256:") and ":" not in info.rootfs
    assert info.image_ref == {
        "registry": registry.url,
        "repository": "busybox",
        "tag": "latest",
        "digest": info.digest,
        "labels": {},
    }
    assert [step.split()[0] for step in steps] == ["resolving", "pulling", "unpacking", "done:"]


async def test_config_fields_and_labels(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    reference = await build_busybox_image(
        registry.url,
        "configured",
        entrypoint=["/bin/sh", "-c"],
        cmd=["echo hi"],
        env={"GREETING": "hello=world"},
        labels={"fly.version": "7"},
        working_dir="/www",
    )
    info = await _store(tmp_path, registry).pull(reference)
    assert (info.entrypoint, info.cmd, info.working_dir) == (("/bin/sh", "-c"), ("echo hi",), "/www")
    assert info.env["GREETING"] == "hello=world"
    assert info.labels == info.image_ref["labels"] == {"fly.version": "7"}


async def test_second_pull_reuses_the_rootfs(tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str) -> None:
    store = _store(tmp_path, registry)
    first = await store.pull(busybox_image)
    marker = Path(first.rootfs) / "marker"
    marker.write_text("still here")
    steps: list[str] = []
    second = await store.pull(busybox_image, steps.append)
    assert second == first
    assert marker.read_text() == "still here"
    assert _unpacks(steps) == 0


async def test_short_name_tries_the_configured_registries(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    await build_busybox_image(registry.url, "shortname")
    dead = f"127.0.0.1:{free_loopback_port()}"
    store = ImageStore(tmp_path, registries=(dead, registry.url))
    info = await store.pull("shortname")
    assert info.reference == "shortname"
    assert info.image_ref["registry"] == registry.url


async def test_pull_by_digest_needs_no_network_and_survives_a_restart(tmp_path: Path) -> None:
    async with running_registry() as registry:
        reference = await build_busybox_image(registry.url, "offline")
        info = await ImageStore(tmp_path, registries=(registry.url,)).pull(reference)
    restarted = ImageStore(tmp_path, registries=(registry.url,))
    assert restarted.get(info.digest) == info
    assert [image.digest for image in restarted.list()] == [info.digest]
    by_digest = await restarted.pull(f"{registry.url}/offline@{info.digest}")
    assert by_digest.rootfs == info.rootfs
    # A tag pulled before still starts machines while its registry is down.
    steps: list[str] = []
    by_tag = await restarted.pull(reference, steps.append)
    assert by_tag.digest == info.digest
    assert "already on this host" in steps[-1]


async def test_unknown_tag_is_not_found(tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str) -> None:
    store = _store(tmp_path, registry)
    with pytest.raises(NotFoundError, match="busybox:no-such-tag"):
        await store.pull(f"{registry.url}/busybox:no-such-tag")
    with pytest.raises(NotFoundError, match="never-pushed"):
        await store.pull("never-pushed:v1")


async def test_unreachable_registry_is_unavailable(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_loopback_port()}"
    with pytest.raises(UnavailableError, match="app:v1"):
        await ImageStore(tmp_path, registries=(dead,)).pull("app:v1")


async def test_a_registry_that_never_answers_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as black_hole:  # accepts connections (the kernel's backlog), never replies
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen()
        silent = f"127.0.0.1:{black_hole.getsockname()[1]}"
        store = ImageStore(tmp_path, registries=(silent,), resolve_timeout=0.5)
        with pytest.raises(UnavailableError, match="app:v1"):
            await store.pull("app:v1")


async def test_an_unpack_cut_short_is_redone(tmp_path: Path, registry: EmbeddedRegistry, busybox_image: str) -> None:
    store = _store(tmp_path, registry)
    info = await store.pull(busybox_image)
    # A crash after the rename but before the metadata: the rootfs is there, the image is not.
    (tmp_path / "images" / (info.digest.replace(":", "-") + ".json")).unlink()
    rootfs = Path(info.rootfs)
    (rootfs / "bin" / "busybox").unlink()
    store = _store(tmp_path, registry)  # the daemon that comes back after the crash
    assert store.get(info.digest) is None
    steps: list[str] = []
    again = await store.pull(busybox_image, steps.append)
    assert _unpacks(steps) == 1 and again.digest == info.digest
    assert (rootfs / "bin" / "busybox").is_file()


async def test_invalid_reference_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        await ImageStore(tmp_path).pull("UPPER/case")


async def test_mirror_serves_flyio_images_from_the_embedded_registry(
    tmp_path: Path, registry: EmbeddedRegistry
) -> None:
    await build_busybox_image(registry.url, "flyio/mcp", "latest")
    await build_busybox_image(registry.url, "myapp", "deployment-1")
    mirrors = {"flyio/mcp": f"{registry.url}/flyio/mcp", "registry.fly.io": registry.url}
    store = ImageStore(tmp_path, registries=(), mirrors=mirrors)
    mcp = await store.pull("flyio/mcp:latest")
    assert (mcp.reference, mcp.image_ref["registry"], mcp.image_ref["repository"]) == (
        "flyio/mcp:latest",
        registry.url,
        "flyio/mcp",
    )
    app = await store.pull("registry.fly.io/myapp:deployment-1")
    assert app.image_ref["tag"] == "deployment-1"


async def test_import_from_an_oci_archive(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    source = await build_busybox_archive(tmp_path / "image.tar", cmd=["sleep", "1000"], labels={"origin": "archive"})
    store = _store(tmp_path / "store", registry)
    info = await store.import_archive(source, "local/app:v1")
    assert info.cmd == ("sleep", "1000")
    assert (Path(info.rootfs) / "bin" / "busybox").is_file()
    assert info.image_ref["repository"] == "local/app" and info.labels == {"origin": "archive"}
    # No registry has it; the local copy answers.
    assert (await store.pull("local/app:v1")).digest == info.digest
    assert (await store.pull(f"local/app@{info.digest}")).rootfs == info.rootfs
    with pytest.raises(InvalidArgumentError):
        await store.import_archive("/plain/path.tar", "x:y")
    # Imported images can be pushed to the embedded registry and pulled from there.
    pushed = await store.push(info.digest, "local/app:pushed")
    assert pushed == f"{registry.url}/local/app:pushed"
    assert (await _store(tmp_path / "other", registry).pull("local/app:pushed")).cmd == ("sleep", "1000")


async def test_import_from_a_docker_archive(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    oci_archive = await build_busybox_archive(tmp_path / "image.tar", cmd=["sleep", "2000"])
    docker_archive = tmp_path / "docker.tar"
    await run(["skopeo", "copy", "--quiet", oci_archive, f"docker-archive:{docker_archive}:app:v2"])
    store = _store(tmp_path / "store", registry)
    info = await store.import_archive(f"docker-archive:{docker_archive}", "app:v2")
    assert info.cmd == ("sleep", "2000") and store.get(info.digest) == info
    with pytest.raises(NotFoundError):
        await store.import_archive(f"oci-archive:{tmp_path / 'missing.tar'}", "x:y")


async def test_remove_unused(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    store = _store(tmp_path, registry)
    kept = await store.pull(await build_busybox_image(registry.url, "gc-kept"))
    gone = await store.pull(await build_busybox_image(registry.url, "gc-gone", files={"/gone": b"x"}))
    assert await store.remove_unused({kept.digest}) == [gone.digest]
    gone_rootfs, kept_rootfs = Path(gone.rootfs), Path(kept.rootfs)
    assert store.get(gone.digest) is None and not (gone_rootfs / "bin").exists()
    assert store.get(kept.digest) == kept and (kept_rootfs / "bin" / "busybox").is_file()
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    tags = {entry["annotations"]["org.opencontainers.image.ref.name"] for entry in index["manifests"]}
    assert tags == {kept.digest.replace(":", "-")}
    assert await store.remove_unused({kept.digest}) == []
    # A removed image comes back on the next pull.
    again = Path((await store.pull(f"{registry.url}/gc-gone:latest")).rootfs)
    assert (again / "gone").is_file()


async def test_concurrent_pulls_of_one_reference_unpack_once(tmp_path: Path, registry: EmbeddedRegistry) -> None:
    reference = await build_busybox_image(registry.url, "concurrent")
    store = _store(tmp_path, registry)
    steps: list[list[str]] = [[], [], [], []]
    infos = await asyncio.gather(*(store.pull(reference, log.append) for log in steps))
    assert len({info.rootfs for info in infos}) == 1
    assert sum(_unpacks(log) for log in steps) == 1

    # Two tags of one digest, pulled at once by a fresh store, share one unpack too.
    alias = reference.replace(":latest", ":alias")
    await run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{reference}",
            f"docker://{alias}",
        ]
    )
    fresh = _store(tmp_path / "fresh", registry)
    logs: list[list[str]] = [[], []]
    both = await asyncio.gather(fresh.pull(reference, logs[0].append), fresh.pull(alias, logs[1].append))
    assert both[0].digest == both[1].digest and both[0].reference != both[1].reference
    assert sum(_unpacks(log) for log in logs) == 1


def test_reference_parsing() -> None:
    assert parse_reference("busybox") == ImageReference("busybox", tag="latest")
    assert parse_reference("127.0.0.1:5000/app:v1") == ImageReference("app", "127.0.0.1:5000", "v1")
    assert parse_reference("localhost/a/b") == ImageReference("a/b", "localhost", "latest")
    pinned = parse_reference("registry.fly.io/x@sha256:" + "a" * 64)
    assert (pinned.registry, pinned.tag, pinned.locator) == (
        "registry.fly.io",
        "",
        f"registry.fly.io/x@{pinned.digest}",
    )
    for bad in ("", "a@sha256:zz", "Upper", "a:b:c", "a:-tag"):
        with pytest.raises(InvalidArgumentError):
            parse_reference(bad)


def test_mirror_resolution() -> None:
    mirrors = {"flyio": "127.0.0.1:5000/hub/flyio", "flyio/mcp": "127.0.0.1:5000/mcp", "docker.io/library": "m:1/lib"}
    assert str(apply_mirror(parse_reference("flyio/mcp:latest"), mirrors)) == "127.0.0.1:5000/mcp:latest"
    assert str(apply_mirror(parse_reference("flyio/other"), mirrors)) == "127.0.0.1:5000/hub/flyio/other:latest"
    assert str(apply_mirror(parse_reference("nginx:1"), mirrors)) == "m:1/lib/nginx:1"
    assert apply_mirror(parse_reference("flyiox/app"), mirrors) is None
    sources = candidate_sources(parse_reference("flyio/mcp"), ["127.0.0.1:5000", "r:1"], mirrors)
    assert [str(s) for s in sources] == [
        "127.0.0.1:5000/mcp:latest",
        "127.0.0.1:5000/flyio/mcp:latest",
        "r:1/flyio/mcp:latest",
    ]
