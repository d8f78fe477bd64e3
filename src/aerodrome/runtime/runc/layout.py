"""Where a machine's pieces live on the host, and the small records persisted beside them.

<root>/runc/                      runc's own state (`runc --root`), apart from any other runc user
<root>/orgs.json                  the size of organisation subnets, and each organisation's slot of the pool
<root>/scratch-pool/<size>-*.img  formatted writable-layer images, ready for machines' first starts
<root>/records.key                the key that seals each record's env and files (secrets among them), 0600
<root>/quarantine/<id>/           records that did not parse, set aside as `<name>.corrupt-<UTC time>` (kept
                                  through the machine's destroy, for whoever wants to see what was lost)
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
    machine.log                   stdout and stderr of the machine; what was read is punched out (output.py)

/run/aerodrome/<digest of root>/<id>/   mount points only, on a path a machine's root may traverse (runc
    rootfs/                       mounts them from inside the machine's user namespace, where the data
    volumes/<n>/                  directory, 0700, is closed): the overlay, and each volume idmapped while
                                  runc starts the machine. The parents are 0711; <id> is 0710 with the
                                  machine's root as its group, so no other user of the host reaches the guest
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from aerodrome.core import GuestFile, InvalidArgumentError, SandboxSpec, VolumeMount, runs_from_json, runs_to_json

log = logging.getLogger(__name__)


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
    def fly(self) -> Path:
        """The machine's /.fly: a directory of the host, bind-mounted read-only, holding its API socket."""
        return self.mounts / "fly"

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

    @property
    def quarantine(self) -> Path:
        """Where its records that did not read are set aside (`Layout.quarantine`)."""
        return self.dir.parent.parent / "quarantine"


class Layout:
    """The runtime's directory tree under one root."""

    def __init__(self, root: Path, mounts: Path | None = None) -> None:
        self.root = root
        self.machines = root / "machines"
        self.runc_root = root / "runc"
        self.orgs = root / "orgs.json"
        self.records_key = root / "records.key"
        self.quarantine = root / "quarantine"
        self.mounts = mounts or mounts_dir(root)
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


def mounts_dir(root: Path) -> Path:
    """Where the runtime under `root` keeps its machines' mount points (made by Layout, not here)."""
    return MOUNTS_ROOT / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


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


def write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write a record whole: written beside it, then renamed over it, so that a crash of the daemon leaves the old
    file or the new one. `durable` adds what a crash of the host needs: the file flushed to the disk before the
    rename and the directory after it (without them ext4 may keep the rename and lose the data it names, leaving
    an empty record; a record that does not read is set aside, never fatal: `set_aside`).

    The two fsyncs cost about 7 ms a record on this project's host (against 0.05-1 ms without), which on the
    event loop took creates (bench/api/run.py, skip_launch) from 320-390/s to 120-145/s: so a create writes its
    record durably on a worker thread, where concurrent creates share the journal's commits (370-390/s). Records
    that only
    guard a daemon crash are written with `durable=False`: a start's pid (after a host crash nothing runs, and
    recovery asks runc and the kernel) and an exit once reported (the control plane has committed it; lost, it
    is reported again, which changes nothing). A create's or update's spec, an exit not yet reported, the
    organisations' subnets and the records key are durable.
    """
    try:
        encoded = orjson.dumps(data)  # several times faster than the stdlib; a create writes three records
    except TypeError:  # integers past 64 bits
        encoded = json.dumps(data).encode()
    replace_file(path, encoded, durable=durable)


def replace_file(path: Path, content: bytes, *, durable: bool = True, mode: int = 0o600) -> None:
    """Replace `path` with `content`, all or nothing (see `write_json`)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (a new, renamed or removed name in it) to the disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it does not exist; a ValueError when it does not parse."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


#: What reading a damaged record raises: JSON that does not parse (or is not UTF-8), values of the wrong type or
#: shape, a sealed part that does not decrypt with this host's key (or is not base64).
RECORD_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, AttributeError, InvalidToken)


def describe_damage(error: Exception) -> str:
    """A short reason for a record that did not read, for the log."""
    if isinstance(error, InvalidToken):
        return "its sealed part does not decrypt with records.key"
    if isinstance(error, binascii.Error):
        return f"its sealed part is not base64: {error}"
    if isinstance(error, (json.JSONDecodeError, orjson.JSONDecodeError, UnicodeDecodeError)):
        return f"not JSON: {error}"
    return f"a value is missing or of the wrong type: {type(error).__name__}: {error}"


def set_aside(quarantine: Path, owner: str, path: Path, error: Exception, *, then: str) -> Path | None:
    """Move a record that did not read out of the way, into `quarantine/<owner>/<name>.corrupt-<UTC time>`, and
    log one line that names it, why, and what `then` happens; returns where it went (None if it vanished)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = quarantine / owner / f"{path.name}.corrupt-{stamp}"
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    fsync_dir(path.parent)
    fsync_dir(target.parent)
    who = "host" if owner == "host" else f"machine {owner}"
    log.error("%s: %s is unreadable (%s); set aside as %s; %s", who, path, describe_damage(error), target, then)
    return target


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
    fsync_dir(path.parent)
    return Fernet(key)


def spec_to_json(spec: SandboxSpec, key: Fernet) -> dict[str, Any]:
    """The record of a spec; its env and files, where secrets go, are sealed with `key`."""
    # Field by field: `asdict` deep-copies every value, which costs a create more than writing the record.
    data = {name: getattr(spec, name) for name in _SPEC_FIELDS if name not in ("env", "files", "containers")}
    private = {
        **({"containers": runs_to_json(spec.containers)} if spec.containers else {}),
        "env": spec.env,
        "files": [
            {"guest_path": f.guest_path, "data": base64.b64encode(f.data).decode(), "mode": f.mode} for f in spec.files
        ],
    }
    data["sealed"] = key.encrypt(orjson.dumps(private)).decode()
    data["mounts"] = [asdict(m) for m in spec.mounts]
    return data


def spec_from_json(data: dict[str, Any], key: Fernet) -> SandboxSpec:
    """The spec of a record, sealed or (as older versions wrote them) in the clear; one of RECORD_ERRORS when the
    record is damaged (a value of the wrong type, a sealed part that does not decrypt with `key`)."""
    data = dict(data)
    if "sealed" in data:
        data.update(orjson.loads(key.decrypt(data.pop("sealed").encode())))
    _check_types(data)
    return SandboxSpec(
        **{
            **data,
            "argv": tuple(data["argv"]),
            "files": tuple(
                GuestFile(f["guest_path"], base64.b64decode(f["data"]), f["mode"]) for f in data.get("files", ())
            ),
            "mounts": tuple(VolumeMount(**m) for m in data.get("mounts", ())),
            "containers": runs_from_json(data.get("containers", [])),
            "scratch_volumes": tuple(str(name) for name in data.get("scratch_volumes", ())),
        }
    )


_SCALARS = {f.name: {"str": str, "int": int}[str(f.type)] for f in fields(SandboxSpec) if str(f.type) in ("str", "int")}


def _check_types(data: dict[str, Any]) -> None:
    """Refuse a record's spec whose values are not of their field's type (a SandboxSpec checks none itself)."""
    for name, kind in _SCALARS.items():
        if name in data and type(data[name]) is not kind:
            raise TypeError(f"spec.{name} is not a {kind.__name__}")
    env, argv = data.get("env", {}), data.get("argv")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise TypeError("spec.env is not a map of strings")
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        raise TypeError("spec.argv is not a list of strings")
