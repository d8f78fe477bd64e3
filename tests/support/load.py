"""Load against a running `aerodrome serve`: API clients mixing every operation, and many edge connections.

The API mix: each client owns a few machines (so "the last acknowledged change" of each is well defined) and
works on them until the deadline: create, get, list, update, start, stop, suspend, a lease acquired and
released, metadata, wait, destroy (and a create in its place), and a volume created, read and deleted; it
also reads machines it does not own (a 404 there is a destroy it raced). Every reply is sorted: expected, or
unexpected (any other status, a 5xx above all), or unanswered within the client's timeout (a deadlock, for
us). `verify` then reads every machine back and compares it with what was acknowledged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

#: One TLS context for every client (each httpx client would load the CA bundle itself: ~20 ms of CPU apiece).
TLS = ssl.create_default_context()

#: The machine states whose `wait` answers at once for a machine known to be in them.
WAITABLE = ("started", "stopped", "suspended")
STARTABLE = ("created", "stopped", "suspended")
RUNNING = ("started", "suspended")  # states that hold a network namespace and a process


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass
class Tally:
    """Latencies (seconds) and outcomes of one run."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    by_operation: dict[str, list[float]] = field(default_factory=dict)

    def add(self, operation: str, latency: float) -> None:
        self.latencies.append(latency)
        self.by_operation.setdefault(operation, []).append(latency)

    def figures(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies) + len(self.unanswered),
            "p50_ms": round(percentile(self.latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(self.latencies, 0.99) * 1000, 1),
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 1),
            "past_2s": sum(1 for latency in self.latencies if latency > 2.0),
            "statuses": dict(sorted(self.statuses.items())),
            "unexpected": len(self.unexpected),
            "unanswered": len(self.unanswered),
            "p50_p99_ms_by_operation": {
                name: [round(percentile(samples, 0.5) * 1000, 1), round(percentile(samples, 0.99) * 1000, 1)]
                for name, samples in sorted(self.by_operation.items())
            },
        }


@dataclass
class Owned:
    """What the API acknowledged last about a machine."""

    id: str
    app: str
    state: str = "created"
    mark: int = 0  # the env MARK its last acknowledged update set
    metadata: dict[str, str] = field(default_factory=dict)
    destroyed: bool = False


@dataclass(frozen=True)
class ApiMix:
    clients: int
    machines: int
    duration: float
    max_running: int  # machines started or suspended at once, all clients together (each holds a netns)
    apps: int = 4
    timeout: float = 60.0


# operation → weight; an operation that does not apply to the machine drawn falls back to `get`
WEIGHTS = {
    "get": 14,
    "get_other": 6,
    "list": 5,
    "metadata": 10,
    "lease": 8,
    "update": 7,
    "start": 10,
    "stop": 8,
    "suspend": 5,
    "wait": 8,
    "destroy": 3,
    "volume": 4,
}


