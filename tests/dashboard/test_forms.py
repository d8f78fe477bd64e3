"""The dashboard over plain HTTP: CSRF on every POST (403 in Fly's error shape), sessions, the pages' errors."""

from __future__ import annotations

import html
import json
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import wait_app_gone
from tests.cli.runner import Cli
from tests.support.server import Server, running_server

pytestmark = pytest.mark.root
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def browser_like(server: Server) -> Iterator[httpx.Client]:
    """A client that keeps cookies, signed in."""
    with httpx.Client(base_url=server.api_url, timeout=60) as client:
        csrf = CSRF.search(client.get("/dashboard/sign-in").text)
        assert csrf is not None
        signed = client.post("/dashboard/sign-in", data={"csrf": csrf.group(1), "token": server.token})
        assert signed.status_code == 303, signed.text
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    found = CSRF.search(client.get(path).text)
    assert found is not None
    return found.group(1)


def test_a_post_without_the_csrf_token_is_refused(server: Server, browser_like: httpx.Client) -> None:
    name = f"dash-{uuid.uuid4().hex[:8]}"
    for data in ({"name": name}, {"name": name, "csrf": "forged"}):
        refused = browser_like.post("/dashboard/apps", data=data)
        assert refused.status_code == 403
        assert refused.json() == {"error": "missing or wrong CSRF token: reload the page and try again"}
    with server.client() as api:
        assert api.get(f"/v1/apps/{name}").status_code == 404  # nothing was done
    assert browser_like.post("/dashboard/sign-out").status_code == 403
    assert browser_like.post("/dashboard/sign-in", data={"token": server.token}).status_code == 403


def test_the_header_form_of_the_csrf_token_and_an_app_made_and_deleted(
    server: Server, browser_like: httpx.Client
) -> None:
    name = f"dash-{uuid.uuid4().hex[:8]}"
    csrf = csrf_of(browser_like, "/dashboard/apps")
    made = browser_like.post("/dashboard/apps", data={"name": name}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 303 and made.headers["location"] == f"/dashboard/apps/{name}"
    with server.client() as api:
        assert api.get(f"/v1/apps/{name}").status_code == 200
        again = browser_like.post("/dashboard/apps", data={"name": name, "csrf": csrf})
        assert again.status_code == 303
        page = browser_like.get(again.headers["location"]).text
        refused = api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).json()["error"]
        assert refused in html.unescape(page)  # the API's own message
        gone = browser_like.post(f"/dashboard/apps/{name}/delete", data={"csrf": csrf})
        assert gone.status_code == 303
        wait_app_gone(api, name)


def test_a_missing_app_is_the_apis_404(server: Server, browser_like: httpx.Client) -> None:
    page = browser_like.get("/dashboard/apps/no-such-app-here")
    assert page.status_code == 404
    with server.client() as api:
        answer = api.get("/v1/apps/no-such-app-here")
    assert answer.status_code == 404 and answer.json()["error"] in html.unescape(page.text)


def test_a_forged_or_stale_cookie_is_no_session(server: Server) -> None:
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        client.cookies.set("aerodrome_dashboard", "gAAAAABforged", path="/dashboard")
        answer = client.get("/dashboard/apps")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/dashboard/sign-in")


def test_a_revoked_token_signs_the_session_out(server: Server) -> None:
    token = server.cli("tokens", "create", "--name", "dash-revoke").strip()
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        csrf = csrf_of(client, "/dashboard/sign-in")
        assert client.post("/dashboard/sign-in", data={"csrf": csrf, "token": token}).status_code == 303
        assert client.get("/dashboard/apps").status_code == 200
        with server.client(token) as api:
            token_id = api.get("/v1/tokens/current").json()["tokens"][0]["token_id"]
            assert api.delete(f"/v1/tokens/{token_id}").status_code == 200
        answer = client.get("/dashboard/apps")
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/sign-in"
        assert "token revoked" in client.get("/dashboard/sign-in").text


