"""The floors the figures are divided by, each measured in the same run: a bare `runc run -d` of the same program
with host networking, a bare uvicorn endpoint, and nginx in front of the same machine."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from aerodrome.bench.probe import wait_answer

BUSYBOX = Path("/bin/busybox")
FLOOR_CGROUP = "/aerodrome-bench-floor"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BareRunc:
    """busybox httpd in a runc container of its own: no user or network namespace, no overlay, no limits, no
    supervisor. The start floor is `runc run -d` until it answers HTTP on the host's loopback."""

    def __init__(self, workdir: Path) -> None:
        self.root, self.bundle = workdir / "runc-root", workdir / "bundle"
        self.port = free_port()

    def prepare(self) -> None:
        rootfs = self.bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        (rootfs / "bin" / "httpd").symlink_to("busybox")
        (rootfs / "www").mkdir()
        (rootfs / "www" / "index.html").write_text("floor\n")
        subprocess.run(["runc", "spec", "--bundle", str(self.bundle)], check=True, capture_output=True)
        config = json.loads((self.bundle / "config.json").read_text())
        config["root"] = {"path": "rootfs", "readonly": True}
        config["process"].update(args=["/bin/httpd", "-f", "-p", f"127.0.0.1:{self.port}", "-h", "/www"])
        config["process"]["terminal"] = False
        namespaces = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [n for n in namespaces if n["type"] != "network"]  # host networking
        config["linux"]["cgroupsPath"] = FLOOR_CGROUP
        (self.bundle / "config.json").write_text(json.dumps(config))

    def _runc(self, *args: str) -> None:
        """The container inherits runc's stdio: a pipe would stay open as long as it runs, so both go to a file."""
        argv = ["runc", "--root", str(self.root), *args]
        with open(self.bundle.parent / "runc.log", "ab") as log:
            subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)

    def run(self) -> None:
        """`runc run -d`, then until HTTP answers."""
        self._runc("run", "-d", "--bundle", str(self.bundle), "floor")
        wait_answer("127.0.0.1", self.port)

    def pause(self) -> None:
        self._runc("pause", "floor")

    def resume(self) -> None:
        self._runc("resume", "floor")
        wait_answer("127.0.0.1", self.port)

    def delete(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._runc("delete", "--force", "floor")


HELLO_APP = """
import sys
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def hello(request):
    return JSONResponse({"ok": True})
app = Starlette(routes=[Route("/hello", hello)])
import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop", log_level="warning")
"""


@contextlib.contextmanager
def bare_uvicorn() -> Iterator[str]:
    """A Starlette hello endpoint on uvicorn, the stack the API runs on: the floor of one API round trip."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", HELLO_APP, str(port)], stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/hello"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=1)
                break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


NGINX_CONF = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream machine {{ server {upstream}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://machine; proxy_http_version 1.1; }} }}
}}
"""


@contextlib.contextmanager
def nginx_proxy(workdir: Path, upstream: str) -> Iterator[int | None]:
    """nginx (one worker) in front of the machine, the reference proxy; None when nginx is not installed."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        yield None
        return
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, upstream=upstream, port=port))
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)], stdin=subprocess.DEVNULL)
    try:
        wait_answer("127.0.0.1", port, timeout=10)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
