"""The root filesystems of a multi-container machine, inside its one runc container.

A machine with `containers` is still one runc container (one bundle, one netns, one cgroup, one user
namespace): its own program is a sleeping placeholder, and each container is an overlay of its image, idmapped
like the machine's own rootfs, mounted at `/.aerodrome/c/<name>` in it with its own /proc, /dev, busybox and
volumes. The daemon runs each container's process there (`runc exec`, then chroot: `pod.py`), so the
containers share the machine's network, memory and CPU limits, and its volumes. A one-container machine never
comes here: its bundle and start are unchanged.

What a container writes lands on the machine's scratch filesystem (`scratch/c/<name>`), and its scratch
volumes are directories there (`scratch/v/<name>`): the machine's rootfs size bounds them all, and they go
with the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aerodrome.core import ContainerRun, GuestFile, NotFoundError, SandboxSpec
from aerodrome.runtime.runc import bundle, guestfs
from aerodrome.runtime.runc.layout import MachinePaths, traversable_dirs
from aerodrome.runtime.runc.source import ImageSource
from aerodrome.runtime.runc.userns import IdRange

ROOTS = f"{bundle.GUEST_DIR}/c"  # where the containers' roots are, in the machine
PLACEHOLDER = (bundle.SHELL_PATH, "sleep", "2147483647")  # the machine's own program: it only holds the run
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def image_rootfs(images: ImageSource, spec: SandboxSpec) -> dict[str, str]:
    """Each container's image rootfs on this host, by container name."""
    lowers = {}
    for container in spec.containers:
        image = images.get(container.image_digest)
        if image is None:
            raise NotFoundError(f"image {container.image_digest} of container {container.name} is not on this host")
        lowers[container.name] = image.rootfs
    return lowers


def root_of(name: str) -> str:
    return f"{ROOTS}/{name}"


def host_root(paths: MachinePaths, name: str, kind: str = "c") -> Path:
    """Where the host mounts a container's overlay (`c`) or a scratch volume (`v`) while runc starts the
    machine."""
    return paths.mounts / kind / name


def prepare_roots(
    paths: MachinePaths,
    spec: SandboxSpec,
    lowers: dict[str, str],
    ids: IdRange,
    userns_fd: int,
    system: tuple[GuestFile, ...],
    volume_sources: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Mount each container's overlay (fresh writes) on the host, write its files, make the scratch volumes;
    return the runc mounts that place them in the machine, after its own."""
    for leftover in (paths.scratch / "c", paths.scratch / "v"):  # an earlier run's, on a reused scratch image
        shutil.rmtree(leftover, ignore_errors=True)
        leftover.mkdir(mode=0o700)
    for name in spec.scratch_volumes:
        volume = paths.scratch / "v" / name
        volume.mkdir(mode=0o755)
        shutil.chown(volume, ids.base, ids.base)
        # runc binds from inside the machine's user namespace, which cannot enter the data directory
        target = host_root(paths, name, kind="v")
        guestfs.unmount(target)
        traversable_dirs(target)
        guestfs.bind_mount(volume, target)
    mounts: list[dict[str, Any]] = []
    for container in spec.containers:
        target = host_root(paths, container.name)
        guestfs.unmount(target)
        traversable_dirs(target)
        scratch = paths.scratch / "c" / container.name
        scratch.mkdir(mode=0o700)
        guestfs.mount_overlay_at(target, scratch / "upper", scratch / "work", lowers[container.name], ids, userns_fd)
        guestfs.write_files(target, (*system, *container.files), ids.base)
        mounts += _container_mounts(paths, spec, container, volume_sources)
    return mounts


def _container_mounts(
    paths: MachinePaths, spec: SandboxSpec, container: ContainerRun, volume_sources: tuple[str, ...]
) -> list[dict[str, Any]]:
    root = root_of(container.name)
    mounts = [
        _bind(str(host_root(paths, container.name)), root, "rw"),
        {"destination": f"{root}/proc", "type": "proc", "source": "proc"},
        {"destination": f"{root}/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        *(_bind(f"/dev/{device}", f"{root}/dev/{device}", "rw") for device in DEVICES),
        {"destination": f"{root}/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev"]},
        _bind(bundle.host_binary("busybox", "/bin/busybox"), f"{root}{bundle.SHELL_PATH}", "ro"),
    ]
    for mount in container.mounts:
        mounts.append(_bind(_volume_source(paths, spec, mount.name, volume_sources), f"{root}{mount.path}", "rw"))
    return mounts


def _volume_source(paths: MachinePaths, spec: SandboxSpec, name: str, volume_sources: tuple[str, ...]) -> str:
    """A container mount's source: the machine's volume mounted at guest path `name`, or its scratch volume."""
    if name.startswith("/"):
        for source, mount in zip(volume_sources, spec.mounts, strict=True):
            if mount.guest_path == name:
                return source
        raise ValueError(f"no volume of the machine is mounted at {name}")
    return str(host_root(paths, name, kind="v"))


def release_roots(paths: MachinePaths) -> None:
    """The machine holds its own copies of the containers' mounts once it runs; the host's go."""
    for directory in (paths.mounts / "c", paths.mounts / "v"):
        if not directory.exists():
            continue
        for target in directory.iterdir():
            guestfs.unmount(target)
            target.rmdir()
        directory.rmdir()


def _bind(source: str, destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", *options]}


def container_process(container: ContainerRun, command: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OCI process that runs `command` (by default the container's argv) in the container: entered with
    chroot from the machine, in its working directory, with its env. Root of the machine's user namespace."""
    argv = command or container.argv
    inner = [bundle.SHELL_PATH, "sh", "-c", 'cd "$0" && exec "$@"', container.working_dir or "/", *argv]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **container.env}
    return {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": [bundle.SHELL_PATH, "chroot", root_of(container.name), *inner],
        "env": [f"{key}={value}" for key, value in env.items()],
        "cwd": "/",
        "capabilities": {kind: bundle.CAPABILITIES for kind in ("bounding", "effective", "permitted")},
        "noNewPrivileges": True,
    }
