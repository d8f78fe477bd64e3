"""The OCI runtime config (config.json) of a machine.

PID 1 is catatonit, bind-mounted read-only from the host, so signals reach the program and zombies are
reaped. It runs the program under a one-line busybox shell (also bind-mounted read-only) that first waits
for the host to say the machine's network is ready: the host builds the veth pair while runc starts the
container, and the program never sees a machine without its network. The word comes on the shell's stdin,
a pipe whose other end only the daemon holds; then the shell gives the program /dev/null as stdin and
becomes it. A daemon that dies before saying it closes the pipe, and the machine exits (125) unstarted.

The machine runs in a user namespace of its own (`userns.py`), which owns its network namespace; nothing of
the host is bind-mounted writable into it but its volumes, and the daemon learns how it ended from the exit
status of its init (the daemon is the init's reaper), never from a file the machine could write.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any

from aerodrome.core import GuestFile, SandboxSpec
from aerodrome.runtime.runc import seccomp
from aerodrome.runtime.runc.userns import IdRange

GUEST_DIR = "/.aerodrome"
INIT_PATH = f"{GUEST_DIR}/catatonit"
SHELL_PATH = f"{GUEST_DIR}/busybox"
GO = b"go\n"  # what the daemon writes on the wrapper's stdin once the network is up
NOT_STARTED = 125  # the wrapper's exit when the daemon went away before the network was ready
FLY_DIR = "/.fly"  # where the machine finds its API socket, /.fly/api (the host's directory, read-only)
WRAPPER = f'read -r go; [ "$go" = go ] || exit {NOT_STARTED}; exec "$@" </dev/null'

CPU_PERIOD_US = 100_000
PIDS_LIMIT = 4096

# Docker's default capability set without CAP_NET_RAW (raw sockets: packets with forged headers, and a wide
# kernel surface) and CAP_MKNOD (device nodes: with it, the device cgroup is all that keeps a machine from the
# host's disks).
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@functools.cache
def host_binary(name: str, default: str) -> str:
    """Looked up once: a search of PATH costs more than the rest of a bundle, and binaries stay put."""
    return shutil.which(name) or default


def build_config(
    spec: SandboxSpec,
    *,
    uid: int,
    gid: int,
    ids: IdRange,
    userns_path: str,
    netns_path: str,
    volume_sources: tuple[str, ...],
    rootfs: str,
    cgroups_path: str,
    compat_32bit: bool = False,
    fly_dir: str | None = None,
) -> dict[str, Any]:
    """The config.json of a machine, whose root filesystem is mounted at `rootfs`.

    `uid`/`gid` are the machine's own ids (its namespace maps them to `ids`); `volume_sources[i]` is where the
    host holds `spec.mounts[i]` idmapped for this run.
    """
    return {
        "ociVersion": "1.0.2",
        "process": _process(spec, [INIT_PATH, "-g", "--", SHELL_PATH, "sh", "-c", WRAPPER, "sh", *spec.argv], uid, gid),
        "root": {"path": rootfs, "readonly": False},
        "hostname": spec.hostname or spec.machine_id,
        "mounts": _mounts(spec, volume_sources) + ([_bind(fly_dir, FLY_DIR, "ro")] if fly_dir else []),
        "linux": {
            "namespaces": [
                {"type": "user", "path": userns_path},
                {"type": "network", "path": netns_path},
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "uidMappings": ids.to_oci(),  # runc 1.1 wants them even for a namespace it joins
            "gidMappings": ids.to_oci(),
            "cgroupsPath": cgroups_path,
            "resources": _resources(spec),
            "seccomp": seccomp.profile(compat_32bit),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }


def _process(spec: SandboxSpec, args: list[str], uid: int, gid: int) -> dict[str, Any]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **spec.env}
    env.setdefault("HOSTNAME", spec.hostname or spec.machine_id)
    return {
        "terminal": False,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": [f"{key}={value}" for key, value in env.items()],
        "cwd": spec.working_dir or "/",
        "capabilities": {kind: CAPABILITIES for kind in ("bounding", "effective", "permitted")},
        "noNewPrivileges": True,
    }


def exec_process(spec: SandboxSpec, command: list[str], *, uid: int, gid: int) -> dict[str, Any]:
    """The OCI process of `exec`: the command with the machine's env, user and working directory."""
    return _process(spec, command, uid, gid)


def _bind(source: str, destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", *options]}


def _mounts(spec: SandboxSpec, volume_sources: tuple[str, ...]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        _bind(host_binary("catatonit", "/usr/bin/catatonit"), INIT_PATH, "ro"),
        _bind(host_binary("busybox", "/bin/busybox"), SHELL_PATH, "ro"),
    ]
    mounts.extend(_bind(source, m.guest_path, "rw") for source, m in zip(volume_sources, spec.mounts, strict=True))
    return mounts


def memory_limits(memory_mb: int) -> dict[str, int]:
    memory = memory_mb * 1024 * 1024
    return {"limit": memory, "swap": memory}  # swap == limit: no swap on top of RAM


def _resources(spec: SandboxSpec) -> dict[str, Any]:
    return {
        "devices": [{"allow": False, "access": "rwm"}],  # runc adds the standard /dev nodes back
        "memory": memory_limits(spec.memory_mb),
        "cpu": {"quota": spec.cpus * CPU_PERIOD_US, "period": CPU_PERIOD_US},
        "pids": {"limit": PIDS_LIMIT},
    }


def system_files(spec: SandboxSpec, ipv4: str, ipv6: str, resolvers: tuple[str, ...] = ()) -> tuple[GuestFile, ...]:
    """/etc/hostname and /etc/hosts naming the machine by its private addresses, and /etc/resolv.conf naming the
    host's resolvers when it runs them and the machine's config leaves them on (written before the user's files)."""
    hostname = spec.hostname or spec.machine_id
    hosts = (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{ipv6}\t{hostname} fly-local-6pn\n{ipv4}\t{hostname}\n"
    )
    files = [GuestFile("/etc/hostname", f"{hostname}\n".encode()), GuestFile("/etc/hosts", hosts.encode())]
    if resolvers and spec.host_resolver:
        lines = "".join(f"nameserver {address}\n" for address in resolvers)
        files.append(GuestFile("/etc/resolv.conf", lines.encode()))
    return tuple(files)


def network_env(ipv6: str) -> dict[str, str]:
    """What Fly tells a machine of its addresses: its 6PN address, which is also the one others see it by."""
    return {"FLY_PRIVATE_IP": ipv6, "FLY_PUBLIC_IP": ipv6}
