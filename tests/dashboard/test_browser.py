"""The dashboard in a real browser against a real `aerodrome serve`: sign in, a machine created through the API
appears live, stop and start it from its page, read its logs, a phone-sized screen; screenshots for the README."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.helpers import create_machine, delete_app, wait_for
from tests.dashboard.conftest import Shoot
from tests.support.server import Server

pytestmark = pytest.mark.root
WAIT_MS = 60_000  # for a state the machine reaches in well under a second here; a loaded host is slower


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def app_name(api: httpx.Client) -> Iterator[str]:
    name = f"dash-{uuid.uuid4().hex[:8]}"
    assert api.post("/v1/apps", json={"app_name": name, "org_slug": "personal"}).status_code == 201
    yield name
    delete_app(api, name)


def signed_in(browser: Browser, server: Server, width: int = 1280, height: int = 860) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.api_url}/dashboard/")
    page.get_by_label("Organisation token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    return page


def printing(image: str) -> dict[str, Any]:
    script = "echo hello-from-the-dashboard; exec httpd -f -p 8080 -h /www"
    return {"image": image, "init": {"exec": ["/bin/sh", "-c", script]}, "restart": {"policy": "no"}}


def test_sign_in_and_the_session_cookie(browser: Browser, server: Server, shoot: Shoot) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto(f"{server.api_url}/dashboard/apps")
    expect(page).to_have_url(f"{server.api_url}/dashboard/sign-in?next=/dashboard/apps")
    assert page.get_by_label("Organisation token").get_attribute("type") == "password"
    shoot(page, "sign-in")
    page.get_by_label("Organisation token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps")).to_be_visible()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "aerodrome_dashboard"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert server.token not in cookie["value"]  # encrypted, not merely signed
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{server.api_url}/dashboard/apps")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.close()


def test_a_wrong_token_is_refused(browser: Browser, server: Server) -> None:
    page = browser.new_page()
    page.goto(f"{server.api_url}/dashboard/sign-in")
    page.get_by_label("Organisation token").fill("fm2_not-a-token")
    with page.expect_response(lambda r: r.url.endswith("/dashboard/sign-in") and r.request.method == "POST") as sent:
        page.get_by_role("button", name="Sign in").click()
    assert sent.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("invalid token")
    page.goto(f"{server.api_url}/dashboard/apps")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.close()


def test_a_machine_appears_live_then_stops_and_starts_from_its_page(
    browser: Browser, server: Server, api: httpx.Client, app_name: str, shoot: Shoot
) -> None:
    page = signed_in(browser, server)
    expect(page.get_by_role("link", name=app_name)).to_be_visible()
    page.get_by_role("link", name=app_name).click()
    expect(page.get_by_text("No machines yet.")).to_be_visible()
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    machine = create_machine(api, app_name, printing(server.image()), name="web")
    row = page.locator(f"#row-{machine['id']}")
    expect(row).to_have_attribute("data-state", "started")
    expect(row.get_by_role("cell").nth(7)).to_contain_text(re.compile(r"[0-9.]+ MiB"))  # its memory in use
    assert page.evaluate("window.loadedOnce") is True  # the row came over SSE, not by a reload
    shoot(page, "app")

    row.get_by_role("link", name="web").click()
    state = page.locator("#state")
    expect(state).to_have_text("started")
    expect(page.locator("figure", has_text="Memory")).to_contain_text(re.compile(r"Memory: [0-9.]+ MiB"))
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(state).to_have_text("stopped")
    assert wait_for(api, app_name, machine["id"], "stopped")["state"] == "stopped"
    page.get_by_role("button", name="Start", exact=True).click()
    expect(state).to_have_text("started")
    assert wait_for(api, app_name, machine["id"], "started")["state"] == "started"

    expect(page.locator("#logs")).to_contain_text("hello-from-the-dashboard")  # followed: printed after the load
    page.get_by_label("Command (sh -c)").fill("echo exec-says-$((6*7))")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#exec-output")).to_contain_text("exec-says-42")
    shoot(page, "machine")
    page.close()


def test_destroy_asks_for_confirmation(browser: Browser, server: Server, api: httpx.Client, app_name: str) -> None:
    machine = create_machine(api, app_name, printing(server.image()))
    wait_for(api, app_name, machine["id"], "started")
    page = signed_in(browser, server)
    page.goto(f"{server.api_url}/dashboard/apps/{app_name}/machines/{machine['id']}")
    page.get_by_role("link", name="Destroy…").click()
    page.get_by_label("Machine id").fill("not-its-id")
    page.get_by_role("button", name="Destroy", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("type the machine's id")
    assert api.get(f"/v1/apps/{app_name}/machines/{machine['id']}").json()["state"] == "started"
    expect(page.get_by_role("heading", name=f"Destroy {machine['id']}?")).to_be_visible()  # asked again
    page.get_by_label("Machine id").fill(machine["id"])
    page.get_by_label("Force (kill it if it is running)").check()
    page.get_by_role("button", name="Destroy", exact=True).click()
    expect(page.get_by_text(f"machine {machine['id']} destroyed")).to_be_visible()
    assert api.get(f"/v1/apps/{app_name}/machines/{machine['id']}").json()["state"] == "destroyed"
    page.close()


def test_the_create_form_shows_the_same_request_and_makes_the_machine(
    browser: Browser, server: Server, api: httpx.Client, app_name: str, shoot: Shoot
) -> None:
    page = signed_in(browser, server)
    page.goto(f"{server.api_url}/dashboard/apps/{app_name}/machines/new")
    page.get_by_label("Image").fill(server.image())
    page.get_by_label("Name (optional)").fill("formed")
    page.get_by_label("Memory (MB)").fill("128")
    page.get_by_label("Environment (NAME=VALUE, one a line)").fill("GREETING=hi")
    page.get_by_label("Port (PORT[:INTERNAL]/PROTOCOL:HANDLER)").fill("80:8080/tcp:http")
    page.get_by_label("Autostart on a request").check()
    page.get_by_label("Autostop when idle").select_option("stop")
    cli = f"aerodrome machine run {server.image()} --app {app_name} --name formed --vm-memory 128 --env GREETING=hi"
    expect(page.locator("#commands")).to_contain_text(cli)
    expect(page.locator("#commands")).to_contain_text(f"/v1/apps/{app_name}/machines")
    shoot(page, "new-machine")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/machines")) as sent:
        page.get_by_role("button", name="Create machine").click()
    assert sent.value.status == 400  # the API's status and message, the form kept as filled in
    expect(page.get_by_role("alert")).to_have_text("invalid guest.memory_mb: 128 must be between 256 and 262144")
    assert page.get_by_label("Name (optional)").input_value() == "formed"
    page.get_by_label("Memory (MB)").fill("256")
    page.get_by_role("button", name="Create machine").click()
    expect(page.locator("#state")).to_be_visible()
    [made] = api.get(f"/v1/apps/{app_name}/machines").json()
    assert made["name"] == "formed" and made["config"]["env"] == {"GREETING": "hi"}
    assert made["config"]["guest"]["memory_mb"] == 256
    [service] = made["config"]["services"]
    assert service["internal_port"] == 8080 and service["autostart"] is True and service["autostop"] is True
    page.close()


def test_usable_at_360_pixels(browser: Browser, server: Server, api: httpx.Client, app_name: str, shoot: Shoot) -> None:
    machine = create_machine(api, app_name, printing(server.image()), name="phone")
    wait_for(api, app_name, machine["id"], "started")
    page = signed_in(browser, server, width=360, height=740)
    page.goto(f"{server.api_url}/dashboard/apps/{app_name}/machines/{machine['id']}")
    expect(page.locator("#state")).to_have_text("started")
    # nothing wider than the screen but the tables, which scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    stop = page.get_by_role("button", name="Stop", exact=True)
    box = stop.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["height"] >= 44
    page.keyboard.press("Tab")  # the skip link first, visibly focused
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    stop.click()
    expect(page.locator("#state")).to_have_text("stopped")
    shoot(page, "phone-machine")
    page.close()


def test_apps_volumes_secrets_tokens_and_organisations(
    browser: Browser, server: Server, api: httpx.Client, app_name: str, shoot: Shoot
) -> None:
    machine = create_machine(api, app_name, printing(server.image()), name="counted")
    wait_for(api, app_name, machine["id"], "started")
    secret = api.post(f"/v1/apps/{app_name}/secrets", json={"values": {"DB_PASSWORD": "hunter2-value"}})
    assert secret.status_code == 200, secret.text
    page = signed_in(browser, server)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=app_name))
    expect(row).to_contain_text("started 1")
    shoot(page, "apps")

    page.goto(f"{server.api_url}/dashboard/apps/{app_name}/secrets")
    expect(page.get_by_role("cell", name="DB_PASSWORD")).to_be_visible()
    [listed] = api.get(f"/v1/apps/{app_name}/secrets").json()["secrets"]
    expect(page.get_by_text(listed["digest"])).to_be_visible()
    assert "hunter2-value" not in page.content()

    page.goto(f"{server.api_url}/dashboard/apps/{app_name}/volumes")
    page.get_by_label("Name").fill("data")
    page.get_by_role("button", name="Create volume").click()
    expect(page.get_by_role("status")).to_contain_text("created")
    [volume] = api.get(f"/v1/apps/{app_name}/volumes").json()
    page.get_by_label("New size (GB)").fill("2")
    page.get_by_role("button", name="Extend").click()
    expect(page.get_by_role("status")).to_contain_text(f"volume {volume['id']} is now 2 GB")
    page.get_by_role("button", name="Snapshot").click()
    expect(page.get_by_role("status")).to_contain_text("snapshot")
    [snapshot] = api.get(f"/v1/apps/{app_name}/volumes/{volume['id']}/snapshots").json()
    expect(page.get_by_role("cell").filter(has_text=snapshot["id"])).to_be_visible()
    assert api.get(f"/v1/apps/{app_name}/volumes/{volume['id']}").json()["size_gb"] == 2
    shoot(page, "volumes")

    page.goto(f"{server.api_url}/dashboard/tokens")
    page.get_by_label("Name").fill("from-the-dashboard")
    page.get_by_role("button", name="Create token").click()
    made = page.locator("code.secret").inner_text()
    with server.client(made) as other:
        assert other.get("/v1/tokens/current").status_code == 200
        page.get_by_role("button", name="Revoke token from-the-dashboard").click()
        expect(page.get_by_role("status")).to_contain_text("revoked")
        refused = other.get("/v1/tokens/current")
        assert refused.status_code == 401 and refused.json() == {"error": "token revoked"}
    shoot(page, "tokens")

    page.goto(f"{server.api_url}/dashboard/orgs")
    expect(page.get_by_role("listitem").filter(has_text="personal")).to_contain_text("(shown)")
    page.close()


UNLABELLED = """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
    .map((el) => el.outerHTML)"""


def test_every_control_has_a_label(browser: Browser, server: Server, api: httpx.Client, app_name: str) -> None:
    machine = create_machine(api, app_name, printing(server.image()))
    page = signed_in(browser, server)
    for path in (
        "/apps",
        f"/apps/{app_name}",
        f"/apps/{app_name}/machines/new",
        f"/apps/{app_name}/machines/{machine['id']}",
        f"/apps/{app_name}/machines/{machine['id']}/destroy",
        f"/apps/{app_name}/volumes",
        f"/apps/{app_name}/secrets",
        "/tokens",
        "/orgs",
    ):
        page.goto(f"{server.api_url}/dashboard{path}")
        assert page.evaluate(UNLABELLED) == [], path
    page.close()
