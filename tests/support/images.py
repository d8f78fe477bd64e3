"""Test images built without docker: busybox-static in an OCI layout made by umoci, pushed by skopeo."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from aerodrome.runtime.process import run

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
DEFAULT_CMD = ("httpd", "-f", "-v", "-p", "8080", "-h", "/www")
DEFAULT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# Every file costs about a millisecond to create on these hosts, at build and at unpack: link the applets tests
# use rather than all ~400 (pass `applets=None` for all of them; any applet also runs as `busybox <name>`).
COMMON_APPLETS = tuple(
    "sh ash cat echo ls sleep httpd env id ps kill mkdir rm cp mv touch wc head tail grep sed awk printf "
    "test [ true false hostname ip ifconfig ping wget nc nslookup df du mount uname date dd stat chmod ln "
    "readlink find tee pwd whoami sha256sum timeout pidof netstat sync seq yes xargs tr cut sort trap "
    "dmesg free top nproc sysctl".split()
)
DEFAULT_FILES = {
    "/www/index.html": b"<h1>hello from aerodrome</h1>\n",
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "/etc/group": b"root:x:0:\nnogroup:x:65534:\n",
}


async def build_busybox_layout(
    workdir: Path,
    tag: str = "latest",
    *,
    cmd: Sequence[str] = DEFAULT_CMD,
    entrypoint: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
    modes: Mapping[str, int] | None = None,
    labels: Mapping[str, str] | None = None,
    working_dir: str = "/",
    exposed_ports: Sequence[str] = ("8080/tcp",),
    applets: Sequence[str] | None = COMMON_APPLETS,
    user: str = "",
    symlinks: Mapping[str, str] | None = None,
    fifos: Sequence[str] = (),
) -> str:
    """Build the image as an OCI layout under `workdir`; return its skopeo name, `oci:<layout>:<tag>`.

    `files` are written with mode 0644 unless `modes` gives theirs (by the same guest path), e.g. 0o755 for a
    program. `symlinks` ({guest path: target}) and `fifos` are planted last, over any file of the same path, as
    a hostile image would carry them: the layer keeps them as they are.
    """
    layout, bundle = workdir / "layout", workdir / "bundle"
    image = f"{layout}:{tag}"
    await run(["umoci", "init", "--layout", str(layout)])
    await run(["umoci", "new", "--image", image])
    await run(["umoci", "unpack", "--image", image, str(bundle)])
    _populate(bundle / "rootfs", {**DEFAULT_FILES, **(files or {})}, modes or {}, applets)
    _plant(bundle / "rootfs", symlinks or {}, fifos)
    await run(["umoci", "repack", "--image", image, str(bundle)])
    argv = ["umoci", "config", "--image", image, "--config.workingdir", working_dir]
    argv += ["--config.user", user] if user else []
    argv += [arg for item in cmd for arg in ("--config.cmd", item)]
    argv += [arg for item in entrypoint for arg in ("--config.entrypoint", item)]
    argv += [arg for k, v in {**DEFAULT_ENV, **(env or {})}.items() for arg in ("--config.env", f"{k}={v}")]
    argv += [arg for k, v in (labels or {}).items() for arg in ("--config.label", f"{k}={v}")]
    argv += [arg for port in exposed_ports for arg in ("--config.exposedports", port)]
    await run(argv)
    return f"oci:{image}"


async def build_busybox_image(
    registry_url: str,
    name: str = "busybox",
    tag: str = "latest",
    *,
    cmd: Sequence[str] = DEFAULT_CMD,
    entrypoint: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
    modes: Mapping[str, int] | None = None,
    labels: Mapping[str, str] | None = None,
    working_dir: str = "/",
    applets: Sequence[str] | None = COMMON_APPLETS,
    user: str = "",
    symlinks: Mapping[str, str] | None = None,
    fifos: Sequence[str] = (),
    credentials: str | None = None,
) -> str:
    """Build a busybox image and push it to the (plain http) registry at `registry_url`, logged in with
    `credentials` (`user:password`) when given; return its reference."""
    reference = f"{registry_url}/{name}:{tag}"
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-image-"))
    try:
        source = await build_busybox_layout(
            workdir,
            tag,
            cmd=cmd,
            entrypoint=entrypoint,
            env=env,
            files=files,
            modes=modes,
            labels=labels,
            working_dir=working_dir,
            applets=applets,
            user=user,
            symlinks=symlinks,
            fifos=fifos,
        )
        login = [f"--dest-creds={credentials}"] if credentials else []
        await run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *login, source, f"docker://{reference}"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return reference


async def build_busybox_archive(
    path: Path, tag: str = "latest", *, cmd: Sequence[str] = DEFAULT_CMD, labels: Mapping[str, str] | None = None
) -> str:
    """Build a busybox image as an `oci-archive` file at `path`; return the skopeo source, `oci-archive:<path>`."""
    workdir = Path(tempfile.mkdtemp(prefix="aerodrome-image-"))
    try:
        source = await build_busybox_layout(workdir, tag, cmd=cmd, labels=labels)
        await run(["skopeo", "copy", "--quiet", source, f"oci-archive:{path}:{tag}"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return f"oci-archive:{path}"


def _populate(
    rootfs: Path, files: Mapping[str, bytes], modes: Mapping[str, int], applets: Sequence[str] | None
) -> None:
    """busybox at /bin/busybox with a relative symlink per applet, the given files, and an empty /tmp."""
    bindir = rootfs / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    available = set(_applets())
    for applet in available if applets is None else [name for name in applets if name in available]:
        link = bindir / applet
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    for guest_path, data in files.items():
        target = rootfs / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, modes.get(guest_path, 0o644))  # explicit: write_bytes leaves the mode to the umask
    (rootfs / "tmp").mkdir(mode=0o1777, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)


def _plant(rootfs: Path, symlinks: Mapping[str, str], fifos: Sequence[str]) -> None:
    for guest_path in (*symlinks, *fifos):
        target = rootfs / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for guest_path, points_to in symlinks.items():
        (rootfs / guest_path.lstrip("/")).symlink_to(points_to)
    for guest_path in fifos:
        os.mkfifo(rootfs / guest_path.lstrip("/"))


def _applets() -> list[str]:
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, check=True, timeout=10).stdout
    return [name for name in listing.decode().split() if "/" not in name]
