"""The OCI runtime config (config.json) of a machine.

PID 1 is catatonit, bind-mounted read-only from the host, so signals reach the program and zombies are
reaped. It runs the program under a one-line busybox shell (also bind-mounted read-only) that writes the
exit status into the machine's state directory: the status survives a daemon that was down when the
program ended, which the daemon cannot learn otherwise since the container's init is not its child.

The shell first waits for the host to mark the machine's network ready: the host builds the veth pair while
runc starts the container, and the program never sees a machine without its network.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any

from aerodrome.core import GuestFile, SandboxSpec
from aerodrome.runtime.runc import seccomp

GUEST_DIR = "/.aerodrome"
INIT_PATH = f"{GUEST_DIR}/catatonit"
SHELL_PATH = f"{GUEST_DIR}/busybox"
STATE_DIR = f"{GUEST_DIR}/state"
NETWORK_READY = "network"  # in the state directory: made by the host once the machine's network is up
TICK = "tick"  # in the state directory: a FIFO no one writes, so `read -t` on it sleeps without a process
# The traps keep the shell alive to record the status when catatonit forwards a signal to the process group;
# the program itself gets default dispositions back on exec.
WRAPPER = (
    f"trap : HUP INT QUIT TERM USR1 USR2; "
    f"until [ -e {STATE_DIR}/{NETWORK_READY} ]; do read -t 0.001 _ <> {STATE_DIR}/{TICK}; done; "
    f'"$@"; s=$?; echo $s > {STATE_DIR}/exit; exit $s'
)

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
    spec: SandboxSpec, *, uid: int, gid: int, netns_path: str, state_dir: str, cgroups_path: str
) -> dict[str, Any]:
    """The config.json of a machine; the rootfs is `rootfs/` beside it."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **spec.env}
    env.setdefault("HOSTNAME", spec.hostname or spec.machine_id)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": [INIT_PATH, "-g", "--", SHELL_PATH, "sh", "-c", WRAPPER, "sh", *spec.argv],
            "env": [f"{key}={value}" for key, value in env.items()],
            "cwd": spec.working_dir or "/",
            "capabilities": {kind: CAPABILITIES for kind in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": spec.hostname or spec.machine_id,
        "mounts": _mounts(spec, state_dir),
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "network", "path": netns_path},
            ],
            "cgroupsPath": cgroups_path,
            "resources": _resources(spec),
            "seccomp": _seccomp(),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }


def _bind(source: str, destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", *options]}


def _mounts(spec: SandboxSpec, state_dir: str) -> list[dict[str, Any]]:
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
        _bind(state_dir, STATE_DIR, "rw"),
    ]
    mounts.extend(_bind(m.host_path, m.guest_path, "rw") for m in spec.mounts)
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


def _seccomp() -> dict[str, Any]:
    return seccomp.profile()


def system_files(spec: SandboxSpec, ipv4: str, ipv6: str) -> tuple[GuestFile, ...]:
    """/etc/hostname and /etc/hosts naming the machine by its private addresses (written before the user's files)."""
    hostname = spec.hostname or spec.machine_id
    hosts = (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{ipv6}\t{hostname} fly-local-6pn\n{ipv4}\t{hostname}\n"
    )
    return (GuestFile("/etc/hostname", f"{hostname}\n".encode()), GuestFile("/etc/hosts", hosts.encode()))