def test_no_dashboard_serves_none() -> None:
    with running_server("--no-dashboard") as bare, httpx.Client(base_url=bare.api_url, timeout=30) as client:
        for path in ("/dashboard/", "/dashboard/sign-in", "/dashboard/static/htmx.min.js"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json() == {"error": "not found"}, path
        assert client.get("/health").status_code == 200


def test_the_vendored_htmx_and_the_stylesheet_are_served(browser_like: httpx.Client) -> None:
    htmx = browser_like.get("/dashboard/static/htmx.min.js")
    assert (
        htmx.status_code == 200 and "htmx" in htmx.text and htmx.headers["content-type"].startswith("text/javascript")
    )
    assert browser_like.get("/dashboard/static/dashboard.css").status_code == 200


def test_open_live_streams_do_not_hold_the_shutdown() -> None:
    """uvicorn waits for open responses before it stops; the live streams end when it is told to stop."""
    with running_server() as own, httpx.Client(base_url=own.api_url, timeout=30) as client:
        csrf = csrf_of(client, "/dashboard/sign-in")
        assert client.post("/dashboard/sign-in", data={"csrf": csrf, "token": own.token}).status_code == 303
        with own.client() as api:
            assert api.post("/v1/apps", json={"app_name": "streamed", "org_slug": "personal"}).status_code == 201
        with client.stream("GET", "/dashboard/apps/streamed/machines/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert next(stream.iter_lines()) == "event: machines"
            with own.client() as api:
                assert api.delete("/v1/apps/streamed").status_code == 202
                wait_app_gone(api, "streamed")
            own.stop()  # SIGTERM, then SIGKILL after 30 s
            assert own.process is not None and own.process.returncode == 0


def test_a_session_holds_several_organisations(server: Server, browser_like: httpx.Client) -> None:
    slug = f"dash-org-{uuid.uuid4().hex[:6]}"
    server.cli("orgs", "create", slug, "--name", "Other")
    other = server.cli("tokens", "create", "--org", slug).strip()
    app = f"dash-{uuid.uuid4().hex[:8]}"
    with server.client(other) as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": slug}).status_code == 201
        try:
            csrf = csrf_of(browser_like, "/dashboard/orgs")
            added = browser_like.post(
                "/dashboard/sign-in", data={"csrf": csrf, "token": other, "next": "/dashboard/orgs"}
            )
            assert added.status_code == 303 and added.headers["location"] == "/dashboard/orgs"
            assert app in browser_like.get("/dashboard/apps").text  # now showing the other organisation
            csrf = csrf_of(browser_like, "/dashboard/orgs")  # a sign-in makes a new CSRF token
            switched = browser_like.post("/dashboard/orgs/switch", data={"csrf": csrf, "org": "personal"})
            assert switched.status_code == 303
            assert app not in browser_like.get("/dashboard/apps").text
            assert browser_like.get(f"/dashboard/apps/{app}").status_code == 404  # another organisation's
            refused = browser_like.post("/dashboard/orgs/switch", data={"csrf": csrf, "org": "nobody"})
            assert refused.status_code == 303
            assert "no token for organisation" in html.unescape(browser_like.get("/dashboard/orgs").text)
        finally:
            assert api.delete(f"/v1/apps/{app}").status_code == 202
            wait_app_gone(api, app)


PRE = re.compile(r'<pre class="config" tabindex="0">(.*?)</pre>', re.DOTALL)


def test_the_shown_curl_and_cli_commands_make_the_same_machine(
    server: Server, browser_like: httpx.Client, tmp_path: Path
) -> None:
    app = f"dash-{uuid.uuid4().hex[:8]}"
    form = {
        "image": server.image(),
        "memory_mb": "256",
        "env": "GREETING=hello world",
        "port": "80:8080/tcp:http",
        "autostart": "on",
        "autostop": "suspend",
    }
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"}).status_code == 201
        try:
            csrf = csrf_of(browser_like, f"/dashboard/apps/{app}/machines/new")
            preview = browser_like.post(f"/dashboard/apps/{app}/machines/preview", data={**form, "csrf": csrf})
            curl, command = (html.unescape(block) for block in PRE.findall(preview.text))
            ran = subprocess.run(
                ["bash", "-c", curl], env={"FLY_API_TOKEN": server.token, "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            by_curl = json.loads(ran.stdout)
            words = shlex.split(command)
            assert words[:3] == ["aerodrome", "machine", "run"]
            by_cli = Cli(server.api_url, server.token, tmp_path / "config.toml").json(*words[1:])
            for made in (by_curl, by_cli):
                config = api.get(f"/v1/apps/{app}/machines/{made['id']}").json()["config"]
                assert config["env"] == {"GREETING": "hello world"} and config["guest"]["memory_mb"] == 256
                [service] = config["services"]
                assert (service["internal_port"], service["autostart"], service["autostop"]) == (8080, True, "suspend")
                assert service["ports"] == [{"port": 80, "handlers": ["http"]}]
        finally:
            assert api.delete(f"/v1/apps/{app}").status_code == 202
            wait_app_gone(api, app)
