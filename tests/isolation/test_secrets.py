"""Secrets stay secret, against a real `aerodrome serve`: a machine gets an app secret (as env), a file and a config
env var, each a unique random value, and has them; the host keeps none of them in the clear where it should not
(every byte of the data directory, /run/aerodrome and the daemon's log is searched, runc's state included), its
files are root's alone, another user of the host reads nothing, the API's errors never echo a value, and the
sealed machine record brings the values back after a stop and a restart of the daemon.

Where the values may be, and why: the config env var and the file are part of the machine's config, which the
API keeps in its database and returns on every GET of the machine, as Fly does (Fly's `env` and `files[].raw_value`
are not secrets; app secrets are); the file is also in the machine's own root filesystem while it runs, as a
regular file at its guest path in the overlay's upper layer (its disk), discarded at stop. The app secret is
nowhere in the clear, and neither is any value in runtime records, runc's state, mount points or logs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from aerodrome.runtime.runc.cgroups import MachineCgroup
from aerodrome.runtime.runc.layout import MOUNTS_ROOT
from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.isolation.search import CHUNK, Findings, search
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

APP = "secretive"
SECRET_NAME, ENV_NAME, FILE_PATH = "TOP_SECRET", "PLAIN_SETTING", "/etc/app-token"
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
HOST_PYTHON = "/usr/bin/python3"
# Run as nobody by the host's python3, stdlib only: each argument is `list:`, `read:` or `stat:` and a path; the
# answer maps each to "ok" or the errno's name, beside the ids the attempts ran with.
TRY_AS_NOBODY = """
import errno, json, os, sys
results = {}
for attempt in sys.argv[1:]:
    kind, _, path = attempt.partition(":")
    try:
        if kind == "list":
            os.listdir(path)
        elif kind == "read":
            with open(path, "rb") as f:
                f.read(1)
        else:
            os.stat(path)
        results[attempt] = "ok"
    except OSError as exc:
        results[attempt] = errno.errorcode.get(exc.errno, str(exc.errno))
