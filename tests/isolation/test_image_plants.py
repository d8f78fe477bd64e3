"""A hostile image plants symlinks to host files, and FIFOs, where the daemon reads or writes a machine's files.

Against a real `aerodrome serve`: such an image is refused at create with a 400 naming the planted path and what
is there; the daemon never follows the link nor opens the FIFO, the host files stay as they were, and the API
answers throughout (a thread polls it every 50 ms).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_machine, machine_exec, wait_for
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

APP = "plants"
POLL_INTERVAL = 0.05
# A liveness bound, not a figure: an event loop blocked on a FIFO misses it for as long as no one writes to it.
ANSWER_WITHIN = 1.0
PLANTED_UID = 4242
LINK, FIFO = "a symbolic link", "a FIFO"


@dataclass(frozen=True)
class HostFiles:
    """Host files and a directory a hostile image points at; each must be exactly as it was after every test."""

    root: Path

    @property
    def passwd(self) -> Path:
        return self.root / "passwd"

    @property
    def group(self) -> Path:
        return self.root / "group"

    @property
    def fifo(self) -> Path:
        return self.root / "fifo"

    @property
    def directory(self) -> Path:
        return self.root / "dir"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    def make(self) -> None:
        self.passwd.write_text(f"app:x:{PLANTED_UID}:{PLANTED_UID}::/:/bin/sh\n")
        self.group.write_text(f"app:x:{PLANTED_UID}:\n")
        os.mkfifo(self.fifo)
        self.directory.mkdir()
        (self.directory / "host-marker").write_text("the host's own\n")
        self.hosts.write_text("127.0.0.1 the-host-s-own-hosts-file\n")

    def snapshot(self) -> dict[str, str]:
        """Every entry with its kind, mode, mtime and (for a file) content: a FIFO is never opened here either."""
        found: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            info = path.lstat()
            content = path.read_text() if path.is_file() else ""
            found[str(path.relative_to(self.root))] = f"{oct(info.st_mode)} {info.st_mtime_ns} {content}"
        return found


@dataclass
class Liveness:
    """Polls GET /health and one API call every 50 ms; records every poll not answered (200) within a second."""

    server: Server
    late: list[str] = field(default_factory=list)
    answered: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        with httpx.Client(base_url=self.server.api_url, headers=headers, timeout=ANSWER_WITHIN) as client:
            while not self.stopped.wait(POLL_INTERVAL):
                for path in ("/health", f"/v1/apps/{APP}/machines"):
                    self.poll(client, path)

    def poll(self, client: httpx.Client, path: str) -> None:
        started = time.monotonic()
        try:
            status = client.get(path).status_code
        except httpx.HTTPError as exc:
            self.late.append(f"GET {path}: {type(exc).__name__} after {time.monotonic() - started:.2f}s")
            return
        elapsed = time.monotonic() - started
        if status != 200 or elapsed > ANSWER_WITHIN:
            self.late.append(f"GET {path}: {status} after {elapsed:.2f}s")
        else:
            self.answered += 1


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        with started.client() as api:
            assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).is_success
        yield started


@pytest.fixture(scope="module")
def host() -> Iterator[HostFiles]:
    files = HostFiles(Path(tempfile.mkdtemp(prefix="aerodrome-plant-")))
    try:
        files.make()
        yield files
    finally:
        shutil.rmtree(files.root, ignore_errors=True)


@pytest.fixture
def api(server: Server, host: HostFiles) -> Iterator[httpx.Client]:
    """A client, while the daemon's liveness is watched; afterwards the host files must be untouched."""
    before = host.snapshot()
    liveness = Liveness(server)
    thread = threading.Thread(target=liveness.run, name="liveness", daemon=True)
    thread.start()
    try:
        with server.client() as client:
            client.timeout = httpx.Timeout(60)  # a create stuck on a FIFO fails the test rather than hang it
            yield client
    finally:
        liveness.stopped.set()
        thread.join()
    assert liveness.late == [], f"the daemon did not answer within {ANSWER_WITHIN}s: {liveness.late[:5]}"
    assert liveness.answered > 0
    assert host.snapshot() == before


def _files(*guest_paths: str) -> list[dict[str, str]]:
    return [{"guest_path": path, "raw_value": base64.b64encode(b"from the API\n").decode()} for path in guest_paths]


