"""Where a server keeps its state, and the checks made before it starts."""

from __future__ import annotations

import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/aerodrome"
# Prepared network slots (netns and veth pairs) kept for each organisation starting machines, and their bound.
NETNS_POOL = 2
MAX_NETNS_POOL = 16
REQUIRED_TOOLS = ("runc", "catatonit", "skopeo", "umoci", "docker-registry", "losetup", "mkfs.ext4", "ip", "nsenter")

# `serve --edge-timeout NAME=SECONDS`: each name and the edge setting it sets.
EDGE_TIMEOUTS = {
    "connect": "connect_timeout",  # opening a connection to a machine
    "read": "read_timeout",  # from request sent to the response head
    "idle": "idle_timeout",  # silence in a streaming response, a tunnel or a TCP connection
    "keepalive": "keepalive_timeout",  # an idle client connection between requests
    "upstream-idle": "upstream_idle_timeout",  # an idle pooled connection to a machine
    "queue": "queue_timeout",  # waiting for capacity when every machine is at its hard limit
    "start": "start_timeout",  # an autostart, until the service port accepts connections
    "head": "head_timeout",  # a client's request head, from its first byte until complete
}

# `serve --edge-limit NAME=N`: each name and the edge setting it sets.
EDGE_LIMITS = {
    "head-bytes": "max_head_bytes",  # a request head: its target and header fields, in bytes
    "headers": "max_headers",  # header fields in one request head
    "connections": "max_connections",  # client connections open at once, in all
    "connections-per-ip": "max_connections_per_ip",  # client connections open at once from one address
    "certificates": "max_certificates",  # certificates issued for hostnames, kept in memory and on disk
}


class HostCheckError(Exception):
    """This host, or the settings given for it, cannot serve: one line for the user, and exit status 2."""


def data_dir(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("AERODROME_DATA_DIR") or DEFAULT_DATA_DIR)


@dataclass(frozen=True, slots=True)
class Layout:
    """The data directory's parts; each subsystem owns one."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "aerodrome.db"

    @property
    def database_url(self) -> Path:
        """The database `serve --database` was given, for the administrator's commands on this directory."""
        return self.root / "database.url"

    @property
    def secrets_key(self) -> Path:
        return self.root / "secrets.key"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def runtime(self) -> Path:
        return self.root / "runtime"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def edge(self) -> Path:
        return self.root / "edge"


def missing_requirements() -> str | None:
    """A one-line reason this host cannot run machines, or None."""
    if os.geteuid() != 0:
        return "aerodrome serve must run as root (it creates namespaces, cgroups and loop devices): use sudo"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing host tools: {', '.join(missing)}; install them with scripts/install-deps.sh"
    return None


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host.strip("[]"), int(port)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one, and return it: the daemon holds a descriptor for each
    running machine (its exit watcher's pidfd) besides each connection, so a soft limit of 1024 (systemd's
    default) would refuse starts and connections near a thousand running machines."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft
