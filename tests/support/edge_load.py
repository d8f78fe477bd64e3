"""Many concurrent connections through the edge to one app whose machines autostart and autostop.

Each wave opens `connections` client connections at once (an httpx client each), and each
sends `requests` requests on it; between waves the traffic stops until autostop has stopped every machine, so
each wave begins with autostarts under a burst. Every reply is sorted: a 2xx; a documented edge error (its
status one the edge answers with and its body naming the cause, as `CAUSES` lists); or anything else — another
status, a body that names no cause, or no answer at all within the client's timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from tests.support.load import TLS, Tally

#: What the edge's own error replies say (proxy/downstream.py, proxy/balancer.py, proxy/acceptor.py), by status.
CAUSES = {
    502: ("could not connect to machine", "closed the connection before responding"),
    503: (
        "has no machine",
        "is at its hard limit",
        "failed to start machine",
        "machines are stopping",
        "autostart is off",
        "too many connections",
    ),
    504: ("did not answer in time",),
}


@dataclass(frozen=True)
class EdgeMix:
    connections: int
    requests: int  # per connection and wave
    waves: int
    timeout: float = 30.0


def sort_reply(tally: Tally, response: httpx.Response) -> None:
    status = response.status_code
    tally.statuses[str(status)] += 1
    if 200 <= status < 300:
        return
    if not any(cause in response.text for cause in CAUSES.get(status, ())):
        tally.unexpected.append(f"{status} {dict(response.headers)} {response.text[:300]!r}")


async def one_connection(url: str, host: str, mix: EdgeMix, tally: Tally) -> None:
    """A client of its own per connection: one httpx pool of a thousand connections scans them all per request."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=mix.timeout, limits=limits, headers={"Host": host}, verify=TLS) as client:
        for _ in range(mix.requests):
            started = time.monotonic()
            try:
                response = await client.get(url)
            except httpx.TimeoutException:
                tally.unanswered.append(f"no answer within {mix.timeout:g}s")
                continue
            except httpx.TransportError as exc:
                tally.unanswered.append(f"{type(exc).__name__}: {exc}")
                continue
            tally.latencies.append(time.monotonic() - started)
            sort_reply(tally, response)


async def wave(url: str, host: str, mix: EdgeMix, tally: Tally) -> None:
    await asyncio.gather(*(one_connection(url, host, mix, tally) for _ in range(mix.connections)))


async def all_stopped(api: httpx.AsyncClient, app: str, timeout: float) -> bool:
    """Whether autostop stopped (or suspended) every machine of the app within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        machines = (await api.get(f"/v1/apps/{app}/machines")).json()
        if all(m["state"] in ("created", "stopped", "suspended") for m in machines):
            return True
        await asyncio.sleep(0.2)
    return False


async def edge_waves(
    edge_url: str, host: str, api: httpx.AsyncClient, app: str, mix: EdgeMix, *, rest_timeout: float = 60.0
) -> tuple[Tally, int]:
    """Run the waves; returns the tally and how many waves began with every machine at rest."""
    tally, rested = Tally(), 0
    for _ in range(mix.waves):
        rested += await all_stopped(api, app, rest_timeout)
        await wave(edge_url, host, mix, tally)
    return tally, rested
