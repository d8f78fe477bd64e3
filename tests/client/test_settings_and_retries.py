"""fly-go's base URL and token rules, and which failures the client tries again: against a small HTTP server on
loopback that answers as a struggling gateway would (502/503 a set number of times, then 200)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from aerodrome.client import (
    Client,
    ClientSettings,
    ConnectionFailedError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    authorization_header,
)


def test_tokens_are_sent_as_fly_go_sends_them() -> None:
    assert authorization_header("fm2_abc") == "FlyV1 fm2_abc"
    assert authorization_header("fm1r_a,fm2_b") == "FlyV1 fm1r_a,fm2_b"
    assert authorization_header("FlyV1 fm2_abc") == "FlyV1 fm2_abc"
    assert authorization_header("Bearer fm2_abc") == "Bearer fm2_abc"
    assert authorization_header("personal-access-token") == "Bearer personal-access-token"


def test_base_urls_follow_fly_go() -> None:
    fly = ClientSettings.from_env(env={})
    assert (fly.base_url, fly.graphql) == ("https://api.machines.dev", "https://api.fly.io/graphql")
    flaps = ClientSettings.from_env(env={"FLY_FLAPS_BASE_URL": "http://h:1/", "FLY_API_HOSTNAME": "http://x"})
    assert (flaps.base_url, flaps.graphql) == ("http://h:1", "http://h:1/graphql")
    guide = ClientSettings.from_env(env={"FLY_API_HOSTNAME": "http://127.0.0.1:4280", "FLY_API_TOKEN": "fm2_t"})
    assert guide.base_url == "http://127.0.0.1:4280" and guide.headers()["Authorization"] == "FlyV1 fm2_t"
    split = ClientSettings.from_env(env={"FLY_API_BASE_URL": "https://api.example.com"})
    assert split.graphql == "https://api.example.com/graphql"
    given = ClientSettings.from_env("http://a", "tok", env={"FLY_API_HOSTNAME": "http://b", "FLY_API_TOKEN": "x"})
    assert (given.base_url, given.token) == ("http://a", "tok")


class Gateway(BaseHTTPRequestHandler):
    """Answers `failures` requests with `status` (and `Retry-After: 0` for 429), then 200 with `{"ok": true}`."""

    failures = 0
    status = 503
    seen: list[str] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).seen.append(self.command)
        failing = len(type(self).seen) <= type(self).failures
        body = json.dumps({"error": "upstream unavailable"} if failing else {"ok": True}).encode()
        self.send_response(type(self).status if failing else 200)
        if failing and type(self).status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Gateway.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


QUICK = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02)


@pytest.mark.parametrize("status", [502, 503])
def test_a_get_is_retried_through_bad_gateways_and_a_post_is_not(gateway: str, status: int) -> None:
    Gateway.failures, Gateway.status = 2, status
    with Client(ClientSettings(gateway, "t"), retry=QUICK) as client:
        assert client.list_tokens() == []  # GET /v1/tokens: {"ok": true} has no tokens
        assert Gateway.seen == ["GET"] * 3
        Gateway.seen = []
        with pytest.raises(ServerError) as refused:
            client.create_app("a", "personal")  # POST: it may have been acted on, so not repeated
        assert refused.value.status == status and refused.value.message == "upstream unavailable"
        assert Gateway.seen == ["POST"]


def test_retries_are_bounded(gateway: str) -> None:
    Gateway.failures, Gateway.status = 100, 503
    with Client(ClientSettings(gateway, "t"), retry=QUICK) as client, pytest.raises(ServerError):
        client.list_tokens()
    assert len(Gateway.seen) == QUICK.attempts


def test_429_is_retried_for_any_method(gateway: str) -> None:
    Gateway.failures, Gateway.status = 2, 429
    with Client(ClientSettings(gateway, "t"), retry=QUICK) as client:
        client.create_app("a", "personal")
    assert Gateway.seen == ["POST"] * 3
    Gateway.seen, Gateway.failures = [], 100
    with Client(ClientSettings(gateway, "t"), retry=QUICK) as client, pytest.raises(RateLimitedError):
        client.create_app("a", "personal")


def test_a_connection_never_made_is_retried_even_for_a_post() -> None:
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    attempts: list[str] = []
    settings = ClientSettings(f"http://127.0.0.1:{port}", "t")
    hooks = {"request": [lambda request: attempts.append(request.method)]}
    http = httpx.Client(base_url=settings.base_url, event_hooks=hooks)
    with Client(settings, retry=QUICK, http=http) as client, pytest.raises(ConnectionFailedError) as failed:
        client.create_app("a", "personal")
    assert failed.value.status == 0 and "cannot reach the API" in failed.value.message
    assert attempts == ["POST"] * QUICK.attempts
