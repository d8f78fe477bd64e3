"""Statics served by the edge from a real image's unpacked rootfs while the machine stays asleep, and the image's
hostile entries (symlinks out and in, `..`, a FIFO, a directory) never served: each goes on to the machine,
which with autostart off is a 503."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import create_machine, delete_app
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root

APP = "statics"
FILES = {
    "/srv/static/index.html": b"<h1>static index</h1>\n",
    "/srv/static/app.css": b"body { color: teal }\n",
    "/srv/static/sub/page.txt": b"a page\n",
    "/srv/secret.txt": b"outside the static root\n",
}
SYMLINKS = {
    "/srv/static/leak": "/etc/hostname",  # the host's, were it followed by the daemon
    "/srv/static/inside-link": "app.css",  # inside the root, and still a symlink
    "/srv/static/dirlink": "/etc",
    "/srv/static/up": "..",
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as started:
        started.push_image("statics", files=FILES, symlinks=SYMLINKS, fifos=["/srv/static/pipe"])
        yield started


def raw_get(server: Server, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request sent byte for byte (a client library would normalise `..` away)."""
    with socket.create_connection(("127.0.0.1", server.edge_http_port), timeout=20) as conn:
        head = f"{method} {target} HTTP/1.1\r\nHost: {APP}.localhost\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head_bytes, _, body = reply.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def test_statics_are_served_from_the_image_without_waking_the_machine(server: Server) -> None:
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        service = {"protocol": "tcp", "internal_port": 8080, "autostart": False, "ports": [{"port": 80}]}
        config = {
            "image": server.image("statics"),
            "services": [service],
            "statics": [{"guest_path": "/srv/static", "url_prefix": "/static", "index_document": "index.html"}],
        }
        machine = create_machine(api, APP, config, skip_launch=True)

        for target, path in [
            ("/static/app.css", "/srv/static/app.css"),
            ("/static/", "/srv/static/index.html"),
            ("/static", "/srv/static/index.html"),
            ("/static/sub/page.txt?v=2", "/srv/static/sub/page.txt"),
        ]:
            status, headers, body = raw_get(server, target)
            assert (status, body) == (200, FILES[path]), target
        status, headers, body = raw_get(server, "/static/app.css", "HEAD")
        assert status == 200 and body == b"" and headers["content-length"] == str(len(FILES["/srv/static/app.css"]))
        assert headers["content-type"].startswith("text/css")

        hostile = [
            "/static/../secret.txt",
            "/static/%2e%2e/secret.txt",
            "/static/sub/..%2f..%2fsecret.txt",
            "/static/leak",
            "/static/inside-link",
            "/static/dirlink/hostname",
            "/static/up/secret.txt",
            "/static/pipe",  # a FIFO: opened, it would block the edge's reader
            "/static/sub",  # a directory, named without its slash
            "/elsewhere",
        ]
        for target in hostile:
            status, _, body = raw_get(server, target)
            assert status == 503 and b"autostart is off" in body, (target, status, body)
        assert api.get(f"/v1/apps/{APP}/machines/{machine['id']}").json()["state"] == "created"
        delete_app(api, APP)


@pytest.mark.parametrize(
    ("statics", "wanted"),
    [
        ([{"guest_path": "srv", "url_prefix": "/s"}], "guest_path"),
        ([{"guest_path": "/srv/../etc", "url_prefix": "/s"}], "guest_path"),
        ([{"guest_path": "/srv", "url_prefix": "s"}], "url_prefix"),
        ([{"guest_path": "/srv", "url_prefix": "/s", "index_document": "../x"}], "index_document"),
        ([{"guest_path": "/srv", "url_prefix": "/s", "tigris_bucket": "b"}], "tigris_bucket"),
        ({"guest_path": "/srv"}, "statics"),
    ],
)
def test_bad_statics_are_refused_with_flys_error(server: Server, statics: object, wanted: str) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "statics-bad", "org_slug": "personal"})
        body = {"config": {"image": server.image("statics"), "statics": statics}, "region": "iad"}
        response = api.post("/v1/apps/statics-bad/machines", json=body)
        assert response.status_code == 400 and wanted in response.json()["error"], response.text


def test_a_machine_without_statics_is_asked_as_before(server: Server) -> None:
    with server.client() as api:
        api.post("/v1/apps", json={"app_name": "statics-none", "org_slug": "personal"})
        service = {"protocol": "tcp", "internal_port": 8080, "autostart": False, "ports": [{"port": 80}]}
        create_machine(api, "statics-none", {"image": server.image("statics"), "services": [service]}, skip_launch=True)
        url = f"http://127.0.0.1:{server.edge_http_port}/static/app.css"
        assert httpx.get(url, headers={"Host": "statics-none.localhost"}).status_code == 503
        delete_app(api, "statics-none")
