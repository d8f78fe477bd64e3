"""The embedded registry as hostile clients and hostile registries meet it, against a real `aerodrome serve` and real
skopeo: nothing without a token, each organisation's repositories its own (through the registry and through
machine create, by tag and by digest), the shared namespace readable by all and written by the operator alone,
image references only to allowed registries, and a registry's garbage never echoed."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.images import build_busybox_layout
from tests.support.registry import free_loopback_port
from tests.support.server import Server, running_server

MARKER = "HOSTILE-MARKER-7f3a"


class HostileRegistry:
    """A loopback 'registry' that answers every request with garbage carrying MARKER, in one of several shapes."""

    MODES = ("json-garbage", "not-found-page", "server-error", "raw-bytes", "bad-challenge")

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.mode = self.MODES[0]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                client.settimeout(5)
                try:
                    client.recv(65536)
                    client.sendall(self._answer())
                except OSError:
                    pass

    def _answer(self) -> bytes:
        body = f'{{"errors": [{{"code": "{MARKER}", "message": "{MARKER} \\u0000 <script>"}}]}} {MARKER}'.encode()
        status, extra = {
            "json-garbage": ("200 OK", ""),
            "not-found-page": ("404 Not Found", ""),
            "server-error": ("500 Internal Server Error", ""),
            # a realm on a closed loopback port: nothing leaves the host
            "bad-challenge": ("401 Unauthorized", f'WWW-Authenticate: Bearer realm="http://127.0.0.1:1/{MARKER}"\r\n'),
            "raw-bytes": ("", ""),
        }[self.mode]
        if not status:
            return f"{MARKER} not http at all\r\n\r\n".encode() * 4
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n"
        return head.encode() + b"Connection: close\r\n\r\n" + body

    def close(self) -> None:
        self.sock.close()


@dataclass
class Org:
    slug: str
    token: str
    app: str


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="module")
def server(hostile: HostileRegistry) -> Iterator[Server]:
    with running_server("--allow-registry", hostile.host) as started:
        started.push_image("busybox")
        yield started
        log = started.log_path.read_text()
        assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


@pytest.fixture(scope="module")
def orgs(server: Server) -> Iterator[tuple[Org, Org]]:
    """Organisation A (`personal`, the server's token) and B (a second one), each with an app."""
    suffix = uuid.uuid4().hex[:6]
    server.cli("orgs", "create", f"regb-{suffix}")
    b_token = server.cli("tokens", "create", "--org", f"regb-{suffix}").strip()
    a, b = Org("personal", server.token, f"reg-a-{suffix}"), Org(f"regb-{suffix}", b_token, f"reg-b-{suffix}")
    for org in (a, b):
        with server.client(org.token) as api:
            assert api.post("/v1/apps", json={"app_name": org.app, "org_slug": org.slug}).status_code == 201
    yield a, b
    with server.client(b.token) as api:
        api.delete(f"/v1/apps/{b.app}")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox image as an OCI layout (skopeo's `oci:` source) for pushes."""
    return asyncio.run(build_busybox_layout(tmp_path_factory.mktemp("image")))


@pytest.fixture(scope="module")
def private_layout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Another image, of a digest no other repository holds."""
    files = {"/secret": uuid.uuid4().hex.encode()}
    return asyncio.run(build_busybox_layout(tmp_path_factory.mktemp("private"), files=files))


def skopeo(*argv: str, creds: str | None = None, authfile: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = ["skopeo", *argv[:1], "--tls-verify=false" if argv[0] != "copy" else "--dest-tls-verify=false"]
    if argv[0] == "copy":
        command.append("--src-tls-verify=false")
    if creds is not None:
        command.append(f"--{'dest-' if argv[0] == 'copy' else ''}creds={creds}")
    if authfile is not None:
        command.append(f"--authfile={authfile}")
    return subprocess.run([*command, *argv[1:]], capture_output=True, text=True, timeout=120)


def push(server: Server, layout: str, repository: str, creds: str) -> subprocess.CompletedProcess[str]:
    return skopeo("copy", layout, f"docker://{server.registry}/{repository}", creds=creds)


def inspect(server: Server, reference: str, creds: str | None) -> subprocess.CompletedProcess[str]:
    return skopeo("inspect", "--raw", f"docker://{server.registry}/{reference}", creds=creds)


def digest_of(server: Server, reference: str, creds: str) -> str:
    import hashlib

    manifest = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"--creds={creds}",
            f"docker://{server.registry}/{reference}",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_nothing_without_a_token(server: Server, layout: str) -> None:
    assert inspect(server, "library/busybox:latest", None).returncode != 0
    anonymous = subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", layout, f"docker://{server.registry}/library/anon:v1"],
        capture_output=True,
        timeout=60,
    )
    assert anonymous.returncode != 0
    direct = httpx.get(f"http://{server.registry}/v2/library/busybox/manifests/latest")
    assert direct.status_code == 401
    assert f"http://127.0.0.1:{server.api_port}/v2/token" in direct.headers["www-authenticate"]
    realm = f"{server.api_url}/v2/token"
    for auth in (None, ("x", "fm2_not-a-token"), ("x", "")):
        answer = httpx.get(realm, params={"scope": "repository:library/busybox:pull"}, auth=auth)
        assert answer.status_code == 401 and "error" in answer.json(), answer.text
    forged = httpx.get(
        f"http://{server.registry}/v2/library/busybox/manifests/latest",
        headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJhY2Nlc3MiOltdfQ."},
    )
    assert forged.status_code == 401


def test_login_with_an_organisation_token(server: Server, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    good = skopeo("login", "-u", "anyone", "-p", server.token, server.registry, authfile=authfile)
    assert good.returncode == 0, good.stderr
    assert server.registry in json.loads(authfile.read_text())["auths"]
    pulled = skopeo("inspect", "--raw", f"docker://{server.registry}/library/busybox:latest", authfile=authfile)
    assert pulled.returncode == 0, pulled.stderr
    bad = skopeo("login", "-u", "anyone", "-p", "fm2_wrong", server.registry, authfile=tmp_path / "bad.json")
    assert bad.returncode != 0
    secret = server.operator_credentials.split(":", 1)[1]
    operator = skopeo("login", "-u", "operator", "-p", secret, server.registry, authfile=tmp_path / "operator.json")
    assert operator.returncode == 0, operator.stderr
    bearer = httpx.get(f"{server.api_url}/v2/token", headers={"Authorization": f"Bearer {server.token}"})
    assert bearer.status_code == 200 and bearer.json()["token"] == bearer.json()["access_token"]


def test_shared_namespace_is_read_by_all_and_written_by_the_operator(
    server: Server, orgs: tuple[Org, Org], layout: str
) -> None:
    for org in orgs:
        assert inspect(server, "library/busybox:latest", f"x:{org.token}").returncode == 0
        assert push(server, layout, f"library/from-{org.slug}:v1", f"x:{org.token}").returncode != 0
        assert push(server, layout, "flyio/mcp:hijacked", f"x:{org.token}").returncode != 0
    assert push(server, layout, "flyio/shared-test:v1", server.operator_credentials).returncode == 0
    _, b = orgs
    with server.client(b.token) as api:
        machine = api.post(
            f"/v1/apps/{b.app}/machines", json={"config": {"image": server.image("busybox")}, "skip_launch": True}
        )
        assert machine.status_code == 200, machine.text
        api.delete(f"/v1/apps/{b.app}/machines/{machine.json()['id']}", params={"force": "true"})


def test_an_organisations_repositories_are_its_own(server: Server, orgs: tuple[Org, Org], layout: str) -> None:
    a, b = orgs
    assert push(server, layout, f"{b.app}/web:v1", f"x:{b.token}").returncode == 0
    assert push(server, layout, f"{b.slug}/tools:v1", f"x:{b.token}").returncode == 0
    digest = digest_of(server, f"{b.app}/web:v1", f"x:{b.token}")
    # A reaches none of it: by tag, by digest, to push over it, to delete it
    for reference in (f"{b.app}/web:v1", f"{b.app}/web@{digest}", f"{b.slug}/tools:v1"):
        assert inspect(server, reference, f"x:{a.token}").returncode != 0, reference
    assert push(server, layout, f"{b.app}/web:v1", f"x:{a.token}").returncode != 0
    assert push(server, layout, f"{b.app}/new:v1", f"x:{a.token}").returncode != 0
    refused = skopeo("delete", f"docker://{server.registry}/{b.app}/web@{digest}", creds=f"x:{a.token}")
    assert refused.returncode != 0
    assert inspect(server, f"{b.app}/web:v1", f"x:{b.token}").returncode == 0  # still there
    # A's own app and slug are A's; a namespace nobody owns is nobody's
    assert push(server, layout, f"{a.app}:v1", f"x:{a.token}").returncode == 0
    assert push(server, layout, f"{a.slug}/tools:v1", f"x:{a.token}").returncode == 0
    assert push(server, layout, f"unowned-{uuid.uuid4().hex[:6]}/x:v1", f"x:{a.token}").returncode != 0
    # B may delete its own
    assert push(server, layout, f"{b.app}/gone:v1", f"x:{b.token}").returncode == 0
    gone = digest_of(server, f"{b.app}/gone:v1", f"x:{b.token}")
    deleted = skopeo("delete", f"docker://{server.registry}/{b.app}/gone@{gone}", creds=f"x:{b.token}")
    assert deleted.returncode == 0, deleted.stderr


def test_machine_create_applies_the_same_policy(server: Server, orgs: tuple[Org, Org], private_layout: str) -> None:
    a, b = orgs
    assert push(server, private_layout, f"{b.app}/private:v1", f"x:{b.token}").returncode == 0
    digest = digest_of(server, f"{b.app}/private:v1", f"x:{b.token}")
    with server.client(b.token) as api:  # B's machine: the image is now unpacked on this host
        made = api.post(
            f"/v1/apps/{b.app}/machines",
            json={"config": {"image": f"{server.registry}/{b.app}/private:v1"}, "skip_launch": True},
        )
        assert made.status_code == 200, made.text
        assert made.json()["image_ref"]["digest"] == digest
    with server.client(a.token) as api:
        for image in (
            f"{server.registry}/{b.app}/private:v1",
            f"{server.registry}/{b.app}/private@{digest}",
            f"{server.registry}/{b.app}/private:v1@{digest}",
            f"localhost:{server.registry_port}/{b.app}/private:v1",  # another name of the same registry
            f"{server.registry}/{a.app}/anything@{digest}",  # A's own name over B's digest
            f"{server.registry}/{a.app}@{digest}",
        ):
            refused = api.post(f"/v1/apps/{a.app}/machines", json={"config": {"image": image}, "skip_launch": True})
            assert refused.status_code == 404, (image, refused.text)
            assert "error" in refused.json()
        allowed = api.post(
            f"/v1/apps/{a.app}/machines", json={"config": {"image": server.image("busybox")}, "skip_launch": True}
        )
        assert allowed.status_code == 200, allowed.text
        api.delete(f"/v1/apps/{a.app}/machines/{allowed.json()['id']}", params={"force": "true"})


def test_image_references_reach_only_allowed_registries(server: Server, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    closed = free_loopback_port()
    with server.client(a.token) as api:
        for image in (
            f"127.0.0.2:{closed}/x:v1",
            f"localhost:{closed}/x:v1",
            f"127.0.0.1:{closed}/x@sha256:{'a' * 64}",
        ):
            refused = api.post(f"/v1/apps/{a.app}/machines", json={"config": {"image": image}})
            assert refused.status_code == 400, (image, refused.text)
            assert "--allow-registry" in refused.json()["error"]


def test_a_hostile_registry_is_never_echoed(server: Server, orgs: tuple[Org, Org], hostile: HostileRegistry) -> None:
    a, _ = orgs
    with server.client(a.token) as api:
        for mode in HostileRegistry.MODES:
            hostile.mode = mode
            for image in (f"{hostile.host}/evil:latest", f"{hostile.host}/evil@sha256:{'b' * 64}"):
                answer = api.post(f"/v1/apps/{a.app}/machines", json={"config": {"image": image}})
                assert 400 <= answer.status_code < 600 and answer.status_code != 500, (mode, answer.text)
                assert MARKER not in answer.text and MARKER.lower() not in answer.text.lower(), (mode, answer.text)
                assert hostile.host in answer.json()["error"], answer.text


def test_bad_token_requests_are_4xx(server: Server) -> None:
    realm = f"{server.api_url}/v2/token"
    auth = ("x", server.token)
    for params in (
        {"scope": "repository:UPPER/case:pull"},
        {"scope": "repository::pull"},
        {"scope": "nonsense"},
        {"scope": " ".join(["repository:library/busybox:pull"] * 40)},
        {"scope": "repository:" + "a" * 300 + ":pull"},
        {"service": "someone-else"},
    ):
        answer = httpx.get(realm, params=params, auth=auth)
        assert answer.status_code == 400 and "error" in answer.json(), (params, answer.text)
    for header in ("Basic !!!", "Basic " + "QUJD", "Bearer", "Basic " + "A" * 20000):
        answer = httpx.get(realm, headers={"Authorization": header})
        assert answer.status_code == 401 and "error" in answer.json(), (header, answer.text)
    form = "&".join(f"f{i}=x" for i in range(100))
    crowded = httpx.post(realm, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert crowded.status_code == 400, crowded.text
    granted = httpx.post(
        realm,
        data={"grant_type": "password", "username": "x", "password": server.token, "scope": "repository:flyio/x:pull"},
    )
    assert granted.status_code == 200 and granted.json()["token"], granted.text
    # a scope beyond the caller's rights is left out of the token, which the registry then refuses
    limited = httpx.get(realm, params={"scope": "repository:library/busybox:push"}, auth=auth).json()["token"]
    pushed = httpx.post(
        f"http://{server.registry}/v2/library/busybox/blobs/uploads/", headers={"Authorization": f"Bearer {limited}"}
    )
    assert pushed.status_code == 401
