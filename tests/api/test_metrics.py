"""`GET /metrics` of a real `aerodrome serve`: parsed with prometheus_client's parser after traffic through the API
and the edge to a started machine; scoped to the token's organisation; and the daemon's JSON log lines."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import create_machine, wait_for
from tests.support.server import Server, running_server

APP = "metrics-app"
EDGE_REQUESTS = 4
API_GETS = 5

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--log-format", "json") as started:
        started.push_image("busybox")
        started.cli("orgs", "create", "other")
        yield started


def scrape(server: Server, token: str | None = None) -> Samples:
    with server.client(token) as api:
        response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for have, v in samples.get(name, []) if all(have.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found} in {samples.get(name)}"
    return found[0]


@pytest.fixture(scope="module")
def machine(server: Server) -> Iterator[dict[str, object]]:
    """A machine the edge starts on its first request (an autostart), then serves more from."""
    with server.client() as api:
        assert api.post("/v1/apps", json={"app_name": APP, "org_slug": "personal"}).status_code == 201
        service = {
            "protocol": "tcp",
            "internal_port": 8080,
            "autostart": True,
            "autostop": "off",
            "ports": [{"port": 80, "handlers": ["http"]}],
        }
        made = create_machine(api, APP, {"image": server.image("busybox"), "services": [service]}, skip_launch=True)
        volume = api.post(f"/v1/apps/{APP}/volumes", json={"name": "data", "size_gb": 1, "region": "iad"})
        assert volume.status_code == 200, volume.text
        edge = f"http://127.0.0.1:{server.edge_http_port}/"
        for _ in range(EDGE_REQUESTS):
            reply = httpx.get(edge, headers={"Host": f"{APP}.localhost"}, timeout=60)
            assert reply.status_code == 200 and "hello" in reply.text
        wait_for(api, APP, str(made["id"]), "started")
        yield made


def test_edge_series_count_the_requests_made(server: Server, machine: dict[str, object]) -> None:
    samples = scrape(server)
    assert value(samples, "fly_edge_http_responses_count", app=APP, status="2xx") == EDGE_REQUESTS
    assert value(samples, "fly_edge_http_response_time_seconds_count", app=APP) == EDGE_REQUESTS
    assert value(samples, "fly_edge_http_response_time_seconds_bucket", app=APP, le="+Inf") == EDGE_REQUESTS
    assert value(samples, "fly_edge_http_response_time_seconds_sum", app=APP) > 0
    assert value(samples, "aerodrome_edge_response_bytes_total", app=APP) >= EDGE_REQUESTS * len("hello")
    assert value(samples, "aerodrome_edge_autostarts_total", app=APP) == 1
    assert value(samples, "aerodrome_edge_autostart_duration_seconds_count", app=APP) == 1


def test_machine_series_read_the_running_machine(server: Server, machine: dict[str, object]) -> None:
    samples = scrape(server)
    instance = str(machine["id"])
    assert value(samples, "aerodrome_machines", app=APP, state="started") == 1
    assert value(samples, "fly_instance_up", app=APP, instance=instance) == 1
    assert value(samples, "aerodrome_machine_memory_bytes", app=APP, instance=instance) > 0
    assert value(samples, "fly_instance_memory_mem_total", app=APP, instance=instance) == 256 * 1024 * 1024
    assert value(samples, "aerodrome_machine_cpu_seconds_total", app=APP, instance=instance) > 0
    # the edge's requests reached the machine over its veth, and the responses left it that way
    assert value(samples, "fly_instance_net_recv_bytes", app=APP, instance=instance, device="eth0") > 0
    assert value(samples, "fly_instance_net_sent_bytes", app=APP, instance=instance, device="eth0") > 0
    assert value(samples, "fly_volume_size_bytes", app=APP, volume_name="data") > 0
    assert 0 < value(samples, "fly_volume_used_pct", app=APP, volume_name="data") < 100


def test_api_requests_are_counted_by_route_template(server: Server, machine: dict[str, object]) -> None:
    route = "/v1/apps/{app_name}"
    before = scrape(server)
    with server.client() as api:
        for _ in range(API_GETS):
            assert api.get(f"/v1/apps/{APP}").status_code == 200
        assert api.get("/v1/apps/no-such-app").status_code == 404
    after = scrape(server)

    def gets(samples: Samples) -> float:
        wanted = {"method": "GET", "route": route, "status": "200"}
        rows = samples.get("aerodrome_api_requests_total", [])
        return sum(v for labels, v in rows if all(labels.get(k) == want for k, want in wanted.items()))

    assert gets(after) - gets(before) == API_GETS
    assert value(after, "aerodrome_api_requests_total", method="GET", route=route, status="404") >= 1
    assert value(after, "aerodrome_api_request_duration_seconds_count", method="GET", route=route) >= API_GETS + 1
    assert not any(APP in labels.get("route", "") for labels, _ in after["aerodrome_api_requests_total"])


def test_another_organisations_token_sees_none_of_the_apps(server: Server, machine: dict[str, object]) -> None:
    theirs = server.cli("tokens", "create", "--org", "other", "--name", "scraper").strip()
    samples = scrape(server, theirs)
    assert "aerodrome_api_requests_total" in samples  # the daemon's own series, which name no app
    leaked = [(name, labels) for name, rows in samples.items() for labels, _ in rows if labels.get("app") == APP]
    assert not leaked


def test_metrics_need_a_token(server: Server) -> None:
    refused = httpx.get(f"{server.api_url}/metrics", timeout=10)
    assert refused.status_code == 401
    assert "error" in refused.json()
    with server.client("not-a-token") as api:
        assert api.get("/metrics").status_code == 401


def test_the_daemons_log_is_one_json_object_a_line(server: Server) -> None:
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    started = [r for r in records if r.get("name") == "aerodrome" and r["message"].startswith("API on http://")]
    assert started and started[0]["level"] == "INFO" and started[0]["time"]
    assert not [line for line in lines if " aerodrome INFO " in line]  # no line of the text format
