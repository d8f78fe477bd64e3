"""Where a machine's pieces live on the host, and the small records persisted beside them.

<root>/runc/                      runc's own state (`runc --root`), apart from any other runc user
<root>/orgs.json                  the size of organisation subnets, and each organisation's slot of the pool
<root>/scratch-pool/<size>-*.img  formatted writable-layer images, ready for machines' first starts
<root>/records.key                the key that seals each record's env and files (secrets among them), 0600
<root>/machines/<id>/
    machine.json                  the SandboxSpec (env and files sealed), image rootfs, network allocation and
                                  user-id range (create's one record; older versions kept the allocation in
                                  network.json beside it, and the env in the clear)
    config.json                   names the pipe through which each start hands runc its OCI config
    rootfs.img                    a sparse ext4 image the size of the machine's rootfs, mounted on scratch/
    scratch/upper/ scratch/work/  while it runs: the writable layer, bounded by the image and emptied on stop
    holder                        pid and start time of the process holding a start's namespaces, while it lives
    network-ready                 present once a run's network was up and its program released
    started.json                  the running instance: host pid of its init, start time
    exit.json                     the last exit, and whether it was reported
    stop-requested                present while a stop is in progress
    machine.log, machine.log.1    stdout and stderr of the machine, capped

/run/aerodrome/<digest of root>/<id>/   mount points only, on a path a machine's root may traverse (runc
    rootfs/                       mounts them from inside the machine's user namespace, where the data
    volumes/<n>/                  directory, 0700, is closed): the overlay, and each volume idmapped while
                                  runc starts the machine. The parents are 0711; <id> is 0710 with the
                                  machine's root as its group, so no other user of the host reaches the guest
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet

from aerodrome.core import GuestFile, InvalidArgumentError, SandboxSpec, VolumeMount


@dataclass(frozen=True, slots=True)
class MachinePaths:
    """The files of one machine."""

    dir: Path
    mounts: Path

    @property
    def record(self) -> Path:
        return self.dir / "machine.json"

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def rootfs(self) -> Path:
        return self.mounts / "rootfs"

    @property
    def scratch_image(self) -> Path:
        return self.dir / "rootfs.img"

    @property
    def scratch(self) -> Path:
        return self.dir / "scratch"

    @property
    def upper(self) -> Path:
        return self.scratch / "upper"

    @property
    def work(self) -> Path:
        return self.scratch / "work"

    @property
    def volumes(self) -> Path:
        return self.mounts / "volumes"

    @property
    def holder(self) -> Path:
        return self.dir / "holder"

    @property
    def network_ready(self) -> Path:
        return self.dir / "network-ready"

    @property
    def started(self) -> Path:
        return self.dir / "started.json"

    @property
    def last_exit(self) -> Path:
        return self.dir / "exit.json"

    @property
    def stop_requested(self) -> Path:
        return self.dir / "stop-requested"

    @property
    def pid_file(self) -> Path:
        return self.dir / "init.pid"

    @property
    def runc_log(self) -> Path:
        return self.dir / "runc.log"

    @property
    def log(self) -> Path:
        return self.dir / "machine.log"


class Layout:
    """The runtime's directory tree under one root."""

    def __init__(self, root: Path, mounts: Path | None = None) -> None:
        self.root = root
        self.machines = root / "machines"
        self.runc_root = root / "runc"
        self.orgs = root / "orgs.json"
        self.records_key = root / "records.key"
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        self.mounts = mounts or MOUNTS_ROOT / digest
        for path in (self.machines, self.runc_root):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        traversable_dirs(self.mounts)

    def machine(self, machine_id: str) -> MachinePaths:
        if not machine_id or not machine_id.replace("-", "").replace("_", "").isalnum():
            raise InvalidArgumentError(f"invalid machine id {machine_id!r}")
        return MachinePaths(self.machines / machine_id, self.mounts / machine_id)

    def machine_ids(self) -> list[str]:
        return sorted(p.name for p in self.machines.iterdir() if p.is_dir())


MOUNTS_ROOT = Path("/run/aerodrome")


def traversable_dirs(path: Path) -> None:
    """Make `path` and its missing parents 0711: searchable by a machine's root, listable by no one else."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        directory.mkdir(mode=0o711, exist_ok=True)
        os.chmod(directory, 0o711)  # whatever the umask


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a daemon crash leaves the old file or the new one, never half of one.

    No fsync: the records guard against the daemon dying, and a host crash loses the machines anyway.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        encoded = orjson.dumps(data)  # several times faster than the stdlib; a create writes three records
    except TypeError:  # integers past 64 bits
        encoded = json.dumps(data).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encoded)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


_SPEC_FIELDS = tuple(f.name for f in fields(SandboxSpec))


def load_key(path: Path) -> Fernet:
    """The key that seals records, made on first use, readable by root only."""
    try:
        return Fernet(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())
    os.link(tmp, path)  # a second process racing here fails, and reads the first one's key
    tmp.unlink()
    return Fernet(key)


def spec_to_json(spec: SandboxSpec, key: Fernet) -> dict[str, Any]:
    """The record of a spec; its env and files, where secrets go, are sealed with `key`."""
    # Field by field: `asdict` deep-copies every value, which costs a create more than writing the record.
    data = {name: getattr(spec, name) for name in _SPEC_FIELDS if name not in ("env", "files")}
    private = {
        "env": spec.env,
        "files": [
            {"guest_path": f.guest_path, "data": base64.b64encode(f.data).decode(), "mode": f.mode} for f in spec.files
        ],
    }
    data["sealed"] = key.encrypt(orjson.dumps(private)).decode()
    data["mounts"] = [asdict(m) for m in spec.mounts]
    return data


def spec_from_json(data: dict[str, Any], key: Fernet) -> SandboxSpec:
    """The spec of a record, sealed or (as older versions wrote them) in the clear."""
    data = dict(data)
    if "sealed" in data:
        data.update(orjson.loads(key.decrypt(data.pop("sealed").encode())))
    return SandboxSpec(
        **{
            **data,
            "argv": tuple(data["argv"]),
            "files": tuple(
                GuestFile(f["guest_path"], base64.b64decode(f["data"]), f["mode"]) for f in data.get("files", ())
            ),
            "mounts": tuple(VolumeMount(**m) for m in data.get("mounts", ())),
        }
    )