class ApiLoad:
    def __init__(self, base_url: str, token: str, image: str, mix: ApiMix, *, seed: int = 12) -> None:
        self.base_url = base_url
        self.token = token
        self.image = image
        self.mix = mix
        self.tally = Tally()
        self.owned: list[list[Owned]] = [[] for _ in range(mix.clients)]
        self.volumes: dict[str, tuple[str, bool]] = {}  # id → (app, deleted)
        self.running = 0
        self._random = random.Random(seed)
        self._marks = itertools.count(1)
        self.apps = [f"load-{n}" for n in range(mix.apps)]

    def client(self) -> httpx.AsyncClient:
        """A client of one connection. One per simulated client: a shared httpx pool of 200 connections scans them
        all at every request (the client, not the server, was then the bottleneck). Idle connections are dropped
        before the API's 5 s keep-alive ends, so none is reused just as the server closes it."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=self.mix.timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=2.0),
            verify=TLS,
        )

    async def run(self) -> Tally:
        async with self.client() as api:
            for app in self.apps:
                (await api.post("/v1/apps", json={"app_name": app, "org_slug": "personal"})).raise_for_status()
        deadline = time.monotonic() + self.mix.duration
        await asyncio.gather(*(self._client_loop(n, deadline) for n in range(self.mix.clients)))
        return self.tally

    async def _client_loop(self, n: int, deadline: float) -> None:
        async with self.client() as api:
            await self._work(api, n, deadline)

    async def _work(self, api: httpx.AsyncClient, n: int, deadline: float) -> None:
        app = self.apps[n % len(self.apps)]
        share = self.mix.machines // self.mix.clients + (1 if n < self.mix.machines % self.mix.clients else 0)
        operations, weights = list(WEIGHTS), list(WEIGHTS.values())
        for _ in range(share):
            await self._create(api, n, app)
        while time.monotonic() < deadline:
            live = [m for m in self.owned[n] if not m.destroyed]
            if not live:
                await self._create(api, n, app)
                continue
            machine = self._random.choice(live)
            operation = self._random.choices(operations, weights)[0]
            await getattr(self, f"_{operation}")(api, machine)

    async def _call(
        self, api: httpx.AsyncClient, what: str, method: str, url: str, expected: tuple[int, ...], **kw: Any
    ) -> httpx.Response | None:
        """One request, timed and sorted; the response when its status is one of `expected`."""
        started = time.monotonic()
        try:
            response = await api.request(method, url, **kw)
        except httpx.TimeoutException:
            self.tally.unanswered.append(f"{what} {method} {url}: no answer within {self.mix.timeout:g}s")
            return None
        except httpx.TransportError as exc:
            self.tally.unanswered.append(f"{what} {method} {url}: {type(exc).__name__} {exc}")
            return None
        self.tally.add(f"{what} {method}", time.monotonic() - started)
        self.tally.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code not in expected:
            self.tally.unexpected.append(f"{what} {method} {url}: {response.status_code} {response.text[:300]}")
            return None
        return response

    def _url(self, machine: Owned, suffix: str = "") -> str:
        return f"/v1/apps/{machine.app}/machines/{machine.id}{suffix}"

    async def _create(self, api: httpx.AsyncClient, n: int, app: str) -> None:
        body = {"config": {"image": self.image, "env": {"MARK": "0"}}, "skip_launch": True, "region": "iad"}
        response = await self._call(api, "create", "POST", f"/v1/apps/{app}/machines", (200,), json=body)
        if response is not None:
            self.owned[n].append(Owned(response.json()["id"], app))

    async def _get(self, api: httpx.AsyncClient, machine: Owned) -> None:
        response = await self._call(api, "get", "GET", self._url(machine), (200,))
        if response is not None and response.json()["state"] != machine.state:
            self.tally.unexpected.append(f"get {machine.id}: {response.json()['state']}, not {machine.state}")

    async def _get_other(self, api: httpx.AsyncClient, machine: Owned) -> None:
        others = self.owned[self._random.randrange(len(self.owned))]
        if others:
            await self._call(api, "get", "GET", self._url(self._random.choice(others)), (200, 404))

    async def _list(self, api: httpx.AsyncClient, machine: Owned) -> None:
        await self._call(api, "list", "GET", f"/v1/apps/{machine.app}/machines", (200,))

    async def _metadata(self, api: httpx.AsyncClient, machine: Owned) -> None:
        key, value = f"k{self._random.randrange(3)}", f"v{next(self._marks)}"
        url = self._url(machine, f"/metadata/{key}")
        if await self._call(api, "metadata", "POST", url, (204,), json={"value": value}) is not None:
            machine.metadata[key] = value

    async def _lease(self, api: httpx.AsyncClient, machine: Owned) -> None:
        url = self._url(machine, "/lease")
        acquired = await self._call(api, "lease", "POST", url, (201,), json={"ttl": 600})
        if acquired is None:
            return
        nonce = acquired.json()["data"]["nonce"]
        await self._call(api, "lease", "GET", url, (200,))
        await self._call(api, "lease", "DELETE", url, (200,), headers={"fly-machine-lease-nonce": nonce})

    async def _update(self, api: httpx.AsyncClient, machine: Owned) -> None:
        mark = next(self._marks)
        # A config is replaced whole, metadata with it (as on Fly): the update carries the metadata it keeps.
        config = {"image": self.image, "env": {"MARK": str(mark)}, "metadata": dict(machine.metadata)}
        body = {"config": config, "skip_launch": True}
        if await self._call(api, "update", "POST", self._url(machine), (200,), json=body) is not None:
            if machine.state in RUNNING:
                self.running -= 1
            machine.mark, machine.state = mark, "created" if machine.state == "created" else "stopped"

    async def _start(self, api: httpx.AsyncClient, machine: Owned) -> None:
        if machine.state not in STARTABLE or (machine.state != "suspended" and self.running >= self.mix.max_running):
            await self._get(api, machine)
            return
        resumed = machine.state == "suspended"
        self.running += 0 if resumed else 1  # counted before: other clients must not start past the limit meanwhile
        if await self._call(api, "start", "POST", self._url(machine, "/start"), (200,)) is None:
            self.running -= 0 if resumed else 1
            return
        machine.state = "started"

    async def _stop(self, api: httpx.AsyncClient, machine: Owned) -> None:
        if machine.state not in RUNNING:
            await self._get(api, machine)
            return
        if await self._call(api, "stop", "POST", self._url(machine, "/stop"), (200,)) is not None:
            machine.state = "stopped"
            self.running -= 1

    async def _suspend(self, api: httpx.AsyncClient, machine: Owned) -> None:
        if machine.state != "started":
            await self._get(api, machine)
            return
        if await self._call(api, "suspend", "POST", self._url(machine, "/suspend"), (200,)) is not None:
            machine.state = "suspended"

    async def _wait(self, api: httpx.AsyncClient, machine: Owned) -> None:
        if machine.state not in WAITABLE:
            await self._get(api, machine)
            return
        params = {"state": machine.state, "timeout": 10}
        await self._call(api, "wait", "GET", self._url(machine, "/wait"), (200,), params=params)

    async def _destroy(self, api: httpx.AsyncClient, machine: Owned) -> None:
        params = {"force": "true"}
        if await self._call(api, "destroy", "DELETE", self._url(machine), (200,), params=params) is not None:
            if machine.state in RUNNING:
                self.running -= 1
            machine.destroyed, machine.state = True, "destroyed"

    async def _volume(self, api: httpx.AsyncClient, machine: Owned) -> None:
        base = f"/v1/apps/{machine.app}/volumes"
        body = {"name": "data", "region": "iad", "size_gb": 1}
        created = await self._call(api, "volume", "POST", base, (200,), json=body)
        if created is None:
            return
        volume_id = created.json()["id"]
        self.volumes[volume_id] = (machine.app, False)
        await self._call(api, "volume", "GET", f"{base}/{volume_id}", (200,))
        if self._random.random() < 0.5 and await self._call(api, "volume", "DELETE", f"{base}/{volume_id}", (200,)):
            self.volumes[volume_id] = (machine.app, True)

    async def verify(self) -> list[str]:
        """Every machine and volume as last acknowledged: what differs."""
        mismatches: list[str] = []
        async with self.client() as api:
            for machine in (m for owned in self.owned for m in owned):
                mismatches += await self._verify_machine(api, machine)
            for volume_id, (app, deleted) in self.volumes.items():
                got = await api.get(f"/v1/apps/{app}/volumes/{volume_id}")
                gone = got.status_code == 404 or got.json().get("state") in ("destroyed", "pending_destroy")
                if gone != deleted:
                    mismatches.append(f"volume {volume_id}: {got.status_code} {got.text[:200]}, deleted={deleted}")
        return mismatches

    async def _verify_machine(self, api: httpx.AsyncClient, machine: Owned) -> list[str]:
        got = await api.get(self._url(machine))
        if machine.destroyed:
            if got.status_code != 404 and got.json().get("state") != "destroyed":
                return [f"machine {machine.id} was destroyed: {got.status_code} {got.text[:200]}"]
            return []
        if got.status_code != 200:
            return [f"machine {machine.id}: {got.status_code} {got.text[:200]}"]
        body = got.json()
        metadata = (await api.get(self._url(machine, "/metadata"))).json()
        found = dataclasses.replace(
            machine,
            state=body["state"],
            mark=int(body["config"].get("env", {}).get("MARK", -1)),
            metadata={key: value for key, value in metadata.items() if key in machine.metadata},
        )
        problems = [] if found == machine else [f"machine {machine.id}: acknowledged {machine}, found {found}"]
        lease = await api.get(self._url(machine, "/lease"))
        if lease.status_code != 404:
            problems.append(f"machine {machine.id} still has a lease: {lease.status_code} {lease.text[:200]}")
        return problems