print(json.dumps({"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()], "results": results}))
"""


@dataclass(frozen=True)
class Values:
    """One unique random value for each way a value reaches a machine."""

    secret: str
    env: str
    file: str

    @classmethod
    def new(cls) -> Values:
        return cls(secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(16))

    def needles(self) -> dict[str, bytes]:
        """Each value, in the clear and base64-encoded, as JSON carries bytes (a file's `raw_value`)."""
        found = {}
        for name in ("secret", "env", "file"):
            value = getattr(self, name).encode()
            found[name] = value
            found[f"{name} (base64)"] = base64.b64encode(value).rstrip(b"=")
        return found


@dataclass(frozen=True)
class Host:
    """Where one server keeps its state on this host."""

    server: Server
    machine_id: str

    @property
    def data(self) -> Path:
        return self.server.data_dir

    @property
    def runtime(self) -> Path:
        return self.data / "runtime"

    @property
    def machine_dir(self) -> Path:
        return self.runtime / "machines" / self.machine_id

    @property
    def mounts(self) -> Path:
        return mounts_of(self.server)

    @property
    def uid_base(self) -> int:
        """The host id of the machine's root, from its record."""
        return int(json.loads((self.machine_dir / "machine.json").read_bytes())["uid_base"])

    def search(self, values: Values) -> Findings:
        findings = search((self.data, MOUNTS_ROOT, self.server.log_path), values.needles())
        assert {self.server.log_path, self.machine_dir / "machine.json"} <= findings.searched
        assert findings.too_large == []
        return findings


def mounts_of(server: Server) -> Path:
    """The server's directory of mount points (the runtime's Layout names it by a digest of its root)."""
    runtime = server.data_dir / "runtime"
    return MOUNTS_ROOT / hashlib.sha256(str(runtime.resolve()).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def values() -> Values:
    return Values.new()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        # The data directory's own mode must be what stops other users, not its private temporary parent.
        os.chmod(started.data_dir.parent, 0o711)
        mounts = mounts_of(started)
        with started.client() as api:
            assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        yield started
    with contextlib.suppress(OSError):
        mounts.rmdir()  # the server's machines are gone with its app; an empty directory is all that is left


@pytest.fixture(scope="module")
def machine(server: Server, values: Values) -> str:
    """A machine with the three values, whose program prints nothing."""
    with server.client() as api:
        response = api.post(f"/v1/apps/{APP}/secrets", json={"values": {SECRET_NAME: values.secret}})
        assert response.status_code == 200, response.text
        assert values.secret not in response.text
        config = {
            "image": server.push_image("busybox"),
            "init": {"exec": ["/bin/sleep", "1000000"]},
            "env": {ENV_NAME: values.env},
            "files": [{"guest_path": FILE_PATH, "raw_value": base64.b64encode(values.file.encode()).decode()}],
        }
        machine_id = str(create_machine(api, APP, config)["id"])
        wait_for(api, APP, machine_id, "started")
        return machine_id


@pytest.fixture
def host(server: Server, machine: str) -> Host:
    return Host(server, machine)


def assert_machine_has(api: httpx.Client, machine_id: str, values: Values) -> None:
    env = machine_exec(api, APP, machine_id, "env")
    assert env["exit_code"] == 0, env
    assert f"{SECRET_NAME}={values.secret}" in env["stdout"].splitlines()
    assert f"{ENV_NAME}={values.env}" in env["stdout"].splitlines()
    assert machine_exec(api, APP, machine_id, "cat", FILE_PATH)["stdout"] == values.file


def _may_be_at(host: Host, label: str, where: str, *, running: bool) -> bool:
    """Whether the module's docstring lets the value `label` be at `where`: the config's env var and file (as
    base64, its `raw_value`) in the database, the file in the clear in the upper layer while the machine runs (at
    its guest path, and in the image of the machine's own filesystem that holds that layer)."""
    path = Path(where)
    if label in ("env", "file (base64)"):
        return path.parent == host.data and path.name in ("aerodrome.db", "aerodrome.db-wal")
    in_layer = path in (host.machine_dir / "scratch" / "upper" / FILE_PATH.lstrip("/"), host.machine_dir / "rootfs.img")
    return label == "file" and running and in_layer


def assert_nothing_in_the_clear(host: Host, values: Values, *, running: bool) -> Findings:
    findings = host.search(values)
    misplaced = {
        label: wrong
        for label, found in findings.found.items()
        if (wrong := [where for where in found if not _may_be_at(host, label, where, running=running)])
    }
    assert misplaced == {}, f"every finding: {findings.found}"
    return findings


def test_the_search_reads_every_byte_follows_no_link_and_opens_no_fifo(tmp_path: Path) -> None:
    """The search itself, on planted files: a needle across a chunk boundary is found, a link is reported by its
    target (and a needle in the target's text found), what a link points to is not read, a FIFO is not opened."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a/b").mkdir(parents=True)
    outside.mkdir()
    (root / "a/b/straddling").write_bytes(b"x" * (CHUNK - 3) + b"needle" + b"y" * 10)
    (outside / "elsewhere").write_bytes(b"needle")
    (root / "link").symlink_to(outside / "elsewhere")
    (root / "named-needle").symlink_to("/nonexistent/needle")
    os.mkfifo(root / "fifo")
    findings = search([root], {"needle": b"needle"})
    assert sorted(findings.where("needle")) == [f"{root}/a/b/straddling", f"{root}/named-needle -> /nonexistent/needle"]
    assert findings.links == {root / "link": str(outside / "elsewhere"), root / "named-needle": "/nonexistent/needle"}
    assert findings.unopened == {root / "fifo": "FIFO"} and findings.searched == {root / "a/b/straddling"}


def test_the_machine_has_its_values_and_its_record_seals_them(server: Server, host: Host, values: Values) -> None:
    with server.client() as api:
        assert_machine_has(api, host.machine_id, values)
    record = json.loads((host.machine_dir / "machine.json").read_bytes())
    assert "env" not in record["spec"] and "files" not in record["spec"]
    key = Fernet((host.runtime / "records.key").read_bytes().strip())
    sealed = json.loads(key.decrypt(record["spec"]["sealed"].encode()))
    assert sealed["env"][SECRET_NAME] == values.secret and sealed["env"][ENV_NAME] == values.env
    assert [base64.b64decode(f["data"]).decode() for f in sealed["files"]] == [values.file]


def test_no_value_is_on_the_host_in_the_clear(host: Host, values: Values) -> None:
    findings = assert_nothing_in_the_clear(host, values, running=True)
    # The search reached runc's state, saw the machine's mounted rootfs as a mount point (the guest's own tree,
    # not crossed), and met one link of the daemon's: config.json, naming the pipe runc read its config from.
    assert host.runtime / "runc" / host.machine_id / "state.json" in findings.searched
    assert host.mounts / host.machine_id / "rootfs" in findings.mount_points
    daemon_links = {
        path: target
        for path, target in findings.links.items()
        if path.is_relative_to(host.data) and not _guest_tree(host, path)
    }
    assert list(daemon_links) == [host.machine_dir / "config.json"]
    assert daemon_links[host.machine_dir / "config.json"].startswith("/proc/self/fd/")


# The trees whose modes are a guest's, not the daemon's: an image as pulled (skopeo makes its blobs 0644) and as
# unpacked, and a machine's writable layer. The directories that hold them (images/, machines/<id>/) are 0700.
def _guest_tree(host: Host, path: Path) -> bool:
    parts = path.relative_to(host.data).parts
    return (
        parts[:3] == ("images", "layout", "blobs")
        or (parts[:2] == ("images", "rootfs") and len(parts) > 3)
        or (parts[:2] == ("runtime", "machines") and len(parts) > 3 and parts[3] == "scratch")
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_data_directory_is_roots_alone(host: Host) -> None:
    data = host.data
    assert data.lstat().st_uid == 0 and _mode(data) == 0o700
    top = {path.name: _mode(path) for path in data.iterdir() if stat.S_ISREG(path.lstat().st_mode)}
    assert {"aerodrome.db", "secrets.key"} <= top.keys()
    assert top == dict.fromkeys(top, 0o600)
    for path in (host.runtime / "records.key", host.machine_dir / "machine.json", host.machine_dir / "machine.log"):
        assert _mode(path) == 0o600, path
    files_open: list[str] = []
    directories_open: list[str] = []
    for directory, dirnames, filenames in os.walk(data):
        for name in (*dirnames, *filenames):
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or _guest_tree(host, path) or not info.st_mode & 0o007:
                continue
            (directories_open if stat.S_ISDIR(info.st_mode) else files_open).append(f"{oct(_mode(path))} {path}")
    assert files_open == []
    # No directory is open to others but runc's state directory, which runc makes 0711 and which holds 0600 files
    runc_state = host.runtime / "runc" / host.machine_id
    assert directories_open == [f"0o711 {runc_state}"]
    assert _mode(runc_state / "state.json") == 0o600
    for closed in (data / "images", host.machine_dir):
        assert _mode(closed) == 0o700, closed


def test_mount_points_hold_no_files_and_let_no_other_user_through(host: Host) -> None:
    assert _mode(MOUNTS_ROOT) == 0o711 and _mode(host.mounts) == 0o711
    machine = host.mounts / host.machine_id
    assert (machine.lstat().st_uid, machine.lstat().st_gid, _mode(machine)) == (0, host.uid_base, 0o710)
    findings = search([host.mounts], {"any byte": b"\0"})  # what matters is what the walk meets
    assert findings.searched == set() and findings.links == {} and findings.unopened == {}
    assert findings.mount_points == [machine / "rootfs"]


def as_nobody(*attempts: str) -> dict[str, str]:
    if shutil.which("setpriv") is None or not Path(HOST_PYTHON).exists():
        pytest.skip(f"setpriv (util-linux) or {HOST_PYTHON} is not installed")
    argv = [*AS_NOBODY, HOST_PYTHON, "-I", "-S", "-c", TRY_AS_NOBODY, *attempts]
    answer = json.loads(subprocess.run(argv, check=True, capture_output=True, timeout=30).stdout)
    assert answer["ids"] == [NOBODY, NOBODY, NOBODY, []]
    results: dict[str, str] = answer["results"]
    return results


def test_another_user_of_the_host_reads_nothing(host: Host) -> None:
    machine_dir, mounts = host.machine_dir, host.mounts / host.machine_id
    pids = MachineCgroup(host.machine_id).pids()
    assert len(pids) >= 2  # catatonit and the program
    denied = [
        f"list:{host.data}",
        f"read:{host.data / 'aerodrome.db'}",
        f"read:{host.data / 'secrets.key'}",
        f"read:{host.runtime / 'records.key'}",
        f"read:{machine_dir / 'machine.json'}",
        f"read:{machine_dir / 'machine.log'}",
        f"read:{machine_dir / 'scratch' / 'upper' / FILE_PATH.lstrip('/')}",
        f"list:{host.mounts}",
        f"list:{mounts}",
        f"stat:{mounts / 'rootfs'}",
        f"read:{mounts / 'rootfs' / FILE_PATH.lstrip('/')}",
        f"read:{mounts / 'rootfs' / 'etc/passwd'}",
        *(f"read:/proc/{pid}/environ" for pid in pids),
    ]
    # The controls: nobody reaches the data directory and the machine's mount directory, and reads what /proc
    # shows everyone, so each refusal above is the data directory's, the machine directory's or the process's own.
    allowed = [f"stat:{host.data}", f"stat:{mounts}", f"read:/proc/{pids[0]}/cmdline"]
    results = as_nobody(*denied, *allowed)
    assert results == {**dict.fromkeys(denied, "EACCES"), **dict.fromkeys(allowed, "ok")}


def test_the_api_never_echoes_a_value_it_refuses_nor_shows_a_secret_unasked(
    server: Server, host: Host, values: Values
) -> None:
    refused = [secrets.token_hex(16) for _ in range(5)]
    with server.client() as api:
        attempts = [
            api.post(f"/v1/apps/{APP}/secrets", json={"values": {"1-not-a-name": refused[0]}}),
            api.post(f"/v1/apps/{APP}/secrets/not-a-name", json={"value": refused[1]}),
            api.post(f"/v1/apps/{APP}/secrets", json={"values": {"LISTED": [refused[2]]}}),
            api.post(f"/v1/apps/{APP}/secrets", json={"values": refused[3]}),
            api.post(f"/v1/apps/{APP}/secrets", content=f'{{"values": {{"CUT": "{refused[4]}"'.encode()),
        ]
        for response, value in zip(attempts, refused, strict=True):
            assert response.status_code == 400, response.text
            assert response.json()["error"] and value not in response.text
        for path in (
            f"/v1/apps/{APP}/secrets",
            f"/v1/apps/{APP}/secrets/{SECRET_NAME}",
            f"/v1/apps/{APP}/machines",
            f"/v1/apps/{APP}/machines/{host.machine_id}",
            f"/v1/apps/{APP}/machines/{host.machine_id}/events",
        ):
            response = api.get(path)
            assert response.status_code == 200, response.text
            assert values.secret not in response.text, path
        shown = api.get(f"/v1/apps/{APP}/secrets/{SECRET_NAME}", params={"show_secrets": "true"})
        assert shown.json()["value"] == values.secret  # only when asked, as Fly's API does
    log = server.log_path.read_bytes()
    assert [value for value in refused if value.encode() in log] == []


def test_a_stop_and_a_daemon_restart_bring_the_sealed_values_back(server: Server, host: Host, values: Values) -> None:
    with server.client() as api:
        assert api.post(f"/v1/apps/{APP}/machines/{host.machine_id}/stop").status_code == 200
        wait_for(api, APP, host.machine_id, "stopped")
    assert_nothing_in_the_clear(host, values, running=False)  # the upper layer, and its copy of the file, are gone
    machine = host.mounts / host.machine_id
    assert (_mode(machine), _mode(machine / "rootfs")) == (0o710, 0o711)  # the mount point, now bare
    server.stop()
    server.start()  # the runtime reloads the machine's record: its env and files come from the sealed part
    with server.client() as api:
        assert api.post(f"/v1/apps/{APP}/machines/{host.machine_id}/start").status_code == 200
        wait_for(api, APP, host.machine_id, "started")
        assert_machine_has(api, host.machine_id, values)
    server.stop()  # machines keep running through a restart of the daemon; exec takes the env from the record
    server.start()
    with server.client() as api:
        assert api.get(f"/v1/apps/{APP}/machines/{host.machine_id}").json()["state"] == "started"
        assert_machine_has(api, host.machine_id, values)
    assert_nothing_in_the_clear(host, values, running=True)