@dataclass(frozen=True)
class Plant:
    """An image built with `options` (a symlink's `{name}` is a HostFiles path), and files[] in the machine's
    config; create must answer 400, saying `planted` in the image is `kind`."""

    options: dict[str, Any]
    planted: str
    kind: str
    files: tuple[str, ...] = ()


PLANTS = {
    "passwd-links-to-a-host-file": Plant({"symlinks": {"/etc/passwd": "{passwd}"}, "user": "app"}, "/etc/passwd", LINK),
    "passwd-links-to-a-host-fifo": Plant({"symlinks": {"/etc/passwd": "{fifo}"}, "user": "app"}, "/etc/passwd", LINK),
    "passwd-is-a-fifo": Plant({"fifos": ["/etc/passwd"], "user": "app"}, "/etc/passwd", FIFO),
    "group-links-to-a-host-file": Plant({"symlinks": {"/etc/group": "{group}"}, "user": "0:app"}, "/etc/group", LINK),
    "group-is-a-fifo": Plant({"fifos": ["/etc/group"], "user": "0:app"}, "/etc/group", FIFO),
    "workdir-links-to-a-host-dir": Plant({"symlinks": {"/work": "{directory}"}, "working_dir": "/work"}, "/work", LINK),
    "workdir-parent-links-to-a-host-dir": Plant(
        {"symlinks": {"/srv": "{directory}"}, "working_dir": "/srv/app"}, "/srv", LINK
    ),
    "workdir-is-a-fifo": Plant({"fifos": ["/work"], "working_dir": "/work"}, "/work", FIFO),
    "files-parent-links-to-a-host-dir": Plant({"symlinks": {"/data": "{directory}"}}, "/data", LINK, ("/data/x",)),
    "files-parent-is-a-fifo": Plant({"fifos": ["/data"]}, "/data", FIFO, ("/data/x",)),
    "files-target-is-a-fifo": Plant({"fifos": ["/data/x"]}, "/data/x", FIFO, ("/data/x",)),
    "hosts-links-to-a-host-file": Plant({"symlinks": {"/etc/hosts": "{hosts}"}}, "/etc/hosts", LINK),
    "hostname-is-a-fifo": Plant({"fifos": ["/etc/hostname"]}, "/etc/hostname", FIFO),
}


@pytest.mark.parametrize("case", list(PLANTS))
def test_a_planted_image_is_refused_at_create(server: Server, host: HostFiles, api: httpx.Client, case: str) -> None:
    plant = PLANTS[case]
    targets = {name: str(getattr(host, name)) for name in ("passwd", "group", "fifo", "directory", "hosts")}
    symlinks = {path: target.format(**targets) for path, target in plant.options.get("symlinks", {}).items()}
    image = server.push_image(f"plant-{case}", **{**plant.options, "symlinks": symlinks})
    config = {"image": image, "files": _files(*plant.files)}
    response = api.post(f"/v1/apps/{APP}/machines", json={"config": config, "region": "iad"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"{plant.planted} in the image is {plant.kind}" in error
    assert str(PLANTED_UID) not in error and str(host.root) not in error  # nothing of what a link points to
    assert [m for m in api.get(f"/v1/apps/{APP}/machines").json() if m["config"]["image"] == image] == []


def test_a_real_passwd_still_names_the_user(server: Server, api: httpx.Client) -> None:
    """The control for the cases above: from a regular /etc/passwd in the image, `User: app` is honoured."""
    passwd = f"root:x:0:0::/:/bin/sh\napp:x:{PLANTED_UID}:{PLANTED_UID}::/:/bin/sh\n".encode()
    image = server.push_image("plant-control", user="app", files={"/etc/passwd": passwd})
    machine = create_machine(api, APP, {"image": image, "files": _files("/etc/app/conf")})
    try:
        wait_for(api, APP, machine["id"], "started")
        assert machine_exec(api, APP, machine["id"], "id", "-u")["stdout"].strip() == str(PLANTED_UID)
        # The directory made for a file is the machine's and open to its users, whatever the daemon's umask.
        assert machine_exec(api, APP, machine["id"], "cat", "/etc/app/conf")["stdout"] == "from the API\n"
    finally:
        api.delete(f"/v1/apps/{APP}/machines/{machine['id']}", params={"force": "true"})
